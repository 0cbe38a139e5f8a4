"""Benchmark: how fast a host gets a usable kimi-mcp, and what a fresh server's first `kimi_chat` costs.

Everything runs over stdio against subprocesses, as a host runs them, with the fake Kimi on 127.0.0.1. Every
figure is a ratio against a baseline measured in the same run, each a median over several fresh servers (the
machine is shared and noisy):

- start-up: spawn until `initialize` is answered, `kimi-mcp serve` (the console script) vs a bare-SDK MCPServer
  with one tool (bench/minimal_server.py); `import mcp.server` alone for scale;
- tools/list right after initialize, warm-up on vs off (the warm-up must not slow it: it starts after), and
  tools/list asked every 50 ms while the warm-up runs (median and worst per server), on vs off;
- first `kimi_chat` 3 s after tools/list vs a steady-state call on the same server (goal <= 1.3x), vs a call
  after the same idle on a server that has already called (idling alone), and the first call with the warm-up
  off, for scale;
- P6: the size of the tools/list answer (its JSON, as a host puts it in its model's context), in characters,
  against the goal of 6,000 (no floor: the bare server's one tool is listed for scale).

    python bench/bench_startup.py [--servers 5] [--calls 10] [--idle 3] [--smoke] [--json PATH]
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
from typing import NamedTuple

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is no package: _results.py sits beside us
from _results import Recorder, headline

from kimi_mcp.testing.fake_kimi import FakeKimi

KEY = "sk-kimi-test-key"
P2_GOAL, P6_GOAL, P7_GOAL = None, 6000, 1.3
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
    kimi = with_env(console_script(), env)
    for i in range(servers):
        started = time.perf_counter()
        await anyio.run_process([sys.executable, "-c", "import mcp.server"], check=True)
        samples["import_mcp_s"].append(time.perf_counter() - started)
        pair = [("minimal_initialize_s", minimal), ("kimi_initialize_s", kimi)]
        for key, params in pair if i % 2 == 0 else pair[::-1]:
            started = time.perf_counter()
            async with Client(params, mode="legacy"):
                samples[key].append(time.perf_counter() - started)
    return {key: statistics.median(values) for key, values in samples.items()}


def alternating(servers: int) -> list[bool]:
    """Warm-up on/off in alternating order (on, off, off, on, ...) so that neither always follows the other."""
    order: list[bool] = []
    for i in range(servers):
        order += [True, False] if i % 2 == 0 else [False, True]
    return order


async def list_after_initialize(env: dict[str, str], servers: int) -> dict[str, float]:
    """tools/list right after initialize, as a host asks it, on fresh servers with the warm-up on and off."""
    samples: dict[bool, list[float]] = {True: [], False: []}
    for warm in alternating(servers):
        async with Client(with_env(python_server(warm), env), mode="legacy") as client:
            started = time.perf_counter()
            await client.list_tools()
            samples[warm].append(time.perf_counter() - started)
    return {
        "tools_list_warm_up_s": statistics.median(samples[True]),
        "tools_list_no_warm_up_s": statistics.median(samples[False]),
    }


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
    every: dict[bool, list[float]] = {True: [], False: []}
    worst: dict[bool, list[float]] = {True: [], False: []}
    for warm in alternating(servers):
        samples = await lists_during_warm_up(with_env(python_server(warm), env), seconds)
        every[warm].extend(samples)
        worst[warm].append(max(samples))
    return {
        "tools_list_during_warm_up_median_s": statistics.median(every[True]),
        "tools_list_no_warm_up_median_s": statistics.median(every[False]),
        "tools_list_during_warm_up_worst_s": statistics.median(worst[True]),
        "tools_list_no_warm_up_worst_s": statistics.median(worst[False]),
    }


def listed_size(listed: object) -> int:
    """Characters of the tools/list result as JSON (what tests/server/test_tools.py bounds)."""
    return len(json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True)))  # type: ignore[attr-defined]


async def tools_list_size(env: dict[str, str]) -> dict[str, float]:
    """P6: kimi-mcp's tools/list in characters; the bare server's one `echo` tool for scale."""
    sizes = {}
    minimal = StdioServerParameters(command=sys.executable, args=[str(HERE / "minimal_server.py")], env=env)
    for key, params in (("tools_list_chars", with_env(console_script(), env)), ("minimal_tools_list_chars", minimal)):
        async with Client(params, mode="legacy") as client:
            sizes[key] = listed_size(await client.list_tools())
    return sizes


class FirstCall(NamedTuple):
    first_s: float  # the first kimi_chat, `idle` s after tools/list
    steady_s: float  # median of back-to-back calls right after it
    after_idle_s: float  # one more call after the same idle: what idling alone costs a used server


async def first_call(params: StdioServerParameters, idle: float, calls: int) -> FirstCall:
    async def chat(prompt: str) -> float:
        started = time.perf_counter()
        result = await client.call_tool("kimi_chat", {"prompt": prompt})
        assert not result.is_error, result
        return time.perf_counter() - started

    async with Client(params, mode="legacy") as client:
        await client.list_tools()
        await anyio.sleep(idle)
        first = await chat("first")
        steady = [await chat(f"steady {i}") for i in range(calls)]
        await anyio.sleep(idle)
        after_idle = await chat("after idling")
    return FirstCall(first, statistics.median(steady), after_idle)


async def first_calls(env: dict[str, str], servers: int, calls: int, idle: float) -> dict[str, float]:
    runs: dict[bool, list[FirstCall]] = {True: [], False: []}
    for warm in alternating(servers):
        runs[warm].append(await first_call(with_env(python_server(warm), env), idle, calls))
    on, off = runs[True], runs[False]
    # Ratios per server (calls of one process), then the median over servers.
    return {
        "first_chat_s": statistics.median(r.first_s for r in on),
        "steady_chat_s": statistics.median(r.steady_s for r in on),
        "used_server_chat_after_idle_s": statistics.median(r.after_idle_s for r in on),
        "first_chat_no_warm_up_s": statistics.median(r.first_s for r in off),
        "steady_chat_no_warm_up_s": statistics.median(r.steady_s for r in off),
        "first_vs_steady": statistics.median(r.first_s / r.steady_s for r in on),
        "first_vs_used_server_after_idle": statistics.median(r.first_s / r.after_idle_s for r in on),
        "first_vs_steady_no_warm_up": statistics.median(r.first_s / r.steady_s for r in off),
    }


async def main(args: argparse.Namespace) -> None:
    recorder = Recorder("bench_startup", smoke=args.smoke)
    servers, calls, idle = args.servers, args.calls, args.idle
    with FakeKimi() as fake, tempfile.TemporaryDirectory() as home:
        env = {"PATH": os.environ.get("PATH", ""), "KIMI_API_KEY": KEY, "KIMI_CODE_BASE_URL": fake.base_url}
        env["KIMI_MCP_HOME"] = str(Path(home) / "kimi-mcp")
        figures = {
            **await start_up(env, servers),
            **await list_after_initialize(env, 2 * servers),
            **await first_calls(env, servers, calls, idle),
            **await list_latency(env, servers, idle),
            **await tools_list_size(env),
        }

    def ratio(numerator: str, denominator: str) -> float:
        return round(figures[numerator] / figures[denominator], 2)

    figures |= {
        "kimi_initialize_vs_minimal_sdk_server": ratio("kimi_initialize_s", "minimal_initialize_s"),
        "tools_list_warm_up_vs_off": ratio("tools_list_warm_up_s", "tools_list_no_warm_up_s"),
        "tools_list_during_warm_up_vs_off": ratio(
            "tools_list_during_warm_up_median_s", "tools_list_no_warm_up_median_s"
        ),
    }
    f = figures
    headlines = [
        headline("P2 initialize", "spawn `kimi-mcp serve` until `initialize` is answered, vs a bare-SDK server",
                 f["kimi_initialize_vs_minimal_sdk_server"], floor="bench/minimal_server.py (MCPServer, one tool)",
                 floor_value=f["minimal_initialize_s"]),
        headline("P6 tool text", "tools/list answer, JSON characters (3 tools)", f["tools_list_chars"], unit="chars",
                 floor="none (bare server's one tool, for scale)", floor_value=f["minimal_tools_list_chars"],
                 goal=f"<= {P6_GOAL:,}", goal_met=f["tools_list_chars"] <= P6_GOAL),
        headline("P7 first call", f"first kimi_chat {idle:g} s after tools/list, vs a steady call on the same server",
                 f["first_vs_steady"], floor="median steady kimi_chat, same server", floor_value=f["steady_chat_s"],
                 goal=f"<= {P7_GOAL}x", goal_met=f["first_vs_steady"] <= P7_GOAL),
    ]  # fmt: skip
    report = recorder.write(args.json, figures, headlines)
    print(json.dumps(report["figures"], indent=2))
    for h in headlines:
        print(f"{h['id']}: {h['value']} {h['unit']} (goal {h['goal']}: {h['goal_met']})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=5, help="fresh servers per variant (medians over them)")
    parser.add_argument("--calls", type=int, default=10, help="steady-state calls per server")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds between tools/list and the first call")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (1 server, 2 calls, 0.5 s idle): it works")
    parser.add_argument("--json", metavar="PATH", help="write the figures, headlines, machine and load here")
    args = parser.parse_args()
    if args.smoke:
        args.servers, args.calls, args.idle = 1, 2, 0.5
    anyio.run(main, args)
