"""Benchmark: what kimi-mcp adds on top of one HTTP round trip to Kimi, and how fast a host can start it.

Everything runs against the fake Kimi on 127.0.0.1, and every figure is a ratio against a baseline measured in
the same run (the machine is shared and noisy):

- per-call: a raw httpx2 streaming POST to /v1/messages (baseline) vs `KimiClient.chat` vs `kimi_chat` through
  an in-memory MCP client (store, progress and all);
- cold start: `python -c "import mcp.server"` (baseline: the SDK's own import cost) vs spawning
  `kimi-mcp serve` over stdio until `tools/list` answers.

    python bench/bench_calls.py [--calls 40] [--starts 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
from mcp import Client, StdioServerParameters

from kimi_mcp import logs
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock
from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi

KEY = "sk-kimi-test-key"


async def timed(calls: int, one: Callable[[int], Awaitable[object]]) -> float:
    """Median seconds per call, after two warm-up calls."""
    for i in range(2):
        await one(-1 - i)
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        await one(i)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def per_call(fake: FakeKimi, home: str, calls: int) -> dict[str, float]:
    settings = Settings(api_key=KEY, base_url=fake.base_url, home=Path(home))
    body = {"model": "kimi-for-coding", "max_tokens": 1024, "stream": True}

    async with httpx2.AsyncClient() as raw:

        async def raw_call(i: int) -> None:
            payload = {**body, "messages": [{"role": "user", "content": [{"type": "text", "text": f"q{i}"}]}]}
            headers = {"Authorization": f"Bearer {KEY}"}
            async with raw.stream("POST", f"{fake.base_url}/v1/messages", json=payload, headers=headers) as r:
                async for _ in r.aiter_bytes():
                    pass

        baseline = await timed(calls, raw_call)

    async with KimiClient(settings) as kimi:

        async def client_call(i: int) -> None:
            message = Message(role="user", content=[TextBlock(text=f"q{i}")])
            await kimi.chat(ChatRequest(model="kimi-for-coding", messages=[message]))

        client = await timed(calls, client_call)

    async with Client(build_server(settings), mode="legacy") as mcp_client:

        async def tool_call(i: int) -> None:
            result = await mcp_client.call_tool("kimi_chat", {"prompt": f"q{i}"})
            assert not result.is_error

        tool = await timed(calls, tool_call)
    return {"raw_http_s": baseline, "kimi_client_s": client, "kimi_chat_tool_s": tool}


async def cold_start(fake: FakeKimi, home: str, starts: int) -> dict[str, float]:
    baseline_samples, server_samples = [], []
    script = Path(sys.executable).parent / "kimi-mcp"
    env = {"PATH": os.environ.get("PATH", ""), "KIMI_API_KEY": KEY, "KIMI_CODE_BASE_URL": fake.base_url}
    env["KIMI_MCP_HOME"] = home
    for _ in range(starts):
        started = time.perf_counter()
        await anyio.run_process([sys.executable, "-c", "import mcp.server"], check=True)
        baseline_samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        async with Client(StdioServerParameters(command=str(script), args=["serve"], env=env)) as client:
            await client.list_tools()
        server_samples.append(time.perf_counter() - started)
    return {"import_mcp_s": statistics.median(baseline_samples), "stdio_ready_s": statistics.median(server_samples)}


async def main(calls: int, starts: int) -> None:
    with FakeKimi() as fake, tempfile.TemporaryDirectory() as home:
        calls_result = await per_call(fake, home, calls)
        start_result = await cold_start(fake, home, starts)
    report = {
        **{k: round(v, 4) for k, v in {**calls_result, **start_result}.items()},
        "kimi_client_vs_raw_http": round(calls_result["kimi_client_s"] / calls_result["raw_http_s"], 2),
        "kimi_chat_tool_vs_raw_http": round(calls_result["kimi_chat_tool_s"] / calls_result["raw_http_s"], 2),
        "stdio_ready_vs_import_mcp": round(start_result["stdio_ready_s"] / start_result["import_mcp_s"], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    logs.configure(debug=False)
    anyio.run(main, args.calls, args.starts)
