"""Crash safety: SIGKILL `kimi-mcp serve` at random points during calls, restart it on the same home, check what
it left on disk.

`--kills` rounds (200), every choice drawn from `random.Random(--seed)`. Each round starts a fresh `kimi-mcp serve`
over stdio on one KIMI_MCP_HOME, on the Anthropic and the OpenAI wire alternately (KIMI_CODE_PROTOCOL), reads
`kimi://conversations` through it (the restart: this server opens the store the previous one was killed over),
starts 1 to 3 `kimi_chat` calls (new conversations, and continuations of conversations answered in earlier rounds)
and SIGKILLs the server at a point set by the round's kind, in turn:
- stream: the fake Kimi streams each reply slowly (`Reply(delay=…)`, ~0.6 s a reply); the kill falls at a random
  moment from the arrival of the round's first chat request to a little after the replies would have ended;
- store: the fake answers at once and the calls go one after another; the kill comes as soon as the fake sent the
  last byte of a random one's reply (at once or up to 15 ms later), while the server reads the end of the stream
  and writes the turn (the calls before it answered);
- refresh: the server runs on a stored OAuth login (no API key) whose access token the fake revoked (the API answers
  401 and the server refreshes) or whose stored expiry has passed (refreshed before the request), alternately; the
  OAuth host takes 0.3 s to answer the refresh, and the kill falls at a random moment from the arrival of the
  refresh request to a little after its answer would have been saved (half of them before the answer).
After each kill, on a copy of the SQLite file and its WAL (the next server must do its own recovery on the real
one): `PRAGMA integrity_check` ok; every conversation's `turn_count` matches its turns, numbered 1..n; every call
whose result the client received before the kill stored at the conversation and turn its result named, with its
prompt and the reply the client got; no prompt stored twice. The credentials file parses (JSON, then `StoredLogin`)
and its lock can be taken. A last server continues five conversations the rounds left behind.

    python bench/crash_safety.py [--kills 200] [--seed 13] [--out bench/results/crash_safety.json]

tests/server/test_crash_safety.py runs the same code with 7 kills of each kind, on one wire.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import filelock
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from pydantic import ValidationError

from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.auth.store import CREDENTIALS_FILE, CredentialStore, StoredLogin
from kimi_mcp.store.db import DB_FILE_NAME
from kimi_mcp.testing.fake_kimi import DEFAULT_API_KEY, FakeKimi, Reply
from kimi_mcp.testing.fake_script import last_user_text
from kimi_mcp.testing.http_child import KIMI_MCP
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, text_of
from kimi_mcp.testing.processes import stdio_child_pid

KINDS = ("stream", "store", "refresh")
WIRES = ("anthropic", "openai")  # KIMI_CODE_PROTOCOL, alternately: round n runs on WIRES[n % 2]
HOWS = ("revoked", "expired")  # how a refresh round's login needs refreshing: HOWS[(n // 2) % 2]
_CHAT_PATHS = ("/v1/messages", "/v1/chat/completions")
TIMEOUT_SECONDS = 30.0  # KIMI_MCP_TIMEOUT of each server
WAIT_SECONDS = 60.0  # the most any one wait here may take before it is a finding (the machine is loaded)
STREAM_DELAY = 0.03  # seconds between two SSE frames of a slow reply
STREAM_FILLER = "the quick brown fox jumps over the lazy dog " * 7  # ~20 frames of 20 characters
STREAM_WINDOW = 1.2  # the kill falls within this many seconds of the first chat request (a reply takes ~0.6 s)
REFRESH_DELAY = 0.3  # seconds the OAuth host takes to answer a refresh
REFRESH_WINDOW = 1.0  # from the refresh request: its answer (0.3 s), the save, the chat
STORE_WINDOW = 0.015
POLL = 0.002
_LOCK_FILE = f"{CREDENTIALS_FILE}.lock"


class SlowKimi(FakeKimi):
    """The fake Kimi, whose replies stream slowly while `slow` is set (each still naming its prompt)."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = False

    def _step_for(self, body: dict[str, Any]) -> Reply | None:
        if not self.slow:
            return None
        return Reply(text=f"Slow reply to: {last_user_text(body)}. {STREAM_FILLER}", delay=STREAM_DELAY)


# -- one server, and where it runs ---------------------------------------------------------------------------------


@asynccontextmanager
async def stdio_server(env: dict[str, str], errlog: Any) -> AsyncIterator[tuple[Client, int]]:
    params = StdioServerParameters(
        command=str(KIMI_MCP), args=["serve"], env={"PATH": os.environ.get("PATH", ""), **env}
    )
    async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=WAIT_SECONDS) as client:
        yield client, stdio_child_pid()


# -- the calls -----------------------------------------------------------------------------------------------------


@dataclass
class CrashCall:
    round: int
    prompt: str
    continues: str | None  # the conversation it continues, if any
    sent: bool = False  # the call was made (a call queued behind a killed one never is)
    answered: bool = False  # the client received a successful result before the kill
    error: str = ""
    conversation_id: str | None = None
    turn: int | None = None
    reply: str = ""


async def run_call(client: Client, call: CrashCall) -> None:
    call.sent = True
    arguments: dict[str, Any] = {"prompt": call.prompt}
    if call.continues is not None:
        arguments["conversation_id"] = call.continues
    try:
        with anyio.fail_after(WAIT_SECONDS):
            result = await client.call_tool("kimi_chat", arguments)
    except TimeoutError:
        call.error = "the client was left waiting after the kill"
    except Exception as exc:  # the server died under the call: what a host sees then
        call.error = f"{type(exc).__name__}: {exc}"
    else:
        if result.is_error:
            call.error = text_of(result)
        else:
            meta = chat_meta(result)
            call.answered, call.conversation_id, call.turn = True, meta["conversation_id"], meta["turn"]
            call.reply = reply_of(result)
            if meta.get("note"):
                call.error = f"answered with a note: {meta['note']}"


# -- what was left on disk -----------------------------------------------------------------------------------------


def db_snapshot(home: Path, scratch: Path) -> sqlite3.Connection:
    """A connection to a copy of the database and its WAL: SQLite recovers the copy, the real file stays as the
    killed server left it for the next server to open."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = home / f"{DB_FILE_NAME}{suffix}"
        if source.exists():
            shutil.copyfile(source, scratch / source.name)
    return sqlite3.connect(scratch / DB_FILE_NAME)


def check_store(home: Path, scratch: Path, answered: list[CrashCall], this_round: list[CrashCall]) -> dict[str, Any]:
    problems: list[str] = []
    conn = db_snapshot(home, scratch)
    try:
        integrity = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        counts = dict(conn.execute("SELECT id, turn_count FROM conversations").fetchall())
        rows = conn.execute("SELECT conversation_id, idx, user_json, assistant_text FROM turns").fetchall()
    finally:
        conn.close()
    if integrity != "ok":
        problems.append(f"integrity_check: {integrity}")
    by_prompt: dict[str, list[tuple[str, int, str]]] = {}
    numbers: dict[str, list[int]] = {}
    for conversation_id, idx, user_json, text in rows:
        prompt = "\n".join(b.get("text", "") for b in json.loads(user_json) if b.get("type") == "text")
        by_prompt.setdefault(prompt, []).append((conversation_id, idx, text))
        numbers.setdefault(conversation_id, []).append(idx)
    for conversation_id, turn_count in counts.items():
        if sorted(numbers.get(conversation_id, [])) != list(range(1, turn_count + 1)):
            problems.append(f"{conversation_id}: turn_count {turn_count}, turns {sorted(numbers[conversation_id])}")
    for prompt, found in by_prompt.items():
        if len(found) > 1:
            problems.append(f"stored {len(found)} times: {prompt!r}")
    missing = [c for c in answered if by_prompt.get(c.prompt) != [(c.conversation_id, c.turn, c.reply)]]
    for call in missing:
        problems.append(
            f"round {call.round}: answered as {call.conversation_id} turn {call.turn}, "
            f"stored {by_prompt.get(call.prompt)}"
        )
    unanswered = [call for call in this_round if call.sent and not call.answered]
    return {
        "integrity": integrity,
        "problems": problems,
        "missing": len(missing),
        "unanswered_stored": sum(call.prompt in by_prompt for call in unanswered),
        "unanswered_not_stored": sum(call.prompt not in by_prompt for call in unanswered),
        "stored_of_this_round": {
            call.prompt: by_prompt[call.prompt][0][:2] for call in this_round if call.prompt in by_prompt
        },
    }


def check_credentials(home: Path, seeded: StoredLogin | None) -> tuple[str, int, list[str]]:
    """How the killed server left the login (`absent`, `unchanged`, `refreshed`, `refused`), the temp files a
    killed writer left beside it (the next write sweeps them), and any problem."""
    temp_files = len(list(home.glob(f".{CREDENTIALS_FILE}.*.tmp")))
    path = home / CREDENTIALS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return "absent", temp_files, []
    try:
        login = StoredLogin.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        return "unparsable", temp_files, [f"credentials.json does not parse: {type(exc).__name__} ({len(raw)} bytes)"]
    problems = []
    try:  # a killed holder's lock is released by the kernel: it must be free now
        with filelock.FileLock(home / _LOCK_FILE, timeout=WAIT_SECONDS):
            pass
    except filelock.Timeout:
        problems.append("the credentials lock is still held after the kill")
    if login.refresh_rejected:
        return "refused", temp_files, problems
    if seeded is not None and login.refresh_token.get_secret_value() != seeded.refresh_token.get_secret_value():
        return "refreshed", temp_files, problems
    return "unchanged", temp_files, problems


def seed_login(fake: FakeKimi, home: Path, how: str) -> StoredLogin:
    """A fresh login from the fake, stored as `kimi-mcp login` would; `how` makes the next call refresh it."""
    issued = fake.oauth.issue_tokens()
    login = StoredLogin.from_token_response(TokenResponse.model_validate(issued), "device_flow")
    if how == "expired":
        login = login.model_copy(update={"expires_at": time.time() - 60})
    else:
        fake.oauth.revoke_access(issued["access_token"])
    store = CredentialStore(home)
    with filelock.FileLock(home / _LOCK_FILE, timeout=WAIT_SECONDS):
        store.write_sync(login)
    return login


# -- one round -----------------------------------------------------------------------------------------------------


@dataclass
class Round:
    number: int
    kind: str
    wire: str
    how: str  # refresh rounds: "revoked" or "expired"
    calls: int
    continued: int
    offset_s: float
    trigger: str  # what the kill waited for: "seen", "all calls ended first" or "never seen"
    answered: int
    unanswered_stored: int
    unanswered_not_stored: int
    credentials: str
    temp_files: int
    restart_ok: bool
    wall_s: float
    problems: list[str] = field(default_factory=list)


async def wait_for(condition: Callable[[], bool], calls_done: Callable[[], bool]) -> str:
    with anyio.move_on_after(WAIT_SECONDS):
        while not condition():
            if calls_done():
                return "all calls ended first"
            await anyio.sleep(POLL)
        return "seen"
    return "never seen"


def trigger_for(kind: str, fake: FakeKimi, mark: int, nth: int) -> Callable[[], bool]:
    """When the kill's clock starts: the round's first chat request arrived (stream), its `nth` reply was sent to
    the end (store), its first refresh request arrived (refresh)."""

    def requests() -> list[Any]:
        return list(fake.requests)[mark:]

    if kind == "stream":
        return lambda: any(r.path.endswith(_CHAT_PATHS) for r in requests())
    if kind == "store":
        return lambda: sum(r.path.endswith(_CHAT_PATHS) and r.completed for r in requests()) >= nth
    return lambda: any(r.path.endswith("/api/oauth/token") for r in requests())


async def crash_round(
    number: int,
    kind: str,
    wires: tuple[str, ...],
    rng: random.Random,
    fake: SlowKimi,
    envs: dict[str, dict[str, str]],
    known: dict[str, int],
    answered: list[CrashCall],
    errlog: Any,
) -> Round:
    home = Path(envs["key"]["KIMI_MCP_HOME"])
    how = HOWS[(number // 2) % len(HOWS)] if kind == "refresh" else ""
    wire = wires[number % len(wires)]
    seeded = await anyio.to_thread.run_sync(seed_login, fake, home, how) if kind == "refresh" else None
    fake.slow = kind == "stream"
    fake.oauth.refresh_delay = REFRESH_DELAY if kind == "refresh" else 0.0
    count = rng.randint(1, 3)
    continues = rng.sample(sorted(known), k=min(len(known), sum(rng.random() < 0.5 for _ in range(count))))
    calls = [
        CrashCall(number, f"crash-round-{number:03d}-call-{i}", continues[i] if i < len(continues) else None)
        for i in range(count)
    ]
    if kind == "stream":
        offset = rng.uniform(0, STREAM_WINDOW)
    elif kind == "refresh":
        # Half before the answer is in (and saved), half after: both sides of the credentials write.
        offset = (
            rng.uniform(0, REFRESH_DELAY + 0.05) if rng.random() < 0.5 else rng.uniform(REFRESH_DELAY, REFRESH_WINDOW)
        )
    else:
        offset = 0.0 if rng.random() < 1 / 3 else rng.uniform(0, STORE_WINDOW)
    nth = rng.randint(1, count)
    problems: list[str] = []
    restart_ok = False
    mark = len(fake.requests)
    started = time.monotonic()
    env = {**envs["oauth" if kind == "refresh" else "key"], "KIMI_CODE_PROTOCOL": wire}
    async with stdio_server(env, errlog) as (client, pid):
        try:
            listing = await client.read_resource("kimi://conversations", cache_mode="bypass")
            json.loads("".join(getattr(c, "text", "") for c in listing.contents))
            restart_ok = True
        except Exception as exc:
            problems.append(f"the restarted server could not list conversations: {type(exc).__name__}: {exc}")
        ended = 0
        killed = False

        async def call_then_count(call: CrashCall) -> None:
            nonlocal ended
            try:
                await run_call(client, call)
            finally:
                ended += 1

        async def one_after_another() -> None:
            for call in calls:
                if killed:
                    break
                await call_then_count(call)

        async with anyio.create_task_group() as group:
            if kind == "store":  # in turn: the kill comes after the nth reply, the ones before it answered
                group.start_soon(one_after_another)
            else:  # at once: the kill finds them all in flight, at different points
                for call in calls:
                    group.start_soon(call_then_count, call)
            condition = trigger_for(kind, fake, mark, nth)
            trigger = await wait_for(condition, lambda: ended == len(calls))
            await anyio.sleep(offset)
            try:
                os.kill(pid, signal.SIGKILL)
                killed = True
            except ProcessLookupError:
                problems.append("the server had ended before the kill")
    for call in calls:
        if call.answered:
            answered.append(call)
            known[str(call.conversation_id)] = int(call.turn or 0)
        if call.error.startswith("answered with a note"):
            problems.append(f"{call.prompt}: {call.error}")
    if trigger != "seen":
        problems.append(f"the kill's trigger was {trigger}")
    store = await anyio.to_thread.run_sync(check_store, home, home.parent / "scratch", answered, calls)
    credentials, temp_files, credential_problems = await anyio.to_thread.run_sync(check_credentials, home, seeded)
    return Round(
        number=number,
        kind=kind,
        wire=wire,
        how=how,
        calls=sum(call.sent for call in calls),
        continued=sum(call.sent and call.continues is not None for call in calls),
        offset_s=round(offset, 4),
        trigger=trigger,
        answered=sum(call.answered for call in calls),
        unanswered_stored=store["unanswered_stored"],
        unanswered_not_stored=store["unanswered_not_stored"],
        credentials=credentials,
        temp_files=temp_files,
        restart_ok=restart_ok,
        wall_s=round(time.monotonic() - started, 2),
        problems=[*problems, *store["problems"], *credential_problems],
    )


# -- the whole run -------------------------------------------------------------------------------------------------


@dataclass
class CrashReport:
    kills: int
    seed: int
    wall_s: float
    rounds_by_kind: dict[str, int]
    calls: int
    continued: int
    answered_before_kill: int
    answered_and_stored: int
    unanswered_stored: int
    unanswered_not_stored: int
    integrity_ok: int
    credentials_parsed: int
    credentials_outcomes: dict[str, dict[str, int]]
    temp_files_left: int
    restarts_ok: int
    final_continuations: int
    final_continuations_ok: int
    problems: list[str]
    rounds: list[Round]


async def crash_safety(
    kills: int,
    seed: int,
    home: Path,
    errlog: Any,
    *,
    kinds: tuple[str, ...] = KINDS,
    wires: tuple[str, ...] = WIRES,
) -> CrashReport:
    """`kills` rounds of `kinds` in turn, on one home under `home`; nothing is asserted here (see `problems`)."""
    rng = random.Random(seed)
    known: dict[str, int] = {}  # conversation id -> the last turn a client was told of
    answered: list[CrashCall] = []
    rounds: list[Round] = []
    started = time.monotonic()
    with SlowKimi() as fake:
        common = {
            "KIMI_CODE_BASE_URL": fake.base_url,
            "KIMI_CODE_OAUTH_HOST": fake.oauth_host,
            "KIMI_MCP_HOME": str(home / "home"),
            "KIMI_MCP_TIMEOUT": f"{TIMEOUT_SECONDS:g}",
        }
        envs = {"key": {**common, "KIMI_API_KEY": DEFAULT_API_KEY}, "oauth": common}
        for number in range(kills):
            kind = kinds[number % len(kinds)]
            rounds.append(await crash_round(number, kind, wires, rng, fake, envs, known, answered, errlog))
        final_ok, missing, final = await continue_after_all(fake, envs["key"], known, answered, errlog, rng)
    wall = time.monotonic() - started
    problems = [f"round {r.number} ({r.kind}): {p}" for r in rounds for p in r.problems] + final
    outcomes: dict[str, Counter[str]] = {}
    for r in rounds:
        outcomes.setdefault(r.kind, Counter())[r.credentials] += 1
    return CrashReport(
        kills=kills,
        seed=seed,
        wall_s=round(wall, 1),
        rounds_by_kind=dict(Counter(r.kind for r in rounds)),
        calls=sum(r.calls for r in rounds),
        continued=sum(r.continued for r in rounds),
        answered_before_kill=sum(r.answered for r in rounds),
        answered_and_stored=sum(r.answered for r in rounds) - missing,
        unanswered_stored=sum(r.unanswered_stored for r in rounds),
        unanswered_not_stored=sum(r.unanswered_not_stored for r in rounds),
        integrity_ok=sum(not any(p.startswith("integrity") for p in r.problems) for r in rounds),
        credentials_parsed=sum(r.credentials != "unparsable" for r in rounds),
        credentials_outcomes={kind: dict(counter) for kind, counter in outcomes.items()},
        temp_files_left=sum(r.temp_files for r in rounds),
        restarts_ok=sum(r.restart_ok for r in rounds),
        final_continuations=min(5, len(known)),
        final_continuations_ok=final_ok,
        problems=problems,
        rounds=rounds,
    )


async def continue_after_all(
    fake: SlowKimi,
    env: dict[str, str],
    known: dict[str, int],
    answered: list[CrashCall],
    errlog: Any,
    rng: random.Random,
) -> tuple[int, int, list[str]]:
    """A last server continues up to five conversations the rounds left, each at least one turn further."""
    fake.slow = False
    fake.oauth.refresh_delay = 0.0
    problems: list[str] = []
    ok = 0
    chosen = rng.sample(sorted(known), k=min(5, len(known)))
    async with stdio_server(env, errlog) as (client, _):
        for conversation_id in chosen:
            call = CrashCall(-1, f"after all the kills, continuing {conversation_id}", conversation_id)
            await run_call(client, call)
            if call.answered and call.conversation_id == conversation_id and (call.turn or 0) > known[conversation_id]:
                ok += 1
                answered.append(call)
            else:
                problems.append(f"continuing {conversation_id} after the kills: {call.error or call.turn}")
    home = Path(env["KIMI_MCP_HOME"])
    store = await anyio.to_thread.run_sync(check_store, home, home.parent / "scratch", answered, [])
    return ok, store["missing"], problems + [f"at the end: {p}" for p in store["problems"]]


# -- the command ---------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="kimi-crash-") as tmp:
        with open(Path(tmp) / "servers.log", "w+", encoding="utf-8") as errlog:
            report = anyio.run(functools.partial(crash_safety, args.kills, args.seed, Path(tmp), errlog))
            if report.problems:
                errlog.seek(0)
                print(errlog.read()[-20_000:], file=sys.stderr)
    figures = asdict(report)
    print(json.dumps({k: v for k, v in figures.items() if k != "rounds"}, indent=2), flush=True)
    document = {
        "command": "python bench/crash_safety.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.node()} · {platform.platform()} · {os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        **figures,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"written to {args.out}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", default="bench/results/crash_safety.json", help="where to write the figures")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(parser.parse_args()))
