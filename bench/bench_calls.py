"""Benchmark: what kimi-mcp adds to one call to Kimi (P1 over stdio), how fast a host can start it (P2), and how
much of a multi-turn conversation the prompt cache serves (P5).

Everything runs against the fake Kimi on 127.0.0.1, and every figure is a ratio against a floor measured in the
same run (the machine is shared and noisy):

- P1 over stdio: `kimi_chat` on `kimi-mcp serve` against the `chat` tool of a bare-SDK MCPServer (`--bare-stdio`,
  this script's own child: one tool that streams the same /v1/messages request from the fake with httpx2 and
  returns the text), both over stdio through a real `mcp.Client`, alternating call by call. Each server is first
  brought to where a host leaves it: tools listed, kimi-mcp's warm-up over (its CPU idle), a few calls made.
  Goal <= 1.10x (the issue's P1);
- per call, in process: a raw httpx2 streaming POST to /v1/messages vs `KimiClient.chat` vs `kimi_chat` through
  an in-memory MCP client (store, progress and all): where the overhead sits;
- P2 cold start: `python -c "import mcp.server"` (the SDK's own import cost: the floor) vs spawning
  `kimi-mcp serve` over stdio until `tools/list` answers;
- P5 cache share: a 10-turn conversation (a ~14 KB system prompt, then short turns) through `kimi_chat`; for each
  turn after the first, the tokens the fake's emulated prompt cache (kimi_mcp/testing/fake_cache.py, the rules of
  docs/kimi-api.md §6) served, over the previous turn's whole prompt (the floor: everything already sent once).
  Goal >= 0.9.

    python bench/bench_calls.py [--calls 40] [--starts 5] [--turns 10] [--smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is no package: _results.py sits beside us
from _results import Recorder, headline

from kimi_mcp import logs
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock
from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.mcp_results import chat_meta

KEY = "sk-kimi-test-key"
P1_GOAL, P5_GOAL = 1.10, 0.9


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


# -- P1 over stdio ------------------------------------------------------------------------------------------------


def serve_bare_stdio(upstream: str) -> None:
    """The floor's server over stdio (what hosts spawn)."""
    bare_server(upstream).run("stdio")


def bare_server(upstream: str) -> Any:
    """The floor: a bare MCPServer with one tool streaming the request kimi_chat sends (bench_http serves it over
    streamable HTTP). No log line per request: the floor, not a chatty server."""
    import httpx2
    from mcp.server import MCPServer

    from kimi_mcp.testing.fake_kimi import DEFAULT_API_KEY

    server = MCPServer("bare", log_level="WARNING")
    pool: list[httpx2.AsyncClient] = []

    @server.tool()
    async def chat(prompt: str) -> str:
        """Send the prompt to /v1/messages, streaming, and return the text."""
        if not pool:
            pool.append(httpx2.AsyncClient(timeout=60))
        body = {
            "model": "kimi-for-coding",
            "max_tokens": 1024,
            "stream": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        }
        headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
        parts: list[str] = []
        async with pool[0].stream("POST", f"{upstream}/v1/messages", json=body, headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event.get("type") == "content_block_delta" and event["delta"].get("type") == "text_delta":
                        parts.append(event["delta"]["text"])
        return "".join(parts)

    return server


def child_pids(parent: int) -> set[int]:
    """Processes whose parent is `parent` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.add(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle(pid: int, *, quiet_s: float = 0.5, cpu_share: float = 0.05, limit_s: float = 60.0) -> None:
    """Wait until `pid` uses under `cpu_share` of a core over `quiet_s`: kimi-mcp's warm-up (the SDK import) is over."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        before = cpu_seconds(pid)
        await anyio.sleep(quiet_s)
        if cpu_seconds(pid) - before < cpu_share * quiet_s:
            return


async def p1_stdio(fake: FakeKimi, env: dict[str, str], calls: int) -> dict[str, float]:
    """kimi_chat over stdio vs the bare server's chat over stdio, alternating call by call (who goes first too)."""
    kimi = StdioServerParameters(command=str(Path(sys.executable).parent / "kimi-mcp"), args=["serve"], env=env)
    bare = StdioServerParameters(command=sys.executable, args=[__file__, "--bare-stdio", fake.base_url], env=env)
    samples: dict[str, list[float]] = {"kimi": [], "bare": []}
    before = child_pids(os.getpid())
    async with Client(kimi, mode="legacy") as kimi_client, Client(bare, mode="legacy") as bare_client:
        clients = {"kimi": (kimi_client, "kimi_chat"), "bare": (bare_client, "chat")}
        for client, _ in clients.values():
            await client.list_tools()  # a host lists the tools on connecting: kimi-mcp's warm-up starts then
        for pid in child_pids(os.getpid()) - before:
            await idle(pid)

        async def call(name: str, prompt: str) -> float:
            client, tool = clients[name]
            started = time.perf_counter()
            result = await client.call_tool(tool, {"prompt": prompt})
            elapsed = time.perf_counter() - started
            assert not result.is_error, result
            return elapsed

        for i in range(3):  # pools, the store
            for name in clients:
                await call(name, f"warm {i}")
        for i in range(calls):
            for name in ("kimi", "bare") if i % 2 == 0 else ("bare", "kimi"):
                samples[name].append(await call(name, f"q{i}"))
    return {
        "p1_stdio_kimi_s": statistics.median(samples["kimi"]),
        "p1_stdio_bare_s": statistics.median(samples["bare"]),
    }


# -- P2 cold start ------------------------------------------------------------------------------------------------


async def cold_start(env: dict[str, str], starts: int) -> dict[str, float]:
    baseline_samples, server_samples = [], []
    script = Path(sys.executable).parent / "kimi-mcp"
    for _ in range(starts):
        started = time.perf_counter()
        await anyio.run_process([sys.executable, "-c", "import mcp.server"], check=True)
        baseline_samples.append(time.perf_counter() - started)
        started = time.perf_counter()
        async with Client(StdioServerParameters(command=str(script), args=["serve"], env=env)) as client:
            await client.list_tools()
        server_samples.append(time.perf_counter() - started)
    return {"import_mcp_s": statistics.median(baseline_samples), "stdio_ready_s": statistics.median(server_samples)}


# -- P5 cache share -----------------------------------------------------------------------------------------------


async def cache_share(fake: FakeKimi, home: str, turns: int) -> dict[str, float]:
    """Per turn after the first: cache-read tokens over the previous turn's whole prompt."""
    settings = Settings(api_key=KEY, base_url=fake.base_url, home=Path(home) / "cache")
    system = "You review Python code carefully. " * 400  # ~14 KB: a realistic long system prompt
    usages = []
    async with Client(build_server(settings), mode="legacy") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "Turn 1: " + "context " * 300, "system": system})
        assert not first.is_error, first
        meta = chat_meta(first)
        usages.append(meta["usage"])
        for turn in range(2, turns + 1):
            arguments = {"prompt": f"Turn {turn}: and now?", "conversation_id": meta["conversation_id"]}
            result = await client.call_tool("kimi_chat", arguments)
            assert not result.is_error, result
            usages.append(chat_meta(result)["usage"])

    def prompt(usage: dict[str, int]) -> int:
        return usage["input_tokens"] + usage["cache_read_tokens"]

    shares = [cur["cache_read_tokens"] / prompt(prev) for prev, cur in itertools.pairwise(usages)]
    later = usages[1:]
    return {
        "cache_share_of_previous_prompt_median": statistics.median(shares),
        "cache_share_of_previous_prompt_min": min(shares),
        "cache_read_share_of_all_prompt_tokens": sum(u["cache_read_tokens"] for u in later)
        / sum(prompt(u) for u in later),
        "turns": turns,
    }


async def main(args: argparse.Namespace) -> None:
    recorder = Recorder("bench_calls", smoke=args.smoke)
    with FakeKimi() as fake, tempfile.TemporaryDirectory() as home:
        env = {"PATH": os.environ.get("PATH", ""), "KIMI_API_KEY": KEY, "KIMI_CODE_BASE_URL": fake.base_url}
        env["KIMI_MCP_HOME"] = str(Path(home) / "stdio")
        figures: dict[str, float] = {
            **await per_call(fake, home, args.calls),
            **await p1_stdio(fake, env, args.calls),
            **await cold_start(env, args.starts),
            **await cache_share(fake, home, args.turns),
        }
    f = figures
    figures |= {
        "kimi_client_vs_raw_http": f["kimi_client_s"] / f["raw_http_s"],
        "kimi_chat_tool_vs_raw_http": f["kimi_chat_tool_s"] / f["raw_http_s"],
        "p1_stdio_ratio": f["p1_stdio_kimi_s"] / f["p1_stdio_bare_s"],
        "stdio_ready_vs_import_mcp": f["stdio_ready_s"] / f["import_mcp_s"],
    }
    headlines = [
        headline("P1 stdio", "one kimi_chat over stdio (fake answers at once), vs a bare-SDK stdio server's tool "
                 "streaming the same request", f["p1_stdio_ratio"], floor="bare MCPServer tool over stdio",
                 floor_value=f["p1_stdio_bare_s"], goal=f"<= {P1_GOAL:.2f}x", goal_met=f["p1_stdio_ratio"] <= P1_GOAL),
        headline("P2 cold start", "spawn `kimi-mcp serve` until tools/list answers, vs `import mcp.server`",
                 f["stdio_ready_vs_import_mcp"], floor="python -c 'import mcp.server'", floor_value=f["import_mcp_s"]),
        headline("P5 cache share", f"{args.turns}-turn conversation: cache-read tokens over the previous turn's whole "
                 "prompt (median of turns 2+), emulated cache", f["cache_share_of_previous_prompt_median"],
                 unit="share", floor="the previous prompt, all of it (1.0)", floor_value=1.0, goal=f">= {P5_GOAL}",
                 goal_met=f["cache_share_of_previous_prompt_min"] >= P5_GOAL),
    ]  # fmt: skip
    report = recorder.write(args.json, figures, headlines)
    print(json.dumps(report["figures"], indent=2))
    for h in headlines:
        print(f"{h['id']}: {h['value']} {h['unit']} (goal {h['goal']}: {h['goal_met']})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="a tiny run (3 calls, 1 start, 3 turns): it works")
    parser.add_argument("--json", metavar="PATH", help="write the figures, headlines, machine and load here")
    parser.add_argument("--bare-stdio", metavar="UPSTREAM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_stdio:
        serve_bare_stdio(args.bare_stdio)
        sys.exit(0)
    if args.smoke:
        args.calls, args.starts, args.turns = 3, 1, 3
    logs.configure(debug=False)
    anyio.run(main, args)
