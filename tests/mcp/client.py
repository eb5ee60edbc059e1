"""The agent's side: the official Python SDK's stdio client, connected to `frona mcp connect
NAME` as its MCP server. Runs the calls named on the command line and prints one JSON line per
step, so that the test can read what the agent saw.

Steps: `list`, `call:TOOL:JSON-ARGUMENTS`, `environ:VALUE` (does any readable
/proc/*/environ hold VALUE? the attack on the server's credential).
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def say(**fields):
    print(json.dumps(fields), flush=True)


def environ_holds(value):
    needle = value.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read():
                    return True
        except OSError:
            pass
    return False


async def main(frona, server, steps):
    params = StdioServerParameters(command=frona, args=["mcp", "connect", server], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for step in steps:
                if step == "list":
                    tools = await session.list_tools()
                    say(step="list", tools=sorted(t.name for t in tools.tools))
                elif step.startswith("call:"):
                    _, tool, arguments = step.split(":", 2)
                    result = await session.call_tool(tool, json.loads(arguments))
                    text = " ".join(c.text for c in result.content if getattr(c, "text", None))
                    say(step="call", tool=tool, error=bool(result.isError), text=text)
                elif step.startswith("environ:"):
                    say(step="environ", found=environ_holds(step.split(":", 1)[1]))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
