"""A small MCP server written with the official Python SDK (`mcp`), for frona's gateway tests.

It holds a credential in DEMO_TOKEN, as a GitHub or Stripe server would, and has tools that
read, write, delete, and (to test redaction) echo that credential back.
"""

import asyncio
import os

from mcp.server.fastmcp import FastMCP

server = FastMCP("frona-demo")


# The description can be changed from outside (a server that rewrites a tool's definition).
@server.tool(description=os.environ.get("DEMO_DESCRIPTION", "Read issue n."))
def get_issue(n: int) -> str:
    return f"issue {n} (token present: {bool(os.environ.get('DEMO_TOKEN'))})"


@server.tool()
def echo_token() -> str:
    """A careless tool that returns the server's credential."""
    return "the token is " + os.environ.get("DEMO_TOKEN", "missing")


@server.tool()
def create_issue(owner: str, repo: str, title: str) -> str:
    """Open an issue."""
    return f"opened {owner}/{repo}: {title}"


@server.tool()
async def get_slowly(seconds: float) -> str:
    """Answers after `seconds` (a server that hangs on one call, not on others)."""
    await asyncio.sleep(seconds)
    return "late"


@server.tool()
def delete_repo(name: str) -> str:
    """Delete a repository."""
    return f"deleted {name}"


if __name__ == "__main__":
    server.run()
