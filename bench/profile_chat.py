"""Profile `kimi_chat` over stdio: where a running `kimi-mcp serve` spends its CPU on a call, and how much is ours.

`kimi-mcp serve` runs as a host runs it (the console script, stdio, a real `mcp.Client`) against the fake Kimi on
127.0.0.1, answering at once. Once its warm-up is over (its CPU idle) and a few calls are made, py-spy samples it
(`py-spy record --pid --gil`, 1,000 Hz, only the thread holding the GIL, so that a thread waiting for the GIL
does not count as busy (`--all-threads`: every thread, idle waits left out); it needs ptrace: run as root or with
CAP_SYS_PTRACE; `--nonblocking`: the process is not paused to be sampled) over `--calls` calls made one at a
time. One call costs the server some 10 ms of CPU, 10 samples: the profile of one call is the average over many,
reported in ms per call.

Reported (stdout, and `--json PATH` in bench/_results.py's shape):
- the server's CPU per call (/proc) and the sampled busy time per call;
- self time by package (the innermost frame's: `kimi_mcp` is ours), and the top functions by self time;
- the top functions by inclusive time (every sample a function is on the stack of), ours marked;
- each sample charged to the innermost of our frames on its stack: what our code does itself and what it calls
  (`stream_chat`: the request through the anthropic SDK; `_serve`: everything outside our tool, the MCP SDK).

No profiling hook is added to the product: py-spy reads the process from outside.

    python bench/profile_chat.py [--calls 300] [--rate 1000] [--json PATH] [--folded PATH] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is no package: its helpers sit beside us
from _results import Recorder
from bench_calls import child_pids, cpu_seconds, idle

from kimi_mcp.testing.fake_kimi import FakeKimi

KEY = "sk-kimi-test-key"
IDLE_FRAMES = ("select (selectors.py", "EpollSelector.select", "Condition.wait", "Event.wait", "Thread.join", "wait (")
OURS = "kimi_mcp/"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found (pip install py-spy)")
    return found


def package_of(frame: str) -> str:
    """`func (path/to/module.py:line)` → `kimi_mcp`, `anthropic`, `asyncio`, ... (the path's first part)."""
    where = frame.rpartition(" (")[2].rstrip(")")
    return where.split("/", 1)[0].removesuffix(".py").split(":", 1)[0]


def function_of(frame: str) -> str:
    """`func (path/to/module.py:line)` → `func (path/to/module.py)`: one entry per function, not per line."""
    name, _, where = frame.rpartition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else frame


def analyse(folded: Path, calls: int, top: int = 15) -> dict[str, Any]:
    """Self and inclusive samples per function and package, per call, from py-spy's raw (folded) output."""
    rate_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    nearest_ours: Counter[str] = Counter()  # each sample charged to the innermost of our frames on its stack
    ours_inclusive = 0
    busy = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if "(" in f]  # the leading thread/process entries have no location
        if not frames or frames[-1].startswith(IDLE_FRAMES):
            continue
        n = int(count)
        busy += n
        rate_samples[function_of(frames[-1])] += n
        by_package[package_of(frames[-1])] += n
        for function in {function_of(f) for f in frames}:
            inclusive[function] += n
        ours = [f for f in frames if OURS in f]
        if ours:
            ours_inclusive += n
            nearest_ours[function_of(ours[-1])] += n
    return {
        "busy_samples": busy,
        "self_by_package": dict(by_package.most_common(top)),
        "self_by_function": dict(rate_samples.most_common(top)),
        "inclusive_by_function": dict(inclusive.most_common(3 * top)),
        "by_nearest_ours_frame": dict(nearest_ours.most_common(top)),
        "ours_self_samples": by_package.get("kimi_mcp", 0),
        "samples_with_ours_on_stack": ours_inclusive,
        "calls": calls,
    }


async def profile(calls: int, rate: int, folded: Path, gil: bool) -> dict[str, Any]:
    with FakeKimi() as fake, tempfile.TemporaryDirectory() as home:
        env = {"PATH": os.environ.get("PATH", ""), "KIMI_API_KEY": KEY, "KIMI_CODE_BASE_URL": fake.base_url}
        env["KIMI_MCP_HOME"] = home
        params = StdioServerParameters(command=str(Path(sys.executable).parent / "kimi-mcp"), args=["serve"], env=env)
        before = child_pids(os.getpid())
        async with Client(params, mode="legacy") as client:
            (pid,) = child_pids(os.getpid()) - before
            await client.list_tools()  # as a host does: the warm-up starts
            await idle(pid)
            for i in range(5):  # pools, the store, first-call imports
                assert not (await client.call_tool("kimi_chat", {"prompt": f"warm {i}"})).is_error
            command = [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
            command += ["--gil"] if gil else []  # only the thread holding the GIL: CPU, not waits for the GIL
            command += ["--nonblocking"]  # no pause per sample: the calls run at their own pace
            spy = subprocess.Popen([*command, "-o", str(folded)], stdout=subprocess.DEVNULL)  # noqa: ASYNC220
            await anyio.sleep(1.0)  # py-spy attaches
            cpu_before, walls = cpu_seconds(pid), []
            for i in range(calls):
                started = time.perf_counter()
                result = await client.call_tool("kimi_chat", {"prompt": f"question {i}"})
                walls.append(time.perf_counter() - started)
                assert not result.is_error, result
            cpu = cpu_seconds(pid) - cpu_before
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    report = analyse(folded, calls)
    report |= {"server_cpu_ms_per_call": 1000 * cpu / calls, "wall_ms_per_call": 1000 * statistics.median(walls)}
    report["rate_hz"] = rate
    return report


def per_call_ms(samples: int, report: dict[str, Any]) -> float:
    return 1000 * samples / report["rate_hz"] / report["calls"]


def show(report: dict[str, Any]) -> None:
    busy_ms = per_call_ms(report["busy_samples"], report)
    print(f"server CPU per call {report['server_cpu_ms_per_call']:.2f} ms (/proc), sampled busy {busy_ms:.2f} ms, "
          f"call wall median {report['wall_ms_per_call']:.2f} ms")  # fmt: skip
    print(f"ours (kimi_mcp) self: {per_call_ms(report['ours_self_samples'], report):.2f} ms per call; on the stack "
          f"in {per_call_ms(report['samples_with_ours_on_stack'], report):.2f} ms")  # fmt: skip
    for title, key in (("self by package", "self_by_package"), ("self by function", "self_by_function")):
        print(f"\n{title} (ms per call, share of busy):")
        for name, n in report[key].items():
            mark = " *ours*" if OURS in name or name == "kimi_mcp" else ""
            print(f"  {per_call_ms(n, report):6.2f}  {n / report['busy_samples']:5.1%}  {name}{mark}")
    print("\ncharged to the innermost of our frames (ms per call):")
    for name, n in report["by_nearest_ours_frame"].items():
        print(f"  {per_call_ms(n, report):6.2f}  {n / report['busy_samples']:5.1%}  {name}")
    print("\ninclusive, ours (ms per call):")
    for name, n in report["inclusive_by_function"].items():
        if OURS in name:
            print(f"  {per_call_ms(n, report):6.2f}  {n / report['busy_samples']:5.1%}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument("--json", metavar="PATH", help="write the profile here")
    parser.add_argument("--folded", metavar="PATH", help="keep py-spy's folded stacks here")
    parser.add_argument("--all-threads", action="store_true", help="sample every thread, not only the GIL's")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 10 calls")
    args = parser.parse_args()
    if args.smoke:
        args.calls = 10
    recorder = Recorder("profile_chat", smoke=args.smoke)
    with tempfile.TemporaryDirectory() as scratch:
        folded = Path(args.folded) if args.folded else Path(scratch) / "kimi.folded.txt"
        report = anyio.run(profile, args.calls, args.rate, folded, not args.all_threads)
    show(report)
    ms = {key: report[key] for key in ("server_cpu_ms_per_call", "wall_ms_per_call")}
    ms |= {"busy_ms_per_call": per_call_ms(report["busy_samples"], report)}
    ms |= {"ours_self_ms_per_call": per_call_ms(report["ours_self_samples"], report)}
    written = recorder.write(args.json, ms, [])
    if args.json:  # the profile itself beside the figures
        Path(args.json).write_text(json.dumps(written | {"profile": report}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
