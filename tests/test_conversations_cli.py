"""`kimi-mcp conversations` (list, show, delete, prune) and the store line of `kimi-mcp status`, run as the real
console script against stores filled through the store API; each result is checked in the output and in the store
afterwards (and through the functions the kimi://conversations resources use)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from kimi_mcp.kimi.models import TextBlock, Usage
from kimi_mcp.server import resources
from kimi_mcp.server.output import render_transcript
from kimi_mcp.server.state import AppState
from kimi_mcp.settings import Settings
from kimi_mcp.store import DB_FILE_NAME, CachedUpload, ConversationStore, Turn

SCRIPT = Path(sys.executable).parent / "kimi-mcp"
DAY = 86_400.0
T = TypeVar("T")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": env.get("KIMI_MCP_HOME", "/nonexistent")}
    return subprocess.run(
        [str(SCRIPT), *args], env={**base, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def on_store(env: dict[str, str], operation: Callable[[ConversationStore], Awaitable[T]]) -> T:
    """Run `operation` on the store of `env`'s home, opened and closed again."""

    async def main() -> T:
        settings = Settings.from_env(env)
        store = ConversationStore(settings.home, max_age_seconds=settings.conversation_max_age_days * DAY)
        try:
            return await operation(store)
        finally:
            await store.aclose()

    return anyio.run(main)


def resource_text(env: dict[str, str]) -> str:
    """What kimi://conversations returns, read through the resource's own function and a server's state."""

    async def main() -> str:
        async with anyio.create_task_group() as group:
            state = AppState(Settings.from_env(env), task_group=group)
            try:
                return await resources.conversations(state)
            finally:
                await state.aclose()

    return anyio.run(main)


def resource_listing(env: dict[str, str]) -> list[str]:
    return [item["id"] for item in json.loads(resource_text(env))["conversations"]]


def make_turn(prompt: str, reply: str, created_at: float, **extra: object) -> Turn:
    return Turn(
        user=[TextBlock(text=prompt)],
        assistant_text=reply,
        stop_reason="end_turn",
        usage=Usage(input_tokens=10, output_tokens=3),
        created_at=created_at,
        **extra,  # type: ignore[arg-type]
    )


def add_conversation(env: dict[str, str], prompts: list[str], *, age_seconds: float, system: str | None = None) -> str:
    """A conversation of one turn per prompt, its last activity `age_seconds` ago; its id."""

    async def add(store: ConversationStore) -> str:
        cid = store.new_id()
        last = time.time() - age_seconds
        for number, prompt in enumerate(prompts, start=1):
            created = last - (len(prompts) - number)  # a second apart, the last one at `last`
            turn = make_turn(prompt, f"reply {number} to {prompt}", created)
            await store.append_turn(cid, model="kimi-for-coding", wire="anthropic", system=system, turn=turn)
        return cid

    return on_store(env, add)


def row_counts(home: Path, conversation_id: str) -> dict[str, int]:
    with sqlite3.connect(home / DB_FILE_NAME) as db:
        return {
            table: db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (conversation_id,)).fetchone()[0]
            for table, column in (
                ("conversations", "id"),
                ("turns", "conversation_id"),
                ("turn_files", "conversation_id"),
                ("cache_keys", "conversation_id"),
            )
        }


@pytest.fixture
def env(kimi_env: dict[str, str]) -> dict[str, str]:
    """The fake's environment, with conversations kept a year so that test ones 40 days old are still live."""
    return {**kimi_env, "KIMI_MCP_CONVERSATION_MAX_AGE_DAYS": "365"}


def test_list_is_newest_first_and_its_json_is_the_resource(env: dict[str, str]) -> None:
    old = add_conversation(env, ["Refactor the parser\nwith detail", "and the lexer?"], age_seconds=3 * 3600)
    new = add_conversation(env, ["Why does   this test fail?"], age_seconds=60)
    middle = add_conversation(env, ["Explain WAL mode", "more", "thanks"], age_seconds=2 * 3600)

    for args in (("conversations",), ("conversations", "list")):  # `list` is the default
        done = run(*args, env=env)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert [line.split()[0] for line in lines] == [new, middle, old]
    by_id = {line.split()[0]: line for line in lines}
    stored = {s.id: s.updated_at for s in on_store(env, lambda store: store.recent())}
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stored[old]))
    assert by_id[old] == f"{old}  2 turns  {when}  Refactor the parser"
    assert " 1 turn  " in by_id[new] and by_id[new].endswith("Why does   this test fail?")
    assert " 3 turns  " in by_id[middle] and by_id[middle].endswith("Explain WAL mode")

    as_json = run("conversations", "list", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout == resource_text(env) + "\n"
    assert [item["turns"] for item in json.loads(as_json.stdout)["conversations"]] == [1, 3, 2]

    limited = run("conversations", "list", "--limit", "2", env=env)
    assert [line.split()[0] for line in limited.stdout.splitlines()[:2]] == [new, middle]
    assert limited.stdout.splitlines()[2] == "(2 of 3 shown, newest first; `--limit 3` shows them all)"
    every = run("conversations", "list", "--limit", "0", env=env)  # 0: no limit
    assert [line.split()[0] for line in every.stdout.splitlines()] == [new, middle, old]


def test_show_prints_the_resource_transcript_and_refuses_unknown_ids(env: dict[str, str]) -> None:
    cid = add_conversation(env, ["First question", "Second question"], age_seconds=10, system="Be brief.")
    other = add_conversation(env, ["Unrelated"], age_seconds=5)

    done = run("conversations", "show", cid, env=env)
    assert done.returncode == 0, done.stderr
    expected = on_store(env, lambda store: _transcript(store, cid))
    assert done.stdout == expected  # render_transcript, as kimi://conversations/{id} returns it
    assert "## System\n\nBe brief." in done.stdout and "reply 2 to Second question" in done.stdout
    assert "Unrelated" not in done.stdout and other not in done.stdout

    unknown = run("conversations", "show", "kc_0123456789abcdef", env=env)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "kc_0123456789abcdef" in unknown.stderr and "`kimi-mcp conversations list`" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    malformed = run("conversations", "show", "x" * 500, env=env)
    assert malformed.returncode == 1 and malformed.stdout == ""
    assert "is not a conversation id" in malformed.stderr and "kc_" in malformed.stderr
    assert len(malformed.stderr) < 400  # the 500 characters are not echoed whole


async def _transcript(store: ConversationStore, cid: str) -> str:
    return render_transcript(await store.load(cid))


def test_delete_removes_the_conversation_and_its_rows_and_nothing_else(env: dict[str, str]) -> None:
    home = Path(env["KIMI_MCP_HOME"])
    kept = add_conversation(env, ["Keep me"], age_seconds=100)

    async def branch_with_files(store: ConversationStore) -> str:
        """A branch (it has a cache_keys row) whose turn sent files (a turn_files row), plus an upload."""
        loaded = await store.load(kept)
        grow = make_turn("grow", "ok", time.time())
        await store.append_turn(kept, model="kimi-for-coding", wire="anthropic", system=None, turn=grow)
        turn = make_turn("branch here", "branched", time.time(), files={"src/a.py": "ab" * 32})
        appended = await store.continue_conversation(loaded, turn)
        assert appended.grew_from == kept
        await store.uploads.put(CachedUpload("cd" * 32, "https://k", "file-1", "image/png", 10))
        return appended.conversation_id

    branch = on_store(env, branch_with_files)
    assert row_counts(home, branch) == {"conversations": 1, "turns": 2, "turn_files": 1, "cache_keys": 1}
    kept_before = on_store(env, lambda store: store.load(kept))

    done = run("conversations", "delete", branch, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Deleted {branch}: 2 turns, last active ")

    assert row_counts(home, branch) == {"conversations": 0, "turns": 0, "turn_files": 0, "cache_keys": 0}
    assert on_store(env, lambda store: store.load(kept)) == kept_before
    assert on_store(env, lambda store: store.uploads.get("cd" * 32, "https://k")) is not None  # keyed by content
    assert resource_listing(env) == [kept]
    assert [line.split()[0] for line in run("conversations", env=env).stdout.splitlines()] == [kept]

    again = run("conversations", "delete", branch, env=env)
    assert again.returncode == 1 and branch in again.stderr and "`kimi-mcp conversations list`" in again.stderr
    bad = run("conversations", "delete", "kc_nothex", env=env)
    assert bad.returncode == 1 and "is not a conversation id" in bad.stderr
    assert resource_listing(env) == [kept]


def test_prune_by_age_and_count_with_a_dry_run(env: dict[str, str]) -> None:
    home = Path(env["KIMI_MCP_HOME"])
    ids = {age: add_conversation(env, [f"{age} days old"], age_seconds=age * DAY + 60) for age in (40, 20, 10, 0)}

    refused = run("conversations", "prune", env=env)
    assert refused.returncode == 2 and "--older-than DAYS and/or --keep N" in refused.stderr

    dry = run("conversations", "prune", "--older-than", "15", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == "Would delete 2 conversations:"
    assert [line.split()[0] for line in dry.stdout.splitlines()[1:]] == [ids[20], ids[40]]
    assert sorted(resource_listing(env)) == sorted(ids.values())  # a dry run deletes nothing

    # 40 and 20 days are older than 15, but the 3 most recent (0, 10, 20) are kept.
    done = run("conversations", "prune", "--older-than", "15", "--keep", "3", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Deleted 1 conversation.\n"
    assert resource_listing(env) == [ids[0], ids[10], ids[20]]
    assert row_counts(home, ids[40])["turns"] == 0

    assert run("conversations", "prune", "--keep", "1", env=env).stdout == "Deleted 2 conversations.\n"
    assert resource_listing(env) == [ids[0]]
    assert row_counts(home, ids[0]) == {"conversations": 1, "turns": 1, "turn_files": 0, "cache_keys": 0}
    assert run("conversations", "prune", "--older-than", "1", env=env).stdout == "Deleted 0 conversations.\n"
    assert resource_listing(env) == [ids[0]]

    bad = run("conversations", "prune", "--older-than", "-3", env=env)
    assert bad.returncode == 2 and "0 or more" in bad.stderr


def test_no_store_yet_lists_nothing_and_creates_nothing(env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "home"
    fresh = {**env, "KIMI_MCP_HOME": str(home)}

    listed = run("conversations", env=fresh)
    assert listed.returncode == 0 and listed.stdout.startswith("No conversations yet"), listed.stderr
    assert json.loads(run("conversations", "list", "--json", env=fresh).stdout) == {"conversations": []}
    shown = run("conversations", "show", "kc_0123456789abcdef", env=fresh)
    assert shown.returncode == 1 and "`kimi-mcp conversations list`" in shown.stderr
    assert run("conversations", "delete", "kc_0123456789abcdef", env=fresh).returncode == 1
    pruned = run("conversations", "prune", "--keep", "0", env=fresh)
    assert pruned.returncode == 0 and pruned.stdout == "Nothing to prune: no conversations are stored yet.\n"
    assert not (tmp_path / "fresh").exists()


def test_an_empty_store_says_so(env: dict[str, str]) -> None:
    cid = add_conversation(env, ["only one"], age_seconds=1)
    assert run("conversations", "delete", cid, env=env).returncode == 0
    done = run("conversations", env=env)
    assert done.returncode == 0 and done.stdout.startswith("No conversations yet"), done.stderr


def test_status_adds_the_conversation_count_and_store_size(env: dict[str, str]) -> None:
    home = Path(env["KIMI_MCP_HOME"])
    add_conversation(env, ["one", "two"], age_seconds=1)
    add_conversation(env, ["three " * 20_000], age_seconds=1)  # about 120 kB of prompt
    done = run("status", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-3].startswith("5-hour") and lines[-2].startswith("weekly")  # after the quota bars
    match = re.fullmatch(r"Store:     2 conversations, ([0-9.]+) MB \((.+)\)", lines[-1])
    assert match is not None, lines[-1]
    assert match.group(2) == str(home / DB_FILE_NAME)
    on_disk = sum(p.stat().st_size for p in home.glob(DB_FILE_NAME + "*") if not p.name.endswith("-shm"))
    assert abs(float(match.group(1)) - on_disk / 1_000_000) <= 0.051


def test_status_survives_an_unreadable_store(env: dict[str, str]) -> None:
    home = Path(env["KIMI_MCP_HOME"])
    (home / DB_FILE_NAME).write_bytes(b"this is not a database " * 100)
    done = run("status", env=env)
    assert done.returncode == 0, done.stderr  # the credential and Kimi are fine: the store does not fail status
    assert done.stdout.splitlines()[-1].startswith(f"Store:     unreadable: The conversation store {home}")
    assert "5-hour" in done.stdout


def test_status_logged_out_still_shows_the_store(env: dict[str, str]) -> None:
    add_conversation(env, ["hello"], age_seconds=1)
    logged_out = {k: v for k, v in env.items() if k != "KIMI_API_KEY"}
    done = run("status", env=logged_out)
    assert done.returncode == 1 and "not logged in" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("Store:     1 conversation, ")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="watches the child's open files in /proc")
def test_delete_waits_for_a_writer_instead_of_failing(env: dict[str, str]) -> None:
    """A server writing at the same moment holds SQLite's write lock: delete waits on the busy timeout."""
    home = Path(env["KIMI_MCP_HOME"])
    cid = add_conversation(env, ["busy"], age_seconds=1)
    writer = sqlite3.connect(home / DB_FILE_NAME, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
    child = subprocess.Popen(
        [str(SCRIPT), "conversations", "delete", cid], env={**base, **env}, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not _has_open(child.pid, home / DB_FILE_NAME) and child.poll() is None:
            assert time.monotonic() < deadline, "the delete never opened the store"
            time.sleep(0.05)
        time.sleep(0.5)  # it is now queued on the lock (or already failed, without a busy timeout)
        assert child.poll() is None, "delete did not wait for the writer"
    finally:
        writer.execute("COMMIT")
        writer.close()
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and out.startswith(f"Deleted {cid}")
    assert row_counts(home, cid)["conversations"] == 0


def _has_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(fd) == os.path.realpath(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def test_a_failed_delete_says_so_and_changes_nothing(env: dict[str, str]) -> None:
    home = Path(env["KIMI_MCP_HOME"])
    cid = add_conversation(env, ["stay", "whole"], age_seconds=1)
    with sqlite3.connect(home / DB_FILE_NAME) as db:  # the last statement of the delete fails, after the turns went
        db.execute("CREATE TRIGGER refuse BEFORE DELETE ON conversations BEGIN SELECT RAISE(ABORT, 'refused'); END")
    done = run("conversations", "delete", cid, env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"kimi-mcp: The conversation store {home / DB_FILE_NAME} could not be used (refused)")
    assert "Traceback" not in done.stderr
    assert row_counts(home, cid) == {"conversations": 1, "turns": 2, "turn_files": 0, "cache_keys": 0}


def test_a_reader_that_stops_early_gets_no_traceback(env: dict[str, str]) -> None:
    """`kimi-mcp conversations show ID | head`: the closed pipe ends the command quietly."""
    cid = add_conversation(env, ["long " * 60_000], age_seconds=1)  # 300 kB of transcript: more than a pipe holds
    base = {"PATH": os.environ.get("PATH", ""), "HOME": env["KIMI_MCP_HOME"]}
    child = subprocess.Popen(
        [str(SCRIPT), "conversations", "show", cid],
        env={**base, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline() == f"# Conversation {cid}\n"
    child.stdout.close()
    errors_said = child.stderr.read()
    assert child.wait(timeout=60) == 0
    assert "Traceback" not in errors_said and "BrokenPipe" not in errors_said
