"""MCP round-trip benchmark: minichat's stdio client against the official `mcp` SDK client, same server, one run.

    python bench/tools_mcp.py [--calls 300] [--starts 5]

Each client talks to its own subprocess of tests/mcp_servers/sdk_server.py (an `MCPServer` from the SDK) and calls
its `add` tool; a round trip is one `tools/call` request written to the server's stdin until its response is read back
from its stdout. The clients are timed in turn, call by call, who goes first rotating, so load from other jobs on the
shared machine hits all alike. A second, identical minichat client is timed as a control: its distance from the
first is the noise of the run. Also timed: minichat in the legacy era (`initialize` handshake, no per-request
envelope), and starting a server through the handshake to one call and shutdown (dominated by the server importing
the SDK). Reported: median and 95th percentile in milliseconds, the load average, and the ratios last (minichat /
SDK; < 1 is faster). Issue 15 asks for the MCP round-trip latency (median, p95); there is no target beyond that.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from minichat.tools.mcp import MCPClient  # noqa: E402

SERVER = [sys.executable, str(REPO / "tests" / "mcp_servers" / "sdk_server.py")]


def summary(seconds: list[float]) -> tuple[float, float]:
    """(median, p95) in milliseconds."""
    ms = sorted(s * 1e3 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]


async def main(calls: int, starts: int) -> None:
    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:])
    labels = ("minichat (2026-07-28)", "minichat again (control)", "minichat (2025-11-25)", "mcp SDK (2026-07-28)")
    times: dict[str, list[float]] = {label: [] for label in labels}
    async with Client(params) as sdk:
        with MCPClient(SERVER) as modern, MCPClient(SERVER) as control, MCPClient(SERVER, era="legacy") as legacy:
            ours = [modern, control, legacy]
            for client in ours:
                assert client.call_tool("add", {"a": 1, "b": 2}).text == "3"  # warm up every pair
            assert (await sdk.call_tool("add", {"a": 1, "b": 2})).content[0].text == "3"
            clients = ours + [sdk]
            for i in range(calls):
                # Rotate who goes first: on a saturated machine a call can pay for the previous server's after-work.
                # The control (a second, identical minichat client) shows how far apart equal things come out.
                order = list(range(len(clients)))[i % len(clients):] + list(range(len(clients)))[:i % len(clients)]
                for k in order:
                    t = time.perf_counter()
                    if clients[k] is sdk:
                        await sdk.call_tool("add", {"a": i, "b": 1})
                    else:
                        clients[k].call_tool("add", {"a": i, "b": 1})
                    times[labels[k]].append(time.perf_counter() - t)
    start = {"minichat": [], "mcp SDK": []}
    for _ in range(starts):  # start, handshake, one call, shut down
        t = time.perf_counter()
        with MCPClient(SERVER) as client:
            client.call_tool("add", {"a": 1, "b": 1})
        start["minichat"].append(time.perf_counter() - t)
        t = time.perf_counter()
        async with Client(params) as sdk:
            await sdk.call_tool("add", {"a": 1, "b": 1})
        start["mcp SDK"].append(time.perf_counter() - t)

    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}   python {sys.version.split()[0]}")
    print(f"tools/call round trip, {calls} calls each, interleaved:")
    for label, ts in times.items():
        med, p95 = summary(ts)
        print(f"  {label:24s} median {med:7.3f} ms   p95 {p95:7.3f} ms")
    print(f"start + handshake + one call + shutdown, {starts} times each:")
    for label, ts in start.items():
        med, p95 = summary(ts)
        print(f"  {label:24s} median {med:7.1f} ms   p95 {p95:7.1f} ms")
    sdk_med = summary(times["mcp SDK (2026-07-28)"])[0]
    print(f"ratio round trip minichat/SDK: {summary(times['minichat (2026-07-28)'])[0] / sdk_med:.2f}x (modern), "
          f"{summary(times['minichat (2025-11-25)'])[0] / sdk_med:.2f}x (legacy), "
          f"{summary(times['minichat again (control)'])[0] / sdk_med:.2f}x (control); "
          f"start minichat/SDK: {summary(start['minichat'])[0] / summary(start['mcp SDK'])[0]:.2f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    anyio.run(main, args.calls, args.starts)
