"""Which files Kimi already holds: content hash (and base URL) -> the `ms://` file id it was uploaded as.

The same bytes must keep the same id, or every turn that sends them changes the request prefix and Kimi's prompt
cache misses from that point on (docs/kimi-api.md §6). So the key is the content's sha256 and the service's base
URL (ids of one service mean nothing to another), never the token: a token refresh or a second API key of the same
account leaves the ids valid. Rows live in the shared SQLite file (table `uploads`, schema 3), so they survive
restarts and are shared by every kimi-mcp process.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from kimi_mcp.store.db import Database, transaction

_COLUMNS = "sha256, base_url, file_id, mime_type, bytes, source_path, created_at"


@dataclass(frozen=True)
class CachedUpload:
    """One file Kimi holds, as recorded when it was uploaded."""

    sha256: str  # hex digest of the whole content
    base_url: str  # the service it was uploaded to (settings.base_url)
    file_id: str  # referenced as ms://<file_id>
    mime_type: str
    bytes: int
    source_path: str | None = None  # the local file it came from, if any (for the user's information only)
    created_at: float = field(default_factory=time.time)

    @property
    def reference(self) -> str:
        return f"ms://{self.file_id}"


class UploadCache:
    """Upload records in the store's database. Constructing one does no I/O."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, sha256: str, base_url: str) -> CachedUpload | None:
        """The upload of this content to this service, if one is recorded."""
        query = f"SELECT {_COLUMNS} FROM uploads WHERE sha256 = ? AND base_url = ?"
        return await self._db.run(lambda conn: _one(conn, query, sha256, base_url))

    async def by_file_id(self, file_id: str, base_url: str) -> CachedUpload | None:
        """The record of the file `file_id` on this service (the newest, should one id ever name two contents)."""
        query = f"SELECT {_COLUMNS} FROM uploads WHERE file_id = ? AND base_url = ? ORDER BY created_at DESC LIMIT 1"
        return await self._db.run(lambda conn: _one(conn, query, file_id, base_url))

    async def current(self, file_id: str, base_url: str) -> CachedUpload | None:
        """The live upload for `file_id`: its own record, or, for an id Kimi lost (see `drop`), the record of the
        same content uploaded again since. None if neither is known."""
        return await self._db.run(lambda conn: _current(conn, file_id, base_url))

    async def put(self, upload: CachedUpload) -> None:
        """Record an upload; it replaces any earlier record of the same content on the same service."""
        await self._db.run(lambda conn: _put(conn, upload))

    async def drop(self, file_id: str, base_url: str) -> None:
        """Forget the file `file_id` on this service (Kimi said it no longer has it)."""
        await self._db.run(lambda conn: _drop(conn, file_id, base_url))


def _one(conn: sqlite3.Connection, query: str, *params: str) -> CachedUpload | None:
    row = conn.execute(query, params).fetchone()
    return None if row is None else CachedUpload(*row)


def _put(conn: sqlite3.Connection, upload: CachedUpload) -> None:
    with transaction(conn, "IMMEDIATE"):
        conn.execute(
            f"INSERT INTO uploads ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (sha256, base_url) DO UPDATE SET file_id = excluded.file_id, "
            "mime_type = excluded.mime_type, bytes = excluded.bytes, source_path = excluded.source_path, "
            "created_at = excluded.created_at",
            (
                upload.sha256,
                upload.base_url,
                upload.file_id,
                upload.mime_type,
                upload.bytes,
                upload.source_path,
                upload.created_at,
            ),
        )


def _drop(conn: sqlite3.Connection, file_id: str, base_url: str) -> None:
    with transaction(conn, "IMMEDIATE"):
        # Remember which content the lost id held, so stored conversations that name it can be sent with its
        # successor (`current`).
        conn.execute(
            "INSERT OR REPLACE INTO retired_uploads (file_id, base_url, sha256, retired_at) "
            "SELECT file_id, base_url, sha256, ? FROM uploads WHERE file_id = ? AND base_url = ?",
            (time.time(), file_id, base_url),
        )
        conn.execute("DELETE FROM uploads WHERE file_id = ? AND base_url = ?", (file_id, base_url))


def _current(conn: sqlite3.Connection, file_id: str, base_url: str) -> CachedUpload | None:
    own = _one(conn, f"SELECT {_COLUMNS} FROM uploads WHERE file_id = ? AND base_url = ? LIMIT 1", file_id, base_url)
    if own is not None:
        return own
    return _one(
        conn,
        f"SELECT {', '.join('u.' + c.strip() for c in _COLUMNS.split(','))} FROM retired_uploads r "
        "JOIN uploads u ON u.sha256 = r.sha256 AND u.base_url = r.base_url WHERE r.file_id = ? AND r.base_url = ?",
        file_id,
        base_url,
    )
