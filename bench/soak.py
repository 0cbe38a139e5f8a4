"""Soak: many `kimi_chat` calls through one long-lived `kimi-mcp serve` process, with faults injected upstream.

`--calls` calls (1,000) over `--conversations` conversations (50; every call after a conversation's first continues
it, one after another as a host sends them), `--workers` (4) calls in flight at once, through `kimi-mcp serve` over
stdio and over streamable HTTP (a child process each, driven by the real `mcp.Client`), against a fake Kimi on
127.0.0.1. `--fault-rate` (5%) of the calls meet faults before any answer: a 429 with `Retry-After: 0.5`, a 5xx
(500, 502, 503, 529) or a connection dropped without a response, on one, two or three attempts in a row, so that with
the default two retries most recover and the three-in-a-row ones end in a readable error (docs/kimi-api.md §9).
The faulted calls are drawn with `--seed`, kinds and run lengths in turn, so every combination occurs.

Measured from the server process after each batch of `--batch` calls, all of the batch finished (so the figures do
not depend on what is in flight): VmRSS from /proc/<pid>/status and the open descriptors in /proc/<pid>/fd. Goals:
- RSS growth from call 100 to the last call under 30 MB;
- descriptors flat: after the first batch they never exceed its count by more than the idle connections to Kimi
  a pool may keep (`--workers`, as many as calls in flight) plus 2;
- every successful call stored exactly once: the SQLite file, read afterwards, holds each successful call's prompt
  in exactly one turn, at the conversation and turn its result named, with the reply the client got; no failed
  call's prompt; per conversation as many turns as successes; `PRAGMA integrity_check` ok;
- no call past its timeout: the server runs with KIMI_MCP_TIMEOUT=30 and every call must end within it plus 30 s.
Reported besides: failures the plan does not explain (`unexpected_failures`), each with how many of its attempts
reached the fake; fewer than three means an attempt was lost on the way there, e.g. on a pooled keep-alive
connection the fake's uvicorn closed at its 5 s idle limit just as it was reused (httpx2 keeps idle ones 5 s too).

    python bench/soak.py [--calls 1000] [--transport stdio|http|both] [--seed 13] [--out bench/results/soak.json]

tests/server/test_soak.py runs the same code with 60 calls and asserts the same goals.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from kimi_mcp.store.db import DB_FILE_NAME
from kimi_mcp.testing.fake_kimi import DEFAULT_API_KEY, FakeKimi, Fault
from kimi_mcp.testing.fake_script import last_user_text
from kimi_mcp.testing.http_child import KIMI_MCP, http_child, http_client
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, text_of
from kimi_mcp.testing.processes import stdio_child_pid

Transport = Literal["stdio", "http"]
TIMEOUT_SECONDS = 30.0  # KIMI_MCP_TIMEOUT of the soaked server
GRACE_SECONDS = 30.0  # past the server's own limit before a call counts as stuck (the machine is loaded)
RETRY_AFTER_SECONDS = 0.5
RSS_GOAL_MIB = 30.0
HTTP_TOKEN = "soak-http-token-0123456789abcdef"
KINDS = ("429", "5xx", "drop")
RUNS = (1, 2, 3)  # faulted attempts in a row; with two retries, 3 means the call fails
SERVER_ERRORS = ((500, "api_error"), (502, "api_error"), (503, "api_error"), (529, "overloaded_error"))
_CALL_TAG = re.compile(r"\bsoak-call-(\d+)\b")
_VM_RSS = re.compile(r"^VmRSS:\s+(\d+)\s+kB", re.MULTILINE)


# -- the faults: planned per call, found again in each request by the call's tag in its prompt ---------------------


def planned_fault(kind: str, number: int) -> Fault:
    if kind == "429":
        return Fault(429, "rate_limit_error", "Too many requests (injected)", retry_after=RETRY_AFTER_SECONDS)
    if kind == "5xx":
        status, error_type = SERVER_ERRORS[number % len(SERVER_ERRORS)]
        return Fault(status, error_type, "injected server error")
    return Fault(503, drop_connection=True)


def plan_faults(calls: int, rate: float, seed: int) -> dict[int, tuple[str, list[Fault]]]:
    """call index -> (kind, one fault per attempt): `rate` of the calls, kinds and run lengths in turn."""
    rng = random.Random(seed)
    faulted = sorted(rng.sample(range(calls), round(calls * rate)))
    plan: dict[int, tuple[str, list[Fault]]] = {}
    for number, call in enumerate(faulted):
        kind = KINDS[number % len(KINDS)]
        run = RUNS[(number + number // len(KINDS)) % len(RUNS)]
        plan[call] = (kind, [planned_fault(kind, number)] * run)
    return plan


class FaultyKimi(FakeKimi):
    """The fake Kimi answering each planned call's first attempts with its faults (retries included), whatever the
    order the calls arrive in. A chat request is matched to its call by the tag in its last user message."""

    def __init__(self, plan: dict[int, tuple[str, list[Fault]]]) -> None:
        super().__init__()
        self._faults = {call: deque(faults) for call, (_, faults) in plan.items()}
        self.injected: Counter[str] = Counter()
        self.attempts: Counter[int] = Counter()  # call index -> chat requests that reached the fake

    def _step_for(self, body: dict[str, Any]) -> Fault | None:
        tag = _CALL_TAG.search(last_user_text(body))
        if tag is None:
            return None
        self.attempts[int(tag[1])] += 1
        left = self._faults.get(int(tag[1]))
        if not left:
            return None
        fault = left.popleft()
        self.injected["drop" if fault.drop_connection else str(fault.status)] += 1
        return fault


# -- the server process, seen from /proc ---------------------------------------------------------------------------


@dataclass
class Sample:
    calls: int  # calls finished when sampled
    rss_kib: int
    fds: int


def sample(pid: int, calls: int) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    found = _VM_RSS.search(status)
    if found is None:
        raise RuntimeError(f"no VmRSS for process {pid}: has it ended?")
    return Sample(calls, int(found[1]), len(os.listdir(f"/proc/{pid}/fd")))


@asynccontextmanager
async def served(transport: Transport, env: dict[str, str], errlog: Any) -> AsyncIterator[tuple[Client, int]]:
    """A `kimi-mcp serve` child over `transport` and a connected client; yields (client, the child's pid)."""
    read_timeout = TIMEOUT_SECONDS + GRACE_SECONDS + 30
    if transport == "stdio":
        params = StdioServerParameters(
            command=str(KIMI_MCP), args=["serve"], env={"PATH": os.environ.get("PATH", ""), **env}
        )
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=read_timeout) as client:
            yield client, stdio_child_pid()
        return
    async with http_child({**env, "KIMI_MCP_HTTP_TOKEN": HTTP_TOKEN}) as child:
        try:
            async with http_client(child.url, HTTP_TOKEN) as client:
                yield client, child.process.pid
        finally:
            errlog.write(child.stderr + "\n")


# -- the calls -----------------------------------------------------------------------------------------------------


@dataclass
class Call:
    index: int
    slot: int  # which of the conversations it belongs to
    prompt: str
    fault: str = ""  # the kind injected, if any
    ok: bool = False
    error: str = ""
    stuck: bool = False
    conversation_id: str | None = None
    turn: int | None = None
    reply: str = ""
    note: str | None = None
    seconds: float = 0.0


def make_calls(count: int, conversations: int, plan: dict[int, tuple[str, list[Fault]]]) -> list[Call]:
    calls = []
    for i in range(count):
        prompt = f"soak-call-{i:05d} of conversation {i % conversations}: review line {i}"
        calls.append(Call(i, i % conversations, prompt, fault=plan[i][0] if i in plan else ""))
    return calls


async def one_call(client: Client, call: Call, conversation_id: str | None) -> None:
    arguments: dict[str, Any] = {"prompt": call.prompt}
    if conversation_id is not None:
        arguments["conversation_id"] = conversation_id
    started = time.monotonic()
    try:
        with anyio.fail_after(TIMEOUT_SECONDS + GRACE_SECONDS):
            result = await client.call_tool("kimi_chat", arguments)
    except TimeoutError:
        call.stuck, call.error = True, "no answer within the timeout and its grace"
    except Exception as exc:  # a protocol or transport failure: counted, and the soak goes on
        call.error = f"{type(exc).__name__}: {exc}"
    else:
        if result.is_error:
            call.error = text_of(result)
        else:
            meta = chat_meta(result)
            call.ok, call.conversation_id, call.turn = True, meta["conversation_id"], meta["turn"]
            call.reply, call.note = reply_of(result), meta.get("note")
    call.seconds = time.monotonic() - started


async def run_calls(
    client: Client, calls: list[Call], *, workers: int, batch: int, probe: Callable[[int], Sample]
) -> list[Sample]:
    """All calls, `workers` at a time, a conversation's calls in order; a sample after each batch."""
    conversation: dict[int, str] = {}
    done = {call.index: anyio.Event() for call in calls}
    previous: dict[int, int] = {}  # call index -> the index of its conversation's call before it
    last: dict[int, int] = {}
    for call in calls:
        if call.slot in last:
            previous[call.index] = last[call.slot]
        last[call.slot] = call.index
    samples: list[Sample] = []
    for start in range(0, len(calls), batch):
        pending = iter(calls[start : start + batch])

        async def worker(pending: Any = pending) -> None:
            for call in pending:
                if call.index in previous:
                    await done[previous[call.index]].wait()
                try:
                    await one_call(client, call, conversation.get(call.slot))
                    if call.ok and call.conversation_id is not None:
                        conversation[call.slot] = call.conversation_id
                finally:
                    done[call.index].set()

        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)
        samples.append(probe(start + len(calls[start : start + batch])))
    return samples


# -- what the store holds ------------------------------------------------------------------------------------------


@dataclass
class StoreCheck:
    integrity: str
    turns: int
    conversations: int
    problems: list[str] = field(default_factory=list)


def check_store(db_path: Path, calls: list[Call]) -> StoreCheck:
    """Each successful call stored exactly once, where its result said, with its reply; no failed call stored."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        integrity = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        rows = conn.execute("SELECT conversation_id, idx, user_json, assistant_text FROM turns").fetchall()
        counts = dict(conn.execute("SELECT id, turn_count FROM conversations").fetchall())
    finally:
        conn.close()
    stored: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    indices: dict[str, list[int]] = defaultdict(list)
    for conversation_id, idx, user_json, text in rows:
        prompt = "\n".join(b.get("text", "") for b in json.loads(user_json) if b.get("type") == "text")
        stored[prompt].append((conversation_id, idx, text))
        indices[conversation_id].append(idx)
    check = StoreCheck(integrity, len(rows), len(counts))
    problems = check.problems
    if integrity != "ok":
        problems.append(f"integrity_check: {integrity}")
    for call in calls:
        found = stored.get(call.prompt, [])
        if call.ok and found != [(call.conversation_id, call.turn, call.reply)]:
            problems.append(f"call {call.index} answered as {call.conversation_id} turn {call.turn}; stored {found}")
        elif not call.ok and found:
            problems.append(f"call {call.index} failed ({call.error[:80]!r}) but was stored: {found}")
        if call.ok and call.note:
            problems.append(f"call {call.index} came with a note: {call.note}")
    successes = Counter(call.conversation_id for call in calls if call.ok)
    for conversation_id, turn_count in counts.items():
        if sorted(indices[conversation_id]) != list(range(1, turn_count + 1)):
            problems.append(f"{conversation_id}: turn_count {turn_count}, turns {sorted(indices[conversation_id])}")
        if successes[conversation_id] != turn_count:
            problems.append(f"{conversation_id}: {successes[conversation_id]} successes, {turn_count} turns stored")
    if set(successes) - set(counts):
        problems.append(f"conversations answered but never stored: {sorted(set(successes) - set(counts))}")
    return check


# -- one soak ------------------------------------------------------------------------------------------------------


@dataclass
class SoakReport:
    transport: str
    calls: int
    conversations: int
    workers: int
    wall_s: float
    successes: int
    failures: int
    stuck: int
    faulted_calls: dict[str, int]
    failures_by_fault: dict[str, int]
    unexpected_failures: list[str]
    upstream_attempts: int
    injected: dict[str, int]
    call_seconds: dict[str, float]
    samples: list[Sample]
    rss_first_mib: float
    rss_last_mib: float
    rss_growth_mib: float
    fds_first: int
    fds_max_after: int
    store: StoreCheck

    def goals(self) -> dict[str, bool]:
        return {
            "rss_growth_under_30_mib": self.rss_growth_mib < RSS_GOAL_MIB,
            "fds_flat": self.fds_max_after <= self.fds_first + self.workers + 2,
            "stored_exactly_once": not self.store.problems,
            "none_stuck": self.stuck == 0 and self.call_seconds["max"] <= TIMEOUT_SECONDS + GRACE_SECONDS,
        }


async def soak(
    transport: Transport,
    *,
    calls: int = 1000,
    conversations: int = 50,
    workers: int = 4,
    batch: int = 100,
    fault_rate: float = 0.05,
    seed: int = 13,
    home: Path,
    errlog: Any,
) -> SoakReport:
    """Run one soak against a fresh fake and a fresh `home`; nothing is asserted here (see `SoakReport.goals`)."""
    plan = plan_faults(calls, fault_rate, seed)
    the_calls = make_calls(calls, conversations, plan)
    with FaultyKimi(plan) as fake:
        env = {
            "KIMI_API_KEY": DEFAULT_API_KEY,
            "KIMI_CODE_BASE_URL": fake.base_url,
            "KIMI_CODE_OAUTH_HOST": fake.oauth_host,
            "KIMI_MCP_HOME": str(home),
            "KIMI_MCP_TIMEOUT": f"{TIMEOUT_SECONDS:g}",
        }
        started = time.monotonic()
        async with served(transport, env, errlog) as (client, pid):
            samples = await run_calls(
                client, the_calls, workers=workers, batch=batch, probe=lambda done: sample(pid, done)
            )
        wall = time.monotonic() - started
        attempts = len(fake.chat_requests())
        injected = dict(fake.injected)
        per_call = dict(fake.attempts)
    return _report(
        transport, the_calls, plan, samples, wall, attempts, per_call, injected, workers, conversations, home
    )


def _report(
    transport: Transport,
    calls: list[Call],
    plan: dict[int, tuple[str, list[Fault]]],
    samples: list[Sample],
    wall: float,
    attempts: int,
    per_call: dict[int, int],
    injected: dict[str, int],
    workers: int,
    conversations: int,
    home: Path,
) -> SoakReport:
    # The goal counts from call 100 (the server warmed up); a shorter run counts from its first sample.
    base = next((s for s in samples[:-1] if s.calls >= 100), samples[0])
    after = [s for s in samples if s.calls > base.calls] or [base]
    seconds = sorted(call.seconds for call in calls)
    failed = [call for call in calls if not call.ok]
    # With two retries a call fails only when all three attempts met a fault: the runs of 3 in the plan.
    expected = {call for call, (_, faults) in plan.items() if len(faults) >= 3}
    return SoakReport(
        transport=transport,
        calls=len(calls),
        conversations=conversations,
        workers=workers,
        wall_s=round(wall, 2),
        successes=len(calls) - len(failed),
        failures=len(failed),
        stuck=sum(call.stuck for call in calls),
        faulted_calls=dict(Counter(kind for kind, _ in plan.values())),
        failures_by_fault=dict(Counter(call.fault or "none" for call in failed)),
        unexpected_failures=[
            f"call {c.index} (faults planned: {len(plan[c.index][1]) if c.index in plan else 0}, attempts that reached "
            f"the fake: {per_call.get(c.index, 0)}): {c.error[:200]}"
            for c in failed
            if c.index not in expected
        ],
        upstream_attempts=attempts,
        injected=injected,
        call_seconds={
            "median": round(statistics.median(seconds), 3),
            "p99": round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))], 3),
            "max": round(seconds[-1], 3),
        },
        samples=samples,
        rss_first_mib=round(base.rss_kib / 1024, 1),
        rss_last_mib=round(samples[-1].rss_kib / 1024, 1),
        rss_growth_mib=round((samples[-1].rss_kib - base.rss_kib) / 1024, 1),
        fds_first=base.fds,
        fds_max_after=max(s.fds for s in after),
        store=check_store(home / DB_FILE_NAME, calls),
    )


# -- the command ---------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    transports: list[Transport] = ["stdio", "http"] if args.transport == "both" else [args.transport]
    reports: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kimi-soak-") as tmp:
        for transport in transports:
            with open(Path(tmp) / f"{transport}.log", "w+", encoding="utf-8") as errlog:
                report = anyio.run(
                    functools.partial(
                        soak,
                        transport,
                        calls=args.calls,
                        conversations=args.conversations,
                        workers=args.workers,
                        batch=args.batch,
                        fault_rate=args.fault_rate,
                        seed=args.seed,
                        home=Path(tmp) / f"home-{transport}",
                        errlog=errlog,
                    )
                )
            figures = {**asdict(report), "goals": report.goals()}
            reports.append(figures)
            print(json.dumps({k: v for k, v in figures.items() if k != "samples"}, indent=2), flush=True)
    document = {
        "command": "python bench/soak.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.node()} · {platform.platform()} · {os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "seed": args.seed,
        "fault_rate": args.fault_rate,
        "reports": reports,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"written to {args.out}")
    return 0 if all(all(r["goals"].values()) for r in reports) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100, help="calls between two samples of the server process")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--transport", choices=["stdio", "http", "both"], default="both")
    parser.add_argument("--out", default="bench/results/soak.json", help="where to write the figures ('' for none)")
    sys.exit(main(parser.parse_args()))
