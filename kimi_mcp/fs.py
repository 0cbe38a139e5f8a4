"""Private files: folders only their owner can change, files 0600, written atomically so no reader sees half a file.

Folders kimi-mcp creates (the home folder and any missing parents) are made 0700 whatever the umask. A folder that
already existed is never re-moded: it may be shared (`KIMI_MCP_HOME=/tmp`, a team folder), and changing its mode
would break it for everyone else. Such a folder is refused instead when another user could change what is in it,
because whoever can write to the folder can replace the stored login with their own (every prompt would then go
to their account) or swap the device id.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from kimi_mcp.errors import HomeUnusable

_PRIVATE_DIR_MODE = 0o700
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and missing parents) 0700, or check that the existing folder is the user's own.

    Raises `HomeUnusable` when the folder cannot be created, is not a folder, or could be changed by another user
    (group- or world-writable, or owned by someone other than this user or root).
    """
    try:
        for folder in _missing_folders(path):
            _make_private_dir(folder)
        problem, shared = _not_private(path)
    except OSError as exc:
        raise HomeUnusable(str(path), exc.strerror or type(exc).__name__) from None
    if problem:
        raise HomeUnusable(str(path), problem, shared=shared)


def _missing_folders(path: Path) -> list[Path]:
    """The folders from the first missing ancestor of `path` down to `path`, in the order to create them."""
    missing: list[Path] = []
    current = path
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    return missing[::-1]


def _make_private_dir(folder: Path) -> None:
    try:
        folder.mkdir(mode=_PRIVATE_DIR_MODE)
    except FileExistsError:
        return  # another process made it first: it is an existing folder now, checked like any other
    # mkdir applies the umask; a umask such as 0o277 would leave even the owner without access.
    if os.name != "nt" and stat.S_IMODE(folder.stat().st_mode) != _PRIVATE_DIR_MODE:
        folder.chmod(_PRIVATE_DIR_MODE)


def _not_private(path: Path) -> tuple[str | None, bool]:
    """Why `path` must not hold credentials (None when it may), and whether that is because others share it."""
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder", False
    if os.name == "nt":
        return None, False  # ACLs, not mode bits, guard folders on Windows; a user profile is private by default
    if info.st_mode & _OTHERS_WRITE:
        why = f"other users can write to it, mode {stat.S_IMODE(info.st_mode):o}"
        return f"{why}, so they could replace your stored Kimi login; its mode was left unchanged", True
    if info.st_uid not in (os.geteuid(), 0):
        return f"it belongs to another user, uid {info.st_uid}, who could replace your stored Kimi login", True
    return None, False


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` as 0600: temp file in the same folder, fsync, rename over the old one."""
    ensure_private_dir(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise HomeUnusable(str(path.parent), exc.strerror or type(exc).__name__) from None
    try:
        # mkstemp creates 0600 regardless of umask; chmod again in case a platform differs.
        os.fchmod(fd, 0o600) if hasattr(os, "fchmod") else None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
