"""The conversation store: restarts, bad ids, expiry, listing, file modes, and several processes at once."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kimi_mcp.errors import ConversationNotFound, KimiMcpError
from kimi_mcp.kimi.models import Message, TextBlock, Usage
from kimi_mcp.store import (
    DB_FILE_NAME,
    SCHEMA_VERSION,
    Conversation,
    ConversationStore,
    Turn,
    is_conversation_id,
)

pytestmark = pytest.mark.anyio

HOUR = 3600.0
REPO_ROOT = Path(__file__).resolve().parents[1]


def make_turn(prompt: str, reply: str = "ok", *, created_at: float | None = None, **extra: object) -> Turn:
    fields: dict[str, object] = {
        "user": [TextBlock(text=prompt)],
        "assistant_text": reply,
        "stop_reason": "end_turn",
        "usage": Usage(input_tokens=10, output_tokens=3, cache_read_tokens=256),
        **extra,
    }
    if created_at is not None:
        fields["created_at"] = created_at
    return Turn.model_validate(fields)


def messages_json(conversation: Conversation) -> bytes:
    return b"\n".join(m.model_dump_json().encode() for m in conversation.messages())


async def test_history_replays_byte_identically_after_a_restart(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    cid = store.new_id()
    await store.append_turn(cid, model="kimi-for-coding", wire="anthropic", system="Be brief.", turn=make_turn("a"))
    second = make_turn("b\nline 2", "full reply " * 1000, thinking="hmm")
    assert await store.append_turn(cid, model="kimi-for-coding", wire="anthropic", system="Be brief.", turn=second) == 2
    before = await store.load(cid)
    await store.aclose()

    restarted = ConversationStore(tmp_path, max_age_seconds=HOUR)
    after = await restarted.load(cid)
    await restarted.aclose()

    assert after == before
    assert messages_json(after) == messages_json(before)
    assert after.system == "Be brief." and after.turns[1].thinking == "hmm"
    assert after.messages() == [
        Message(role="user", content=[TextBlock(text="a")]),
        Message(role="assistant", content=[TextBlock(text="ok")]),
        Message(role="user", content=[TextBlock(text="b\nline 2")]),
        Message(role="assistant", content=[TextBlock(text="full reply " * 1000)]),
    ]


async def test_model_wire_and_system_stay_as_first_stored(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    cid = store.new_id()
    await store.append_turn(cid, model="m1", wire="anthropic", system=None, turn=make_turn("a"))
    await store.append_turn(cid, model="m2", wire="openai", system="changed", turn=make_turn("b"))
    conversation = await store.load(cid)
    assert (conversation.model, conversation.wire, conversation.system) == ("m1", "anthropic", None)
    assert len(conversation.turns) == 2


@pytest.mark.parametrize(
    "bad_id",
    ["", "kc_", "kc_0123456789ABCDEF", "kc_0123456789abcdeg", "x' OR 1=1 --", "kc_" + "0" * 10_000, "kc_\x00"],
)
async def test_unknown_or_malformed_id_is_conversation_not_found(tmp_path: Path, bad_id: str) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    with pytest.raises(ConversationNotFound) as caught:
        await store.load(bad_id)
    assert len(str(caught.value)) < 400


async def test_well_formed_but_unknown_id_is_conversation_not_found(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    with pytest.raises(ConversationNotFound, match="kimi://conversations"):
        await store.load(store.new_id())


async def test_append_rejects_a_malformed_id(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    with pytest.raises(ValueError, match="not a conversation id"):
        await store.append_turn("nope", model="m", wire="anthropic", system=None, turn=make_turn("a"))


def test_new_ids_are_url_safe_unique_and_need_no_io(tmp_path: Path) -> None:
    home = tmp_path / "not-yet"
    ConversationStore(home, max_age_seconds=HOUR)
    ids = {ConversationStore.new_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(is_conversation_id(i) for i in ids)
    assert not home.exists()


async def test_cancelled_first_call_leaves_no_conversation(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    cid = store.new_id()
    with anyio.move_on_after(0.01):  # the reply never completes, so append_turn is never reached
        await anyio.sleep(10)
        await store.append_turn(cid, model="m", wire="anthropic", system=None, turn=make_turn("a"))
    with pytest.raises(ConversationNotFound):
        await store.load(cid)
    assert await store.recent() == []
    await store.append_turn(cid, model="m", wire="anthropic", system=None, turn=make_turn("a"))
    assert len((await store.load(cid)).turns) == 1


async def test_expiry_removes_old_conversations_and_keeps_fresh_ones(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    old, fresh = store.new_id(), store.new_id()
    # The fresh one first: a store's first append already expires old conversations (tested below).
    await store.append_turn(fresh, model="m", wire="a", system=None, turn=make_turn("fresh"))
    await store.append_turn(
        old, model="m", wire="a", system=None, turn=make_turn("old", created_at=time.time() - 2 * HOUR)
    )

    with pytest.raises(ConversationNotFound):  # expired counts as gone even before the rows are deleted
        await store.load(old)
    assert [s.id for s in await store.recent()] == [fresh]
    assert await store.expire_old() == 1
    assert await store.expire_old() == 0
    assert len((await store.load(fresh)).turns) == 1
    await store.aclose()
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:
        assert db.execute("SELECT count(*) FROM turns WHERE conversation_id = ?", (old,)).fetchone() == (0,)


async def test_append_expires_old_conversations_opportunistically(tmp_path: Path) -> None:
    first = ConversationStore(tmp_path, max_age_seconds=HOUR)
    old = first.new_id()
    await first.append_turn(
        old, model="m", wire="a", system=None, turn=make_turn("x", created_at=time.time() - 2 * HOUR)
    )
    await first.aclose()

    second = ConversationStore(tmp_path, max_age_seconds=HOUR)  # a new process: its first append cleans up
    await second.append_turn(second.new_id(), model="m", wire="a", system=None, turn=make_turn("y"))
    await second.aclose()
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:
        assert db.execute("SELECT count(*) FROM conversations WHERE id = ?", (old,)).fetchone() == (0,)


async def test_recent_lists_most_recently_updated_first(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    now = time.time()
    a, b, c = store.new_id(), store.new_id(), store.new_id()
    await store.append_turn(
        a, model="m", wire="x", system=None, turn=make_turn("\n  first of a  \nmore", created_at=now - 30)
    )
    await store.append_turn(b, model="m", wire="x", system=None, turn=make_turn("b" * 500, created_at=now - 20))
    await store.append_turn(c, model="m2", wire="x", system=None, turn=make_turn("c", created_at=now - 10))
    await store.append_turn(a, model="m", wire="x", system=None, turn=make_turn("later", created_at=now))

    summaries = await store.recent()
    assert [s.id for s in summaries] == [a, c, b]
    assert (summaries[0].first_prompt_line, summaries[0].turns, summaries[0].updated_at) == ("first of a", 2, now)
    assert summaries[1].model == "m2"
    assert summaries[2].first_prompt_line == "b" * 100 + "…"
    assert [s.id for s in await store.recent(limit=2)] == [a, c]


async def test_files_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    old_umask = os.umask(0o022)
    try:
        store = ConversationStore(home, max_age_seconds=HOUR)
        await store.append_turn(store.new_id(), model="m", wire="a", system=None, turn=make_turn("a"))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    db_files = list(home.glob(DB_FILE_NAME + "*"))
    assert home / DB_FILE_NAME in db_files
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in db_files} == {p.name: 0o600 for p in db_files}
    await store.aclose()


async def test_database_is_wal_and_versioned(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    await store.recent()
    await store.aclose()
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


async def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    await store.recent()
    await store.aclose()
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(KimiMcpError, match="newer kimi-mcp"):
        await ConversationStore(tmp_path, max_age_seconds=HOUR).recent()


_WRITER = """
import json, sys, time
from pathlib import Path
import anyio
from kimi_mcp.kimi.models import TextBlock, Usage
from kimi_mcp.store import ConversationStore, Turn

home, cid, tag, go = sys.argv[1:5]
Path(f"{go}.{tag}.ready").touch()
deadline = time.time() + 15
while not Path(go).exists():
    if time.time() > deadline:
        sys.exit("never told to go")
    time.sleep(0.002)

async def main():
    store = ConversationStore(Path(home), max_age_seconds=3600)
    indices = []
    for i in range(50):
        turn = Turn(user=[TextBlock(text=f"{tag} {i}")], assistant_text=f"reply {tag} {i}",
                    stop_reason="end_turn", usage=Usage(output_tokens=i))
        indices.append(await store.append_turn(cid, model="m", wire="anthropic", system="s", turn=turn))
        await anyio.sleep(0.002)  # as between real calls: gives the other process a turn at the write lock
    await store.aclose()
    print(json.dumps(indices))

anyio.run(main)
"""


def run_two_writers(home: Path, cids: tuple[str, str]) -> list[list[int]]:
    """Two OS processes start together on a fresh database; each appends 50 turns."""
    go = home.parent / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(home), cid, tag, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for tag, cid in zip(("A", "B"), cids, strict=True)
    ]
    deadline = time.time() + 15
    while not all(Path(f"{go}.{tag}.ready").exists() for tag in "AB") and time.time() < deadline:
        time.sleep(0.005)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "locked" not in err
        results.append(json.loads(out))
    return results


async def test_two_processes_write_different_conversations_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    a, b = ConversationStore.new_id(), ConversationStore.new_id()
    assert await anyio.to_thread.run_sync(run_two_writers, home, (a, b)) == [list(range(1, 51))] * 2
    store = ConversationStore(home, max_age_seconds=HOUR)
    for cid, tag in ((a, "A"), (b, "B")):
        conversation = await store.load(cid)
        assert [t.user[0].text for t in conversation.turns] == [f"{tag} {i}" for i in range(50)]


async def test_two_processes_write_the_same_conversation_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cid = ConversationStore.new_id()
    first, second = await anyio.to_thread.run_sync(run_two_writers, home, (cid, cid))
    assert first == sorted(first) and second == sorted(second)
    assert sorted(first + second) == list(range(1, 101))
    assert not (max(first) < min(second) or max(second) < min(first)), "the two writers never overlapped"
    conversation = await ConversationStore(home, max_age_seconds=HOUR).load(cid)
    assert len(conversation.turns) == 100
    for tag, indices in (("A", first), ("B", second)):
        assert [conversation.turns[i - 1].user[0].text for i in indices] == [f"{tag} {i}" for i in range(50)]


async def test_concurrent_appends_in_one_process_get_distinct_indices(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    cid = store.new_id()
    indices: list[int] = []

    async def append(n: int) -> None:
        turn = make_turn(f"p{n}")
        indices.append(await store.append_turn(cid, model="m", wire="a", system=None, turn=turn))

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(append, n)
    assert sorted(indices) == list(range(1, 21))
    assert len((await store.load(cid)).turns) == 20
    await store.aclose()


_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=_TEXT, reply=_TEXT, thinking=st.none() | _TEXT, system=st.none() | _TEXT)
@example(prompt="\x00", reply="a\x00b", thinking="\x00", system="\x00\r\n")
@example(prompt="", reply="", thinking="", system="")
def test_any_unicode_text_round_trips_exactly(
    tmp_path: Path, prompt: str, reply: str, thinking: str | None, system: str | None
) -> None:
    # Synchronous with its own event loop per example: hypothesis and async fixtures do not mix well.
    async def round_trip() -> None:
        cid = ConversationStore.new_id()
        turn = make_turn(prompt, reply, thinking=thinking)
        writer = ConversationStore(tmp_path, max_age_seconds=HOUR)
        await writer.append_turn(cid, model="m", wire="anthropic", system=system, turn=turn)
        await writer.aclose()
        reader = ConversationStore(tmp_path, max_age_seconds=HOUR)
        conversation = await reader.load(cid)
        await reader.aclose()
        assert conversation.system == system
        assert conversation.turns == [turn]
        expected = [
            Message(role="user", content=[TextBlock(text=prompt)]),
            Message(role="assistant", content=[TextBlock(text=reply)]),
        ]
        assert messages_json(conversation) == b"\n".join(m.model_dump_json().encode() for m in expected)

    anyio.run(round_trip)


# -- continuing a conversation: what is stored is what Kimi saw --------------------------------------------------


async def test_continue_appends_when_the_conversation_is_as_loaded(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    cid = store.new_id()
    await store.append_turn(cid, model="m", wire="anthropic", system="s", turn=make_turn("a"))
    loaded = await store.load(cid)
    assert loaded.cache_key == cid
    appended = await store.continue_conversation(loaded, make_turn("b"))
    assert appended == (cid, 2, None)
    assert [t.user[0].text for t in (await store.load(cid)).turns] == ["a", "b"]
    await store.aclose()


async def test_continue_branches_when_another_process_appended_meanwhile(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    other = ConversationStore(tmp_path, max_age_seconds=HOUR)  # its own connection, as another process has
    cid = store.new_id()
    for prompt in ("a", "b"):
        await store.append_turn(cid, model="m", wire="anthropic", system="s", turn=make_turn(prompt))
    loaded = await store.load(cid)
    await other.append_turn(cid, model="m", wire="anthropic", system="s", turn=make_turn("from elsewhere"))

    appended = await store.continue_conversation(loaded, make_turn("mine", "my reply"))

    assert appended.grew_from == cid and appended.turn == 3 and appended.conversation_id != cid
    branch = await store.load(appended.conversation_id)
    assert [t.user[0].text for t in branch.turns] == ["a", "b", "mine"]
    assert branch.turns[:2] == loaded.turns and branch.turns[2].assistant_text == "my reply"
    assert (branch.model, branch.wire, branch.system, branch.cache_key) == ("m", "anthropic", "s", cid)
    original = await store.load(cid)
    assert [t.user[0].text for t in original.turns] == ["a", "b", "from elsewhere"]
    # The branch continues like any conversation, and a branch of it still carries the first key.
    again = await store.continue_conversation(branch, make_turn("next"))
    assert again == (branch.id, 4, None)
    grown = await store.load(branch.id)
    await other.continue_conversation(grown, make_turn("elsewhere again"))
    second = await store.continue_conversation(grown, make_turn("mine again"))
    assert second.grew_from == branch.id and (await store.load(second.conversation_id)).cache_key == cid
    listed = {s.id: s for s in await store.recent()}
    assert listed[appended.conversation_id].first_prompt_line == "a" and listed[appended.conversation_id].turns == 5
    await store.aclose()
    await other.aclose()


async def test_continue_writes_back_a_conversation_deleted_meanwhile(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    cid = store.new_id()
    await store.append_turn(cid, model="m", wire="anthropic", system=None, turn=make_turn("a"))
    loaded = await store.load(cid)
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:  # expired and deleted by another process
        db.execute("DELETE FROM turns")
        db.execute("DELETE FROM conversations")
    assert await store.continue_conversation(loaded, make_turn("b")) == (cid, 2, None)
    assert [t.user[0].text for t in (await store.load(cid)).turns] == ["a", "b"]
    await store.aclose()


async def test_expiry_removes_a_branch_and_its_cache_key(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    cid = store.new_id()
    for prompt in ("a", "b"):
        await store.append_turn(cid, model="m", wire="a", system=None, turn=make_turn(prompt))
    old = time.time() - 2 * HOUR  # a branch made two hours ago from the conversation's first turn
    loaded = Conversation(
        id=cid,
        created_at=old,
        updated_at=old,
        model="m",
        wire="a",
        system=None,
        turns=[make_turn("a", created_at=old)],
        cache_key=cid,
    )
    branched = await store.continue_conversation(loaded, make_turn("c", created_at=old))
    assert branched.grew_from == cid
    assert await store.expire_old() == 1
    assert len((await store.load(cid)).turns) == 2
    await store.aclose()
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:
        assert db.execute("SELECT count(*) FROM cache_keys").fetchone() == (0,)


async def test_a_schema_1_database_is_migrated_and_keeps_its_conversations(tmp_path: Path) -> None:
    from kimi_mcp.store.db import MIGRATIONS

    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:  # what kimi-mcp of schema 1 left behind
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO conversations VALUES ('kc_00000000000000aa', 1e9, 4e9, 'm', 'anthropic', NULL, 'a', 0)")
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    conversation = await store.load("kc_00000000000000aa")
    assert conversation.cache_key == conversation.id and conversation.turns == []
    await store.aclose()
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (3,)
        # A schema-1 process still running beside a migrated file inserts rows by position: that keeps working.
        db.execute("INSERT INTO conversations VALUES ('kc_00000000000000bb', 1e9, 4e9, 'm', 'anthropic', NULL, 'b', 0)")


@pytest.mark.parametrize("garbage", [b"this is not a database\n" * 200, b"SQLite format 3\x00" + b"\xff" * 8000])
async def test_a_corrupt_database_file_is_a_readable_error_naming_the_file(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / DB_FILE_NAME
    path.write_bytes(garbage)
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    for attempt in (store.recent(), store.load(store.new_id())):
        with pytest.raises(KimiMcpError) as caught:
            await attempt
        assert str(path) in caught.value.message and "not a readable database" in caught.value.message
        assert "Move it away" in caught.value.message
    path.rename(tmp_path / "moved-away")  # what the message tells the user to do; the same store recovers
    assert await store.recent() == []
    await store.aclose()


# -- per-key locks ------------------------------------------------------------------------------------------------


async def test_keyed_locks_serialise_one_key_and_leave_others_free() -> None:
    from kimi_mcp.store.locks import KeyedLocks

    locks = KeyedLocks()
    order: list[str] = []
    waited: list[str] = []
    first_in = anyio.Event()
    release_first = anyio.Event()

    async def first() -> None:
        async with locks.holding("a"):
            first_in.set()
            await release_first.wait()
            order.append("first")

    async def second() -> None:
        async def on_wait() -> None:
            waited.append("second")

        async with locks.holding("a", on_wait=on_wait):
            order.append("second")

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await first_in.wait()
        tg.start_soon(second)
        async with locks.holding("b"):  # another key is not blocked by "a"
            order.append("other key")
        with anyio.fail_after(10):
            while not waited:  # noqa: ASYNC110 - the second task says so once it queues
                await anyio.sleep(0.01)
        release_first.set()
    assert order == ["other key", "first", "second"] and waited == ["second"]
    assert len(locks) == 0


async def test_keyed_locks_are_released_and_forgotten_on_error_and_cancel() -> None:
    from kimi_mcp.store.locks import KeyedLocks

    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.holding("a"):
            raise RuntimeError("boom")
    assert len(locks) == 0
    with anyio.move_on_after(0.05):
        async with locks.holding("a"):
            await anyio.sleep_forever()
    assert len(locks) == 0

    holder_in, cancelled_waiter = anyio.Event(), anyio.CancelScope()

    async def holder() -> None:
        async with locks.holding("a"):
            holder_in.set()
            await anyio.sleep(0.2)

    async def waiter() -> None:
        with cancelled_waiter:
            async with locks.holding("a"):
                raise AssertionError("a cancelled waiter must never get the lock")

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await holder_in.wait()
        tg.start_soon(waiter)
        await anyio.sleep(0.02)
        cancelled_waiter.cancel()
    assert len(locks) == 0
    async with locks.holding("a"):  # and the key is usable again
        pass
