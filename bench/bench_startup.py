"""Benchmark: how fast a host gets a usable kimi-mcp, and what a fresh server's first `kimi_chat` costs.

Everything runs over stdio against subprocesses, as a host runs them, with the fake Kimi on 127.0.0.1. Every
figure is a ratio against a baseline measured in the same run, each a median over several fresh servers (the
machine is shared and noisy):

- start-up: spawn until `initialize` is answered, `kimi-mcp serve` (the console script) vs a bare-SDK MCPServer
  with one tool (bench/minimal_server.py); `import mcp.server` alone for scale;
- tools/list right after initialize, warm-up on vs off (the warm-up must not slow it: it starts after), and
  tools/list asked every 50 ms while the warm-up runs (median and worst per server), on vs off;
- first `kimi_chat` 3 s after tools/list vs a steady-state call on the same server (goal <= 1.3x), and the
  same first call with the warm-up off, for scale.

    python bench/bench_startup.py [--servers 5] [--calls 10] [--idle 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from kimi_mcp.testing.fake_kimi import FakeKimi

KEY = "sk-kimi-test-key"
HERE = Path(__file__).resolve().parent
# `warm_up` is the only difference between the two: the same settings, logging and transport as `kimi-mcp serve`.
SERVE = (
    "from kimi_mcp import logs; from kimi_mcp.settings import Settings; from kimi_mcp.server.app import build_server; "
    "s = Settings.from_env(); logs.configure(s.debug); build_server(s, warm_up={warm}).run('stdio')"
)


def console_script() -> StdioServerParameters:
    return StdioServerParameters(command=str(Path(sys.executable).parent / "kimi-mcp"), args=["serve"])


def python_server(warm: bool) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-c", SERVE.format(warm=warm)])


def with_env(params: StdioServerParameters, env: dict[str, str]) -> StdioServerParameters:
    return params.model_copy(update={"env": env})


async def start_up(env: dict[str, str], servers: int) -> dict[str, float]:
    """Spawn until `initialize` is answered, interleaved so that load spikes hit every variant alike."""
    minimal = StdioServerParameters(command=sys.executable, args=[str(HERE / "minimal_server.py")], env=env)
    samples: dict[str, list[float]] = {"import_mcp_s": [], "minimal_initialize_s": [], "kimi_initialize_s": []}
    for _ in range(servers):
        started = time.perf_counter()
        await anyio.run_process([sys.executable, "-c", "import mcp.server"], check=True)
        samples["import_mcp_s"].append(time.perf_counter() - started)
        for key, params in (("minimal_initialize_s", minimal), ("kimi_initialize_s", with_env(console_script(), env))):
            started = time.perf_counter()
            async with Client(params, mode="legacy"):
                samples[key].append(time.perf_counter() - started)
    return {key: statistics.median(values) for key, values in samples.items()}


async def first_call(params: StdioServerParameters, idle: float, calls: int) -> tuple[float, float, float]:
    """One fresh server: tools/list right after initialize, the first kimi_chat `idle` s later, then the median
    of `calls` steady-state calls."""
    async with Client(params, mode="legacy") as client:
        started = time.perf_counter()
        await client.list_tools()
        list_s = time.perf_counter() - started
        await anyio.sleep(idle)
        started = time.perf_counter()
        result = await client.call_tool("kimi_chat", {"prompt": "first"})
        first_s = time.perf_counter() - started
        assert not result.is_error, result
        steady = []
        for i in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("kimi_chat", {"prompt": f"steady {i}"})
            steady.append(time.perf_counter() - started)
            assert not result.is_error, result
    return list_s, first_s, statistics.median(steady)


async def lists_during_warm_up(params: StdioServerParameters, seconds: float) -> list[float]:
    """tools/list answered again and again for `seconds` after the first one: the window the warm-up runs in."""
    samples = []
    async with Client(params, mode="legacy") as client:
        await client.list_tools()
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            started = time.perf_counter()
            await client.list_tools()
            samples.append(time.perf_counter() - started)
            await anyio.sleep(0.05)
    return samples


async def list_latency(env: dict[str, str], servers: int, seconds: float) -> dict[str, float]:
    runs: dict[bool, list[float]] = {True: [], False: []}
    worst: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(servers):
        for warm in (True, False):
            samples = await lists_during_warm_up(with_env(python_server(warm), env), seconds)
            runs[warm].extend(samples)
            worst[warm].append(max(samples))
    return {
        "tools_list_during_warm_up_median_s": statistics.median(runs[True]),
        "tools_list_no_warm_up_median_s": statistics.median(runs[False]),
        "tools_list_during_warm_up_worst_s": statistics.median(worst[True]),
        "tools_list_no_warm_up_worst_s": statistics.median(worst[False]),
    }


async def first_calls(env: dict[str, str], servers: int, calls: int, idle: float) -> dict[str, float]:
    runs: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
    for _ in range(servers):
        for warm in (True, False):
            runs[warm].append(await first_call(with_env(python_server(warm), env), idle, calls))
    warm, cold = runs[True], runs[False]
    return {
        "tools_list_warm_up_s": statistics.median(r[0] for r in warm),
        "tools_list_no_warm_up_s": statistics.median(r[0] for r in cold),
        "first_chat_s": statistics.median(r[1] for r in warm),
        "steady_chat_s": statistics.median(r[2] for r in warm),
        "first_chat_no_warm_up_s": statistics.median(r[1] for r in cold),
        "steady_chat_no_warm_up_s": statistics.median(r[2] for r in cold),
        # per server first/steady, then the median over servers: each ratio compares calls of one process
        "first_vs_steady": statistics.median(r[1] / r[2] for r in warm),
        "first_vs_steady_no_warm_up": statistics.median(r[1] / r[2] for r in cold),
    }


async def main(servers: int, calls: int, idle: float) -> None:
    with FakeKimi() as fake, tempfile.TemporaryDirectory() as home:
        env = {"PATH": os.environ.get("PATH", ""), "KIMI_API_KEY": KEY, "KIMI_CODE_BASE_URL": fake.base_url}
        env["KIMI_MCP_HOME"] = str(Path(home) / "kimi-mcp")
        start = await start_up(env, servers)
        chat = await first_calls(env, servers, calls, idle)
        lists = await list_latency(env, servers, idle)
    report = {
        **{key: round(value, 4) for key, value in {**start, **chat, **lists}.items()},
        "kimi_initialize_vs_minimal_sdk_server": round(start["kimi_initialize_s"] / start["minimal_initialize_s"], 2),
        "tools_list_warm_up_vs_off": round(chat["tools_list_warm_up_s"] / chat["tools_list_no_warm_up_s"], 2),
        "tools_list_during_warm_up_vs_off": round(
            lists["tools_list_during_warm_up_median_s"] / lists["tools_list_no_warm_up_median_s"], 2
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=5, help="fresh servers per variant (medians over them)")
    parser.add_argument("--calls", type=int, default=10, help="steady-state calls per server")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds between tools/list and the first call")
    args = parser.parse_args()
    anyio.run(main, args.servers, args.calls, args.idle)
