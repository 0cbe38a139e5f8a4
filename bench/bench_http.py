"""Benchmark: kimi-mcp over streamable HTTP — many callers at once, and what it adds to one call.

Everything runs against the fake Kimi on 127.0.0.1; each figure is a ratio against a baseline measured in the
same run (the machine is shared and noisy). Servers run as separate processes, clients are `mcp.Client`s over
HTTP with their own connection pools:

- P4: 50 `kimi_chat` calls at once over 5 sessions, the fake taking `--latency` (200 ms) per answer, vs one
  `kimi_chat` call alone at the same latency. Target: wall ≤ 1.5× one call, 0 errors. kimi-mcp runs with
  KIMI_MCP_MAX_CONCURRENCY=50, so the per-credential limit (30 by default, docs/kimi-api.md §9) does not queue
  the calls in two waves: this measures the server, not the limit.
  The same 50-vs-one ratio for the bare server below (`p4_bare_*`) is the floor the SDK and this machine allow;
  `*_cpu_s` say where the time went (the server process; the clients and the fake, which share this process).
- P1 over HTTP: one `kimi_chat` call (token check, store, progress and all) vs one call of a bare `MCPServer`
  HTTP app whose only tool streams the same request from the fake with httpx2. Target: ≤ 1.10×. Measured with
  the fake answering at once (`p1_*`, the overhead laid bare) and at `--latency` (`p1_at_latency_*`).

    python bench/bench_http.py [--calls 30] [--rounds 3] [--latency 0.2]

`--bare-server UPSTREAM` is the baseline server itself (run by the benchmark, not by hand).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from kimi_mcp import logs
from kimi_mcp.testing.fake_kimi import DEFAULT_API_KEY, FakeKimi, Reply
from kimi_mcp.testing.fake_script import Usage, stream_events

TOKEN = "bench-http-token-0123456789abcdef"
READY = "serving MCP on "
SESSIONS = 5
CONCURRENT = 50
ANSWER = "Bench answer."


# -- the baseline server: a bare MCPServer whose one tool streams from the fake ---------------------------------


def serve_bare(upstream: str) -> None:
    """An MCPServer over streamable HTTP (SSE answers, like kimi-mcp), one tool, one httpx2 pool."""
    import uvicorn
    from mcp.server import MCPServer

    server = MCPServer("bare")
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

    sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
    print(f"bare: {READY}http://127.0.0.1:{sock.getsockname()[1]}/mcp", file=sys.stderr, flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning", access_log=False, lifespan="on")
    anyio.run(uvicorn.Server(config).serve, [sock])


# -- processes and sessions -----------------------------------------------------------------------------------


class ServerProcess:
    """A server child process; its stderr is drained by a thread until it prints the URL it serves."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if self.url is None and READY in line:
                self.url = line.split(READY, 1)[1].strip()
                self._ready.set()
        self._ready.set()

    def wait_url(self) -> str:
        self._ready.wait(120)
        if self.url is None:
            raise RuntimeError("server did not start:\n" + "".join(self.lines))
        return self.url

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


@asynccontextmanager
async def session(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120, read=300)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            yield client


def paced(fake: FakeKimi, latency: float, count: int) -> None:
    """Queue `count` answers that each take about `latency` seconds, spread over the stream's events."""
    events = len(stream_events(Reply(text=ANSWER), message_id="m", model="m", usage=Usage()))
    fake.script(*[Reply(text=ANSWER, delay=latency / (events - 1)) for _ in range(count)])


# -- measurements ---------------------------------------------------------------------------------------------


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def p1(kimi_url: str, bare_url: str, calls: int) -> dict[str, float]:
    """Median seconds of one call, the two servers in alternating order (fake answers at once)."""
    kimi_samples, bare_samples = [], []
    async with session(kimi_url, TOKEN) as kimi, session(bare_url, None) as bare:

        async def kimi_call() -> None:
            result = await kimi.call_tool("kimi_chat", {"prompt": "q"})
            assert not result.is_error, result

        async def bare_call() -> None:
            result = await bare.call_tool("chat", {"prompt": "q"})
            assert not result.is_error, result

        for _ in range(3):  # warm-up: imports, pools, the store
            await kimi_call()
            await bare_call()
        for i in range(calls):
            pair = [(kimi_samples, kimi_call), (bare_samples, bare_call)]
            for samples, call in pair if i % 2 == 0 else reversed(pair):
                samples.append(await timed(call))
    return {"p1_kimi_chat_s": statistics.median(kimi_samples), "p1_bare_sdk_s": statistics.median(bare_samples)}


async def fifty_at_once(url: str, token: str | None, tool: str) -> tuple[float, int]:
    """Wall seconds of 50 calls at once over 5 fresh sessions, and how many failed."""
    failed = 0
    async with (
        session(url, token) as s0,
        session(url, token) as s1,
        session(url, token) as s2,
        session(url, token) as s3,
        session(url, token) as s4,
    ):
        clients = [s0, s1, s2, s3, s4]

        async def call(n: int) -> None:
            nonlocal failed
            result = await clients[n % SESSIONS].call_tool(tool, {"prompt": f"concurrent {n}"})
            failed += bool(result.is_error)

        async def all_at_once() -> None:
            async with anyio.create_task_group() as group:
                for n in range(CONCURRENT):
                    group.start_soon(call, n)

        return await timed(all_at_once), failed


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def p4(
    fake: FakeKimi, server: ServerProcess, token: str | None, tool: str, latency: float, rounds: int
) -> dict[str, float]:
    """One call alone (median of 5), then `rounds` rounds of 50 at once (median wall), at the fake's latency."""
    url = server.wait_url()
    async with session(url, token) as alone:
        singles = []
        for _ in range(5):
            paced(fake, latency, 1)
            singles.append(await timed(lambda: alone.call_tool(tool, {"prompt": "alone"})))
    walls, errors, server_cpu, bench_cpu = [], 0, [], []
    fake.max_messages_in_flight = 0
    for _ in range(rounds):
        paced(fake, latency, CONCURRENT)
        server_before, bench_before = cpu_seconds(server.process.pid), time.process_time()
        wall, failed = await fifty_at_once(url, token, tool)
        server_cpu.append(cpu_seconds(server.process.pid) - server_before)
        bench_cpu.append(time.process_time() - bench_before)  # clients and the fake, in this process
        walls.append(wall)
        errors += failed
    return {
        "one_call_s": statistics.median(singles),
        "fifty_wall_s": statistics.median(walls),
        "fifty_wall_worst_s": max(walls),
        "errors": errors,
        "max_in_flight_at_fake": fake.max_messages_in_flight,
        "fifty_server_cpu_s": statistics.median(server_cpu),
        "fifty_clients_and_fake_cpu_s": statistics.median(bench_cpu),
    }


async def main(calls: int, rounds: int, latency: float) -> None:
    path = {"PATH": os.environ.get("PATH", "")}
    with FakeKimi() as fake, tempfile.TemporaryDirectory() as home:
        env = {**path, "KIMI_API_KEY": DEFAULT_API_KEY, "KIMI_CODE_BASE_URL": fake.base_url, "KIMI_MCP_HOME": home}
        env |= {"KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_MCP_MAX_CONCURRENCY": str(CONCURRENT)}
        kimi_mcp = Path(sys.executable).parent / "kimi-mcp"
        kimi = ServerProcess([str(kimi_mcp), "serve", "--transport", "http", "--port", "0"], env)
        bare = ServerProcess([sys.executable, __file__, "--bare-server", fake.base_url], path)
        try:
            kimi_url, bare_url = kimi.wait_url(), bare.wait_url()
            one = await p1(kimi_url, bare_url, calls)
            many = await p4(fake, kimi, TOKEN, "kimi_chat", latency, rounds)
            bare_many = await p4(fake, bare, None, "chat", latency, rounds)
        finally:
            kimi.stop()
            bare.stop()
    figures = {**one, **{f"p4_{k}": v for k, v in many.items()}, **{f"p4_bare_{k}": v for k, v in bare_many.items()}}
    report = {
        **{key: round(value, 4) for key, value in figures.items()},
        "p4_fifty_vs_one_call": round(many["fifty_wall_s"] / many["one_call_s"], 2),
        "p4_bare_fifty_vs_one_call": round(bare_many["fifty_wall_s"] / bare_many["one_call_s"], 2),
        "p1_kimi_chat_vs_bare_sdk": round(one["p1_kimi_chat_s"] / one["p1_bare_sdk_s"], 2),
        "p1_at_latency_kimi_chat_vs_bare_sdk": round(many["one_call_s"] / bare_many["one_call_s"], 2),
        "latency_s": latency,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--bare-server", metavar="UPSTREAM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        serve_bare(args.bare_server)
    else:
        logs.configure(debug=False)
        logging.getLogger("mcp").setLevel(logging.WARNING)  # the client logs every session id at INFO
        anyio.run(main, args.calls, args.rounds, args.latency)
