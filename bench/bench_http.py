"""Benchmark: kimi-mcp over streamable HTTP — many callers at once, and what it adds to one call.

Every party runs in a process of its own, each in a session of its own (`start_new_session`, as in
bench_media.py: with the kernel's autogroup scheduling each session gets an equal share of a busy CPU, so on a
2-core machine the load generator does not take the server's share, nor the server the fake's):

- the fake Kimi (`--fake`, run by the benchmark: a `FakeKimi` that queues paced answers on command);
- `kimi-mcp serve --transport http` (KIMI_MCP_MAX_CONCURRENCY=50, so the per-credential limit, 30 by default,
  docs/kimi-api.md §9, does not queue the calls in two waves: this measures the server, not the limit);
- the baseline (`--bare-server`): a bare `MCPServer` streamable HTTP app whose one tool streams the same request
  from the fake with httpx2, SSE answers like kimi-mcp;
- the load generator (`--clients`, `--client-procs` of them, 1 by default): `mcp.Client`s over HTTP, each MCP
  session with its own connection pool; they time every call themselves;
- this process, which only coordinates (JSON lines over pipes) and reads /proc.

Before any figure, each server is brought to the state a host's server is in when calls come: a session opened,
the tools listed, kimi-mcp's warm-up over (the `anthropic` import, then `gc.freeze()`: server/warmup.py; the
benchmark waits until the server's CPU is idle), three calls made. A call that races the warm-up imports the SDK
itself and nothing gets frozen: every later burst then pays full collections over ~220,000 objects, which is what
an earlier version of this benchmark measured.

Figures, each a ratio against a baseline measured in the same run, in alternating order:

- P1 over HTTP: one `kimi_chat` call (token check, store, progress and all) against one call of the bare app, the
  two alternating call by call; with the fake answering at once (`p1_0ms`, the overhead laid bare, with each
  server's CPU per call) and at `--latency` (`p1_latency`). Target ≤ 1.10×.
- P4: in each of `--rounds` rounds, for each server (the order alternating by round): 5 calls alone at `--latency`,
  then 50 calls at once over 5 fresh MCP sessions. Ratio: median wall of the 50 over the median single call, per
  server. Target ≤ 1.5×, 0 errors. The bare server's ratio is the floor the SDK and this machine allow.
  CPU seconds per party during each 50-call burst (/proc/<pid>/stat: the server, the fake, the clients, this
  process), the whole machine's busy CPU (/proc/stat; `others_s` is what went to other sessions' work) and the
  load average say where the time went.

    python bench/bench_http.py [--calls 20] [--rounds 3] [--latency 0.2] [--client-procs 1] [--sessions 5]

`--one-session` keeps every party in the caller's session (one scheduling group, as an earlier version ran them),
for comparison. `--nice -10` (root) gives every party's session that autogroup nice value (never the caller's own),
so that on a shared machine they get the CPU first: what the stack does with the cores to itself, near enough. It
slows everyone else's work meanwhile. (It needs the sessions of their own: not with `--one-session`.)
`--profile DIR` samples both servers with py-spy (`pip install py-spy`; it does not pause them, but takes CPU of its
own: figures from such a run are for finding costs, not for the record). DIR/kimi.folded.txt and DIR/bare.folded.txt
hold the folded stacks; the report adds each server's busy samples by package and its busiest functions (innermost
frames; idle waits left out). `--calls 200 --rounds 1` profiles mostly single calls, `--calls 1 --rounds 10` bursts.
`--fake`, `--bare-server UPSTREAM` and `--clients` are the benchmark's own children (not run by hand).
`--smoke`: 3 P1 calls, 1 round of 10 calls at once over 2 sessions (it works; the figures mean nothing).
`--json PATH`: the report in bench/_results.py's schema, with the P1-over-HTTP and P4 headlines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

TOKEN = "bench-http-token-0123456789abcdef"
READY = "serving MCP on "
ANSWER = "Bench answer."
SINGLES = 5  # calls alone per server and round: the P4 denominator
WARM_UP = 3
P1_GOAL, P4_GOAL = 1.10, 1.5


# -- child: the fake Kimi, pacing its answers on command --------------------------------------------------------


def run_fake() -> None:
    """FakeKimi on 127.0.0.1; prints {"base_url"} then answers one JSON line per command line on stdin."""
    from kimi_mcp.testing.fake_kimi import FakeKimi, Reply
    from kimi_mcp.testing.fake_script import Usage, stream_events

    events = len(stream_events(Reply(text=ANSWER), message_id="m", model="m", usage=Usage()))
    with FakeKimi() as fake:
        print(json.dumps({"base_url": fake.base_url}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "pace":  # `count` answers taking about `latency` s each, spread over the events
                delay = command["latency"] / (events - 1)
                fake.script(*[Reply(text=ANSWER, delay=delay) for _ in range(command["count"])])
                reply: dict[str, Any] = {}
            elif command["op"] == "reset":
                fake.max_messages_in_flight = fake.messages_in_flight
                reply = {}
            else:  # stats
                reply = {"max_in_flight": fake.max_messages_in_flight, "chat_requests": len(fake.chat_requests())}
            print(json.dumps(reply), flush=True)


# -- child: the baseline server, a bare MCPServer whose one tool streams from the fake --------------------------


def serve_bare(upstream: str) -> None:
    """An MCPServer over streamable HTTP (SSE answers, like kimi-mcp), one tool, one httpx2 pool."""
    import anyio
    import uvicorn

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is no package
    from bench_calls import bare_server

    server = bare_server(upstream)
    sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
    print(f"bare: {READY}http://127.0.0.1:{sock.getsockname()[1]}/mcp", file=sys.stderr, flush=True)
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning", access_log=False, lifespan="on")
    anyio.run(uvicorn.Server(config).serve, [sock])


# -- child: the load generator, MCP clients that time their own calls --------------------------------------------


def run_clients() -> None:
    """Holds named groups of MCP sessions; one JSON command per stdin line, one JSON answer per stdout line.

    `open` {name, url, token, count} opens `count` sessions; `close` {name}; `call` {name, tool} one call on the
    group's first session, timed; `burst` {name, tool, count} that many calls at once over the group's sessions,
    answered with monotonic start and end (comparable across processes on Linux) and the failures.
    """
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    logging.basicConfig(level=logging.WARNING)  # the client logs every session id at INFO

    @asynccontextmanager
    async def session(url: str, token: str | None) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120, read=300)) as http:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                yield client

    async def call(client: Client, tool: str, prompt: str) -> str | None:
        """None on success, else what went wrong."""
        try:
            result = await client.call_tool(tool, {"prompt": prompt})
        except Exception as exc:  # a failed call is a figure here, not the end of the benchmark
            return f"{type(exc).__name__}: {exc}"
        return str(result.content)[:300] if result.is_error else None

    async def burst(clients: list[Client], tool: str, count: int) -> dict[str, Any]:
        errors: list[str] = []

        async def one(n: int) -> None:
            error = await call(clients[n % len(clients)], tool, f"concurrent {n}")
            if error is not None:
                errors.append(error)

        start = time.monotonic()
        async with anyio.create_task_group() as group:
            for n in range(count):
                group.start_soon(one, n)
        return {"start": start, "end": time.monotonic(), "failed": len(errors), "errors": errors[:3]}

    async def main() -> None:
        groups: dict[str, tuple[AsyncExitStack, list[Client]]] = {}
        while line := await anyio.to_thread.run_sync(sys.stdin.readline):
            command = json.loads(line)
            op, name = command["op"], command["name"]
            reply: dict[str, Any] = {}
            if op == "open":
                stack = AsyncExitStack()
                clients = [
                    await stack.enter_async_context(session(command["url"], command["token"]))
                    for _ in range(command["count"])
                ]
                groups[name] = (stack, clients)
            elif op == "close":
                stack, _ = groups.pop(name)
                await stack.aclose()
            elif op == "list":  # what a host does on connecting; kimi-mcp starts its warm-up then
                await groups[name][1][0].list_tools()
            elif op == "call":
                started = time.perf_counter()
                error = await call(groups[name][1][0], command["tool"], "alone")
                reply = {"s": time.perf_counter() - started, "error": error}
            elif op == "burst":
                reply = await burst(groups[name][1], command["tool"], command["count"])
            print(json.dumps(reply), flush=True)
        for stack, _ in groups.values():
            await stack.aclose()

    anyio.run(main)


# -- the coordinator: processes, /proc ----------------------------------------------------------------------------


class Child:
    """A child process in a session of its own; stderr drained by a thread (servers print their URL there)."""

    nice: int | None = None  # the autogroup nice value given to every child's session (`--nice`)
    new_session = True  # False (`--one-session`): every child stays in the caller's session

    def __init__(self, role: str, command: list[str], env: dict[str, str]) -> None:
        self.role = role
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=Child.new_session,
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        if Child.nice is not None and Child.new_session:
            set_autogroup_nice(self.process.pid, Child.nice)

    @property
    def pid(self) -> int:
        return self.process.pid

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
            raise RuntimeError(f"{self.role} did not start:\n" + "".join(self.lines))
        return self.url

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.role} ended:\n" + "".join(self.lines[-30:]))
        return json.loads(line)

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        self.send(command)
        return self.receive()

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the fake and the clients end at the end of their input
        try:
            self.process.wait(0 if self.url else 10)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTERM)  # the servers drain and exit 0
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq) and stolen by the host."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def idle(pid: int, *, quiet_s: float = 0.5, cpu_share: float = 0.05, limit_s: float = 60.0) -> None:
    """Wait until process `pid` uses under `cpu_share` of a core over `quiet_s` (its warm-up is over)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(quiet_s)
        if cpu_seconds(pid) - before < cpu_share * quiet_s:
            return


def set_autogroup_nice(pid: int, nice: int) -> None:
    """The nice value of the scheduling group (the session) of `pid`: what it weighs against other sessions."""
    Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class Bench:
    """The children, and the measurements made through them."""

    def __init__(self, client_procs: int, sessions: int, concurrent: int) -> None:
        self.sessions, self.concurrent = sessions, concurrent
        self.latency = 0.0  # the fake's answer time in the bursts (set by `p4`)
        me = [sys.executable, __file__]
        path = {"PATH": os.environ.get("PATH", "")}
        self.fake = Child("fake", [*me, "--fake"], path)
        base_url = self.fake.receive()["base_url"]
        env = {**path, "KIMI_CODE_BASE_URL": base_url, "KIMI_MCP_HOME": tempfile.mkdtemp(prefix="bench-http-")}
        env |= {"KIMI_API_KEY": "sk-kimi-test-key", "KIMI_MCP_HTTP_TOKEN": TOKEN}
        env |= {"KIMI_MCP_MAX_CONCURRENCY": str(concurrent)}
        self.home = env["KIMI_MCP_HOME"]
        kimi_mcp = str(Path(sys.executable).parent / "kimi-mcp")
        self.servers = {
            "kimi": Child("kimi-mcp", [kimi_mcp, "serve", "--transport", "http", "--port", "0"], env),
            "bare": Child("bare SDK server", [*me, "--bare-server", base_url], path),
        }
        self.tools = {"kimi": "kimi_chat", "bare": "chat"}
        self.tokens = {"kimi": TOKEN, "bare": None}
        self.clients = [Child(f"clients {i}", [*me, "--clients"], path) for i in range(client_procs)]

    def stop(self) -> None:
        for child in [*self.clients, *self.servers.values(), self.fake]:
            child.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def start(self) -> None:
        """One session per server on the first client process (for the single calls). Each server is brought to
        the state a host's server is in when the calls come: the tools listed, kimi-mcp's warm-up over (the SDK
        import, then its objects frozen out of the collector's way: server/warmup.py), a few calls made."""
        for name, server in self.servers.items():
            self.clients[0].ask({"op": "open", "name": name, "url": server.wait_url(), "token": self.tokens[name],
                                 "count": 1})  # fmt: skip
            self.clients[0].ask({"op": "list", "name": name})
            idle(server.pid)
            for _ in range(WARM_UP):  # pools, the store
                self.call(name)

    def call(self, name: str) -> float:
        reply = self.clients[0].ask({"op": "call", "name": name, "tool": self.tools[name]})
        if reply["error"]:
            raise RuntimeError(f"{name} call failed: {reply['error']}")
        return reply["s"]

    def pace(self, count: int, latency: float) -> None:
        if latency:
            self.fake.ask({"op": "pace", "count": count, "latency": latency})

    def p1(self, calls: int, latency: float) -> dict[str, list[float]]:
        """One call at a time, kimi-mcp and the bare server alternating (who goes first alternating too)."""
        samples: dict[str, list[float]] = {"kimi": [], "bare": []}
        self.pace(2 * calls, latency)
        before = {name: cpu_seconds(server.pid) for name, server in self.servers.items()}
        for i in range(calls):
            for name in ("kimi", "bare") if i % 2 == 0 else ("bare", "kimi"):
                samples[name].append(self.call(name))
        for name, server in self.servers.items():  # each server serves only its own calls: its CPU per call
            samples[f"{name}_cpu"] = [(cpu_seconds(server.pid) - before[name]) / calls]
        return samples

    def burst(self, name: str) -> dict[str, Any]:
        """`concurrent` calls at once over `sessions` fresh sessions, spread over the client processes."""
        procs = len(self.clients)
        url, token, tool = self.servers[name].wait_url(), self.tokens[name], self.tools[name]
        for i, client in enumerate(self.clients):
            count = max(1, self.sessions // procs + (i < self.sessions % procs))
            client.ask({"op": "open", "name": "burst", "url": url, "token": token, "count": count})
        self.fake.ask({"op": "reset"})
        self.pace(self.concurrent, self.latency)
        pids = {"server": self.servers[name].pid, "fake": self.fake.pid}
        pids |= {f"clients_{i}": c.pid for i, c in enumerate(self.clients)}
        before = {party: cpu_seconds(pid) for party, pid in pids.items()}
        machine_before, steal_before, me_before = *machine_cpu(), time.process_time()
        load_before = load_average()
        for i, client in enumerate(self.clients):
            share = self.concurrent // procs + (i < self.concurrent % procs)
            client.send({"op": "burst", "name": "burst", "tool": tool, "count": share})
        replies = [client.receive() for client in self.clients]
        cpu = {party: cpu_seconds(pid) - before[party] for party, pid in pids.items()}
        machine_after, steal_after = machine_cpu()
        cpu["coordinator"] = time.process_time() - me_before
        stats = self.fake.ask({"op": "stats"})
        for client in self.clients:
            client.ask({"op": "close", "name": "burst"})
        wall = max(r["end"] for r in replies) - min(r["start"] for r in replies)
        ours = sum(cpu.values())
        cpu["clients"] = sum(v for k, v in cpu.items() if k.startswith("clients_"))
        return {
            "wall_s": wall,
            "failed": sum(r["failed"] for r in replies),
            "errors": [e for r in replies for e in r["errors"]][:3],
            "max_in_flight_at_fake": stats["max_in_flight"],
            "cpu_s": cpu,
            "machine_busy_s": machine_after - machine_before,
            "others_s": max(0.0, machine_after - machine_before - ours),  # the two /proc clocks tick apart
            "steal_s": steal_after - steal_before,
            "capacity_s": wall * (os.cpu_count() or 1),
            "load": [load_before, load_average()],
        }

    def p4(self, rounds: int, latency: float, names: tuple[str, ...]) -> dict[str, dict[str, list[Any]]]:
        self.latency = latency
        results: dict[str, dict[str, list[Any]]] = {n: {"singles": [], "single_cpu": [], "bursts": []} for n in names}
        for r in range(rounds):
            for name in names if r % 2 == 0 else tuple(reversed(names)):
                self.pace(SINGLES, latency)
                server_cpu = cpu_seconds(self.servers[name].pid)
                results[name]["singles"] += [self.call(name) for _ in range(SINGLES)]
                results[name]["single_cpu"].append((cpu_seconds(self.servers[name].pid) - server_cpu) / SINGLES)
                burst = self.burst(name)
                results[name]["bursts"].append(burst)
                print(
                    f"round {r + 1} {name}: one call {statistics.median(results[name]['singles'][-SINGLES:]):.3f} s, "
                    f"50 at once {burst['wall_s']:.3f} s, failed {burst['failed']}, cpu "
                    + ", ".join(f"{k} {v:.2f}" for k, v in burst["cpu_s"].items() if not k.startswith("clients_"))
                    + f", machine busy {burst['machine_busy_s']:.2f} of {burst['capacity_s']:.2f} s"
                    f" (others {burst['others_s']:.2f}), load {burst['load'][0]:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
        return results


# -- profiling (optional) -----------------------------------------------------------------------------------------


class PySpy:
    """py-spy sampling one process (without pausing it) into folded stacks, from start to `stop()`."""

    def __init__(self, pid: int, output: Path) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.output = output
        flags = os.environ.get("BENCH_PYSPY_FLAGS", "--nonblocking").split()  # e.g. "--native --gil"
        command = [spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", *flags]
        self.process = subprocess.Popen([*command, "-o", str(output)], stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)


IDLE_FRAMES = ("EpollSelector.select", "Condition.wait", "Event.wait", "Thread.join")


def package_of(frame: str) -> str:
    """`func (path/to/module.py:line)` → the top package (`kimi_mcp`, `anthropic`, `asyncio`, ...)."""
    where = frame.rpartition(" (")[2]
    return where.split("/", 1)[0].split(".py", 1)[0] if "/" in where else where.split(".py", 1)[0]


def profile_summary(path: Path, top: int = 12) -> dict[str, Any]:
    """Busy samples (idle waits left out) by the package of the innermost frame, and the busiest functions."""
    by_package: dict[str, int] = {}
    by_function: dict[str, int] = {}
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_FRAMES):
            continue
        n = int(count)
        busy += n
        by_package[package_of(frames[-1])] = by_package.get(package_of(frames[-1]), 0) + n
        by_function[frames[-1]] = by_function.get(frames[-1], 0) + n

    def shares(counts: dict[str, int]) -> dict[str, float]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return {name: round(n / busy, 3) for name, n in ranked}

    return {"busy_samples": busy, "self_by_package": shares(by_package), "self_by_function": shares(by_function)}


# -- report -------------------------------------------------------------------------------------------------------


def summary(p1_0: dict[str, list[float]], p1_l: dict[str, list[float]], p4: dict[str, dict[str, list[Any]]],
            load: list[float], args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    med = statistics.median
    report: dict[str, Any] = {"latency_s": args.latency, "client_procs": args.client_procs, "sessions": args.sessions}
    report["nice"], report["one_session"] = args.nice, args.one_session
    if p1_0:
        report |= {
            "p1_0ms_kimi_s": round(med(p1_0["kimi"]), 4),
            "p1_0ms_bare_s": round(med(p1_0["bare"]), 4),
            "p1_0ms_ratio": round(med(p1_0["kimi"]) / med(p1_0["bare"]), 2),
            "p1_latency_kimi_s": round(med(p1_l["kimi"]), 4),
            "p1_latency_bare_s": round(med(p1_l["bare"]), 4),
            "p1_latency_ratio": round(med(p1_l["kimi"]) / med(p1_l["bare"]), 2),
            "p1_0ms_server_cpu_per_call_ms": {n: round(1000 * p1_0[f"{n}_cpu"][0], 1) for n in ("kimi", "bare")},
        }
    calls = args.concurrent
    for name, result in p4.items():
        bursts = result["bursts"]
        one, fifty = med(result["singles"]), med(b["wall_s"] for b in bursts)
        parties = bursts[0]["cpu_s"].keys()
        report[f"p4_{name}"] = {
            "one_call_s": round(one, 4),
            "fifty_wall_s": round(fifty, 4),
            "fifty_walls_s": [round(b["wall_s"], 3) for b in bursts],
            "ratio": round(fifty / one, 2),
            "one_call_server_cpu_ms": round(1000 * med(result["single_cpu"]), 1),
            "fifty_server_cpu_per_call_ms": round(1000 * med(b["cpu_s"]["server"] for b in bursts) / calls, 1),
            "errors": sum(b["failed"] for b in bursts),
            "first_errors": [e for b in bursts for e in b["errors"]][:3],
            "max_in_flight_at_fake": max(b["max_in_flight_at_fake"] for b in bursts),
            "cpu_s_median": {p: round(med(b["cpu_s"][p] for b in bursts), 2) for p in parties},
            "machine_busy_s_median": round(med(b["machine_busy_s"] for b in bursts), 2),
            "others_s_median": round(med(b["others_s"] for b in bursts), 2),
            "capacity_s_median": round(med(b["capacity_s"] for b in bursts), 2),
            "steal_s_median": round(med(b["steal_s"] for b in bursts), 2),
            "load_during": [min(b["load"][0] for b in bursts), max(b["load"][1] for b in bursts)],
        }
    report["load_average_1m_before_after"] = load
    report["cores"] = os.cpu_count()
    return report


def exceptions_in(lines: list[str], most: int = 5) -> list[str]:
    """The distinct `SomeError: message` lines of the tracebacks in a server's stderr."""
    found: list[str] = []
    for line in lines:
        head = line.split(":", 1)[0]
        if line[:1].isalpha() and head.endswith(("Error", "Exception", "Timeout")) and line.strip() not in found:
            found.append(line.strip())
    return found[:most]


def headlines(report: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rows docs/performance.md's table shows (bench/_results.py)."""
    from _results import headline

    kimi, bare = report["p4_kimi"], report["p4_bare"]
    return [
        headline("P1 HTTP", "one kimi_chat over streamable HTTP (fake answers at once), vs a bare-SDK HTTP app's "
                 "tool streaming the same request", report["p1_0ms_ratio"], floor="bare MCPServer streamable HTTP app",
                 floor_value=report["p1_0ms_bare_s"], goal=f"<= {P1_GOAL:.2f}x",
                 goal_met=report["p1_0ms_ratio"] <= P1_GOAL),
        headline("P1 HTTP, 200 ms", f"the same with the fake answering in {args.latency * 1000:.0f} ms",
                 report["p1_latency_ratio"], floor="bare MCPServer streamable HTTP app",
                 floor_value=report["p1_latency_bare_s"], goal=f"<= {P1_GOAL:.2f}x",
                 goal_met=report["p1_latency_ratio"] <= P1_GOAL),
        headline("P4 concurrency", f"{args.concurrent} kimi_chat at once over HTTP vs one alone "
                 f"(fake {args.latency * 1000:.0f} ms; {kimi['errors']} errors)", kimi["ratio"],
                 floor="the bare SDK app's same ratio, same rounds", floor_value=bare["ratio"], floor_unit="x",
                 goal=f"<= {P4_GOAL}x, 0 errors", goal_met=kimi["ratio"] <= P4_GOAL and kimi["errors"] == 0),
    ]  # fmt: skip


def main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is no package: _results.py sits beside us
    from _results import Recorder

    recorder = Recorder("bench_http", smoke=args.smoke)
    Child.nice = args.nice  # not this process's own group: that is the caller's session (its shell's, say)
    Child.new_session = not args.one_session
    load = [load_average()]
    bench = Bench(args.client_procs, args.sessions, args.concurrent)
    p1_0: dict[str, list[float]] = {}
    p1_l: dict[str, list[float]] = {}
    profiles: dict[str, Any] = {}
    try:
        bench.start()
        spies: dict[str, PySpy] = {}
        if args.profile:
            folder = Path(args.profile)
            folder.mkdir(parents=True, exist_ok=True)
            spies = {name: PySpy(s.pid, folder / f"{name}.folded.txt") for name, s in bench.servers.items()}
            time.sleep(1.0)  # py-spy attaches
        try:
            p1_0 = bench.p1(args.calls, 0.0)
            p1_l = bench.p1(args.calls, args.latency)
            p4 = bench.p4(args.rounds, args.latency, ("kimi", "bare"))
        finally:
            for spy in spies.values():
                spy.stop()
        profiles = {f"profile_{name}": profile_summary(spy.output) for name, spy in spies.items()}
    finally:
        bench.stop()
    load.append(load_average())
    # What the servers logged: the count of lines, and the exceptions named (a traceback's last line).
    logged = {f"{name}_stderr": [f"{len(s.lines)} lines", *exceptions_in(s.lines)] for name, s in bench.servers.items()}
    report = summary(p1_0, p1_l, p4, load, args) | profiles | logged
    print(json.dumps(report, indent=2))
    recorder.write(args.json, report, headlines(report, args))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="P1 calls per server and latency (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="P4 rounds (default 3)")
    parser.add_argument("--latency", type=float, default=0.2, help="the fake's answer time in P4 (default 0.2 s)")
    parser.add_argument("--concurrent", type=int, default=50, help="calls at once in P4 (default 50)")
    parser.add_argument("--sessions", type=int, default=5, help="MCP sessions the calls share (default 5)")
    parser.add_argument("--client-procs", type=int, default=1, help="load-generator processes (default 1)")
    parser.add_argument("--nice", type=int, help="autogroup nice of every party's session (root: e.g. -10)")
    parser.add_argument("--one-session", action="store_true", help="all parties in this session (for comparison)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy both servers (for finding costs)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 3 P1 calls, 1 round of 10 at once")
    parser.add_argument("--json", metavar="PATH", help="write the figures, headlines, machine and load here")
    parser.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare-server", metavar="UPSTREAM", help=argparse.SUPPRESS)
    parser.add_argument("--clients", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.rounds, args.concurrent, args.sessions = 3, 1, 10, 2
    if args.fake:
        run_fake()
    elif args.bare_server:
        serve_bare(args.bare_server)
    elif args.clients:
        run_clients()
    else:
        main(args)
