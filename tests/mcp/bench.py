"""Round trips of a trivial `tools/call` with the official Python MCP SDK's stdio client, on
`CONNECTIONS` sessions at once: straight to the server (the peer) or through
`frona mcp connect` (run under `frona run`). Prints one JSON line: p50/p99 in µs, calls/s (`per_s`).

    bench.py CALLS CONNECTIONS COMMAND [ARGS...]
"""

import asyncio
import json
import os
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def session(command, args, calls, latencies, ready, go):
    params = StdioServerParameters(command=command, args=args, env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            await s.call_tool("get_issue", {"n": 0})  # warm
            ready.release()
            await go.wait()
            for i in range(calls):
                started = time.perf_counter()
                result = await s.call_tool("get_issue", {"n": i})
                latencies.append(time.perf_counter() - started)
                if result.isError:
                    raise SystemExit(f"call failed: {result.content}")


async def main():
    calls, connections = int(sys.argv[1]), int(sys.argv[2])
    command, args = sys.argv[3], sys.argv[4:]
    latencies = []
    ready, go = asyncio.Semaphore(0), asyncio.Event()
    tasks = [
        asyncio.create_task(session(command, args, calls // connections, latencies, ready, go))
        for _ in range(connections)
    ]
    for _ in range(connections):
        await ready.acquire()
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1e6
    # The keys scripts/bench.sh's rows read: clients (connections) and requests (calls).
    print(json.dumps({"requests": len(latencies), "clients": connections,
                      "p50_us": round(pick(0.5)), "p99_us": round(pick(0.99)),
                      "per_s": round(len(latencies) / elapsed)}))


if __name__ == "__main__":
    asyncio.run(main())
