"""The state folder (KIMI_MCP_HOME): its kind, owner and mode, the stored login file's mode, and the conversation
store's integrity (SQLite `PRAGMA integrity_check`, read-only: doctor never creates, migrates or repairs anything).

Mode bits and ownership are read rather than relying on a failed open, so the findings hold when run as root too.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import anyio

from kimi_mcp.auth.store import CREDENTIALS_FILE
from kimi_mcp.errors import HomeUnusable, StoreUnreadable
from kimi_mcp.fs import ensure_private_dir
from kimi_mcp.store.db import DB_FILE_NAME, SCHEMA_VERSION

from .model import STEP_SECONDS, Check, fail, ok, skipped
from .threads import run_abandonable

FOLDER, CREDENTIALS, STORE = "state.folder", "state.credentials", "state.store"
_STORE_FIX = "move {path} away (or delete it): kimi-mcp starts a new, empty one (earlier conversations are gone)"
_HOME_FIX = "set KIMI_MCP_HOME to a private folder of your own, or unset it to use ~/.kimi-mcp"


def folder_check(home: Path) -> Check:
    if not os.path.lexists(home):
        return ok(FOLDER, f"{home} does not exist yet: it is created (mode 700) on first use")
    try:
        ensure_private_dir(home)  # exists: checked, never created or re-moded
    except HomeUnusable as exc:
        return fail(FOLDER, exc.message, _home_fix(home))
    if not os.access(home, os.R_OK | os.W_OK | os.X_OK):
        return fail(FOLDER, f"{home}: this user cannot read and write it", f"chmod u+rwx {home}, or {_HOME_FIX}")
    mode = stat.S_IMODE(home.stat().st_mode)
    if mode & 0o077:
        return ok(FOLDER, f"{home} (mode {mode:o}: other users can list it; `chmod 700 {home}` hides the names)")
    return ok(FOLDER, f"{home} (mode {mode:o}, yours)")


def credentials_check(home: Path) -> Check:
    path = home / CREDENTIALS_FILE
    try:
        info = path.lstat()
    except FileNotFoundError:
        return ok(CREDENTIALS, f"no stored login at {path}")
    except OSError as exc:
        return fail(CREDENTIALS, f"{path}: {exc.strerror}", f"chmod 700 {home} and chmod 600 {path}")
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        return fail(CREDENTIALS, f"{path} is not a regular file", f"remove {path}, then run `kimi-mcp login`")
    if info.st_uid != os.geteuid():
        return fail(CREDENTIALS, f"{path} belongs to uid {info.st_uid}", f"remove {path}, then run `kimi-mcp login`")
    if mode & 0o077:
        return fail(CREDENTIALS, f"{path} has mode {mode:o}: other users can read your Kimi login", f"chmod 600 {path}")
    return ok(CREDENTIALS, f"{path} (mode {mode:o}, yours)")


async def store_check(home: Path) -> Check:
    path = home / DB_FILE_NAME
    if not path.exists():
        return ok(STORE, f"no conversation store yet: {path} is created on first use")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return fail(STORE, f"{path} has mode {mode:o}: other users can read your conversations", f"chmod 600 {path}")
    with anyio.move_on_after(2 * STEP_SECONDS):
        try:
            verdict, version = await run_abandonable(lambda: _inspect(path), "store integrity")
        except sqlite3.DatabaseError as exc:
            unreadable = StoreUnreadable(str(path), str(exc))
            return fail(STORE, unreadable.message, _STORE_FIX.format(path=path))
        if verdict != "ok":
            return fail(
                STORE,
                f"{path} is damaged: {verdict[:200]}",
                _STORE_FIX.format(path=path),
            )
        if version > SCHEMA_VERSION:
            why = f"{path} was written by a newer kimi-mcp (schema {version}, this one knows {SCHEMA_VERSION})"
            return fail(STORE, why, "upgrade kimi-mcp, or set KIMI_MCP_HOME to another folder")
        later = "" if version == SCHEMA_VERSION else f"; upgraded from schema {version} on next use"
        return ok(STORE, f"{path}: integrity ok, schema {version}{later}")
    return skipped(
        STORE, f"{path}: the integrity check did not finish within {2 * STEP_SECONDS:g} s (a busy or large store)"
    )


def store_skipped(reason: str) -> Check:
    return skipped(STORE, reason)


def _inspect(path: Path) -> tuple[str, int]:
    """(`PRAGMA integrity_check`'s first line, the schema version), opened read-only."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=STEP_SECONDS)
    try:
        verdict = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        return verdict, int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _home_fix(home: Path) -> str:
    try:
        info = home.stat()
    except OSError:
        return _HOME_FIX
    if not stat.S_ISDIR(info.st_mode):
        return f"KIMI_MCP_HOME names a file ({home}): {_HOME_FIX}"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"chmod 700 {home} if only you use it, or {_HOME_FIX}"
    return _HOME_FIX
