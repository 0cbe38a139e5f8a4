"""The one SQLite file every kimi-mcp process shares: private, WAL, versioned, and used off the event loop.

Several server processes (one per host window) write to it at once. WAL lets readers and a writer proceed
together; writers queue on SQLite's busy timeout instead of failing with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

import anyio.to_thread

from kimi_mcp.errors import KimiMcpError, StoreUnreadable
from kimi_mcp.fs import ensure_private_dir

DB_FILE_NAME = "kimi-mcp.sqlite3"
# Far longer than any one transaction here (milliseconds), so a busy disk delays a write but never fails it.
BUSY_TIMEOUT_SECONDS = 10.0
T = TypeVar("T")
# SQLite's answers for a file that is not a database at all, or one whose pages are damaged.
_UNREADABLE = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})

# Step i moves the schema from version i to i + 1, in one transaction. Append new steps; never edit old ones.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model TEXT NOT NULL,
            wire TEXT NOT NULL,
            system TEXT,
            first_prompt_line TEXT NOT NULL,
            turn_count INTEGER NOT NULL
        )""",
        "CREATE INDEX conversations_by_updated_at ON conversations (updated_at)",
        """CREATE TABLE turns (
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            created_at REAL NOT NULL,
            user_json TEXT NOT NULL,
            assistant_text TEXT NOT NULL,
            thinking TEXT,
            stop_reason TEXT NOT NULL,
            usage_json TEXT NOT NULL,
            PRIMARY KEY (conversation_id, idx)
        ) WITHOUT ROWID""",
    ),
    # 1 -> 2: the prompt cache key of a conversation stored as a branch of another (conversations.py,
    # `continue_conversation`); a conversation without a row here uses its own id. A table of its own rather
    # than a new column: a kimi-mcp of schema 1 still running beside this one inserts conversation rows by
    # position (`VALUES` with 8 values), which a ninth column would break until that process restarts.
    (
        """CREATE TABLE cache_keys (
            conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
            cache_key TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
    # 2 -> 3: files uploaded to Kimi's Files API, by content (store/uploads.py). A table of its own because an
    # upload belongs to no conversation: the same bytes keep the same `ms://` id across conversations, restarts and
    # token refreshes (docs/kimi-api.md §6, §7), so its rows must outlive conversation expiry rather than cascade
    # with it. Keyed by sha256 and base URL, never by token; looked up by file id when Kimi says an id is gone.
    (
        """CREATE TABLE uploads (
            sha256 TEXT NOT NULL,
            base_url TEXT NOT NULL,
            file_id TEXT NOT NULL,
            mime_type TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            source_path TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (sha256, base_url)
        ) WITHOUT ROWID""",
        "CREATE INDEX uploads_by_file_id ON uploads (file_id, base_url)",
        # Ids Kimi said it lost, and the content they held: conversations stored before the loss still name the old
        # id, and each of their later turns is sent with the current id of the same content instead.
        """CREATE TABLE retired_uploads (
            file_id TEXT NOT NULL,
            base_url TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            retired_at REAL NOT NULL,
            PRIMARY KEY (file_id, base_url)
        ) WITHOUT ROWID""",
        # The files a turn sent as context (path -> sha256, JSON), so the next turn leaves out those unchanged
        # (docs/files.md). A table of its own, not a column of `turns`, for the reason `cache_keys` is one.
        """CREATE TABLE turn_files (
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            files_json TEXT NOT NULL,
            PRIMARY KEY (conversation_id, idx)
        ) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class Database:
    """A lazily opened connection to `path`, used by one worker thread at a time.

    Constructing one does no I/O, so a server answers `initialize` before touching the disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    async def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation(connection)` in a worker thread.

        Not abandoned on cancel: the caller waits for the thread, so no transaction is left half-done.
        """
        return await anyio.to_thread.run_sync(self._locked, operation)

    async def aclose(self) -> None:
        """Close the connection; a later `run` opens it again."""
        await anyio.to_thread.run_sync(self._close)

    def _locked(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = _open(self.path)
                return operation(self._conn)
            except sqlite3.DatabaseError as exc:
                if exc.sqlite_errorname not in _UNREADABLE:
                    raise
                # Closed, so that once the user moves the file away the next call opens a fresh one.
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise StoreUnreadable(str(self.path), str(exc)) from exc

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


@contextmanager
def transaction(conn: sqlite3.Connection, mode: Literal["DEFERRED", "IMMEDIATE"]) -> Iterator[None]:
    """One transaction. Writes use IMMEDIATE: the busy timeout then applies when it begins, whereas a
    deferred read that later upgrades to a write fails at once if another process wrote meanwhile."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _open(path: Path) -> sqlite3.Connection:
    ensure_private_dir(path.parent)
    _create_private_file(path)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        _enable_wal(conn, path)
        conn.execute("PRAGMA synchronous = NORMAL")  # crash-safe in WAL mode, without an fsync per commit
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private_file(path: Path) -> None:
    """Create the file 0600 before SQLite would (with the umask); its -wal and -shm files copy this mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    if os.name != "nt" and (path.stat().st_mode & 0o777) != 0o600:
        path.chmod(0o600)


def _enable_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Switch the file to WAL (a setting stored in the file, so only a fresh database changes).

    SQLite does not apply the busy timeout to this switch: two processes creating the file together get
    "database is locked". So retry until the timeout here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"database is locked: could not switch {path} to WAL")
        time.sleep(0.01)


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    if _schema_version(conn) == SCHEMA_VERSION:
        return  # the common case takes no write lock
    with transaction(conn, "IMMEDIATE"):
        version = _schema_version(conn)  # read again: another process may have migrated meanwhile
        if version > SCHEMA_VERSION:
            raise KimiMcpError(
                f"The conversation store {path} was written by a newer kimi-mcp (schema {version}, this one "
                f"knows {SCHEMA_VERSION}). Upgrade kimi-mcp, or set KIMI_MCP_HOME to another folder."
            )
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])
