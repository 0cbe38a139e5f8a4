"""The upload cache in the SQLite store (table `uploads`, schema 3): keyed by content and base URL, shared by
every store over the same home, kept apart from conversations and their expiry."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from kimi_mcp.kimi.models import TextBlock, Usage
from kimi_mcp.store import DB_FILE_NAME, SCHEMA_VERSION, CachedUpload, ConversationStore, Turn, UploadCache
from kimi_mcp.store.db import MIGRATIONS, Database

pytestmark = pytest.mark.anyio

HOUR = 3600.0
BASE = "https://api.kimi.com/coding"
OTHER_BASE = "http://127.0.0.1:8000/coding"
SHA = "a" * 64


def upload(
    file_id: str = "file-1",
    *,
    base_url: str = BASE,
    source_path: str | None = "/work/shot.png",
    created_at: float | None = None,
) -> CachedUpload:
    when = time.time() if created_at is None else created_at
    return CachedUpload(SHA, base_url, file_id, "image/png", 1234, source_path, when)


async def test_put_get_by_file_id_and_drop(tmp_path: Path) -> None:
    cache = ConversationStore(tmp_path, max_age_seconds=HOUR).uploads
    assert await cache.get(SHA, BASE) is None
    record = upload()
    await cache.put(record)
    assert await cache.get(SHA, BASE) == record
    assert await cache.by_file_id("file-1", BASE) == record
    assert record.reference == "ms://file-1"
    await cache.drop("file-1", BASE)
    assert await cache.get(SHA, BASE) is None and await cache.by_file_id("file-1", BASE) is None


async def test_the_same_content_again_replaces_its_record(tmp_path: Path) -> None:
    cache = ConversationStore(tmp_path, max_age_seconds=HOUR).uploads
    await cache.put(upload("file-old"))
    newer = upload("file-new", source_path=None, created_at=time.time() + 1)
    await cache.put(newer)
    assert await cache.get(SHA, BASE) == newer
    assert await cache.by_file_id("file-old", BASE) is None
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:
        assert db.execute("SELECT count(*) FROM uploads").fetchone() == (1,)


async def test_the_base_url_is_part_of_the_key(tmp_path: Path) -> None:
    cache = ConversationStore(tmp_path, max_age_seconds=HOUR).uploads
    await cache.put(upload("file-here"))
    assert await cache.get(SHA, OTHER_BASE) is None
    assert await cache.by_file_id("file-here", OTHER_BASE) is None
    await cache.put(upload("file-there", base_url=OTHER_BASE))
    here, there = await cache.get(SHA, BASE), await cache.get(SHA, OTHER_BASE)
    assert here is not None and there is not None and (here.file_id, there.file_id) == ("file-here", "file-there")
    await cache.drop("file-here", BASE)  # drops only on that service
    assert await cache.get(SHA, BASE) is None and await cache.get(SHA, OTHER_BASE) is not None


async def test_every_store_over_the_same_home_shares_the_records(tmp_path: Path) -> None:
    first = ConversationStore(tmp_path, max_age_seconds=HOUR)
    await first.uploads.put(upload())
    await first.aclose()
    second = ConversationStore(tmp_path, max_age_seconds=HOUR)  # a restart, or another server process
    found = await second.uploads.get(SHA, BASE)
    assert found == upload(created_at=found.created_at if found else 0)
    # One database file for conversations and uploads.
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"conversations", "turns", "uploads"} <= tables
    await second.aclose()


async def test_uploads_outlive_the_expiry_of_conversations(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    old = time.time() - 10 * HOUR
    turn = Turn(user=[TextBlock(text="look")], assistant_text="ok", stop_reason="end_turn", usage=Usage(), created_at=0)
    cid = store.new_id()
    await store.append_turn(cid, model="m", wire="anthropic", system=None, turn=turn)
    await store.uploads.put(upload(created_at=old))
    await store.expire_old()
    assert await store.uploads.get(SHA, BASE) is not None
    await store.aclose()
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:  # the conversation was deleted; the upload stays
        assert db.execute("SELECT count(*) FROM conversations").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM uploads").fetchone() == (1,)


async def test_a_schema_2_database_gains_the_uploads_table_and_keeps_its_conversations(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:  # what kimi-mcp of schema 2 left behind
        for step in MIGRATIONS[:2]:
            for statement in step:
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute("INSERT INTO conversations VALUES ('kc_00000000000000aa', 1e9, 4e9, 'm', 'anthropic', NULL, 'a', 0)")
    store = ConversationStore(tmp_path, max_age_seconds=HOUR)
    assert (await store.load("kc_00000000000000aa")).turns == []
    await store.uploads.put(upload())
    await store.aclose()
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (3,)
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'uploads'").fetchone()
        assert "WITHOUT ROWID" in sql and "PRIMARY KEY (sha256, base_url)" in sql
        indexed = [row[2] for row in db.execute("PRAGMA index_info('uploads_by_file_id')")]
        assert indexed[0] == "file_id"
        query = "EXPLAIN QUERY PLAN SELECT * FROM uploads WHERE file_id = ? AND base_url = ?"
        plan = " ".join(str(row[-1]) for row in db.execute(query, ("f", BASE)))
        assert "uploads_by_file_id" in plan  # a lookup by id does not scan the table


async def test_an_upload_cache_works_over_a_bare_database(tmp_path: Path) -> None:
    cache = UploadCache(Database(tmp_path / DB_FILE_NAME))
    await cache.put(upload())
    assert (await cache.by_file_id("file-1", BASE)) is not None


async def test_a_lost_id_leads_to_the_upload_of_the_same_content_made_since(tmp_path: Path) -> None:
    cache = ConversationStore(tmp_path, max_age_seconds=HOUR).uploads
    lost = upload("file-lost")
    await cache.put(lost)
    assert await cache.current("file-lost", BASE) == lost
    await cache.drop("file-lost", BASE)
    assert await cache.current("file-lost", BASE) is None  # lost, and not uploaded again yet
    again = upload("file-again")
    await cache.put(again)
    assert await cache.current("file-lost", BASE) == again
    assert await cache.current("file-lost", OTHER_BASE) is None  # ids of one service mean nothing to another
    assert await cache.by_file_id("file-lost", BASE) is None
