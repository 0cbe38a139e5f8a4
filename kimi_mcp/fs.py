"""Private files: folder 0700, file 0600, written atomically so no reader ever sees half a file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from kimi_mcp.errors import HomeUnusable


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) and make sure only the owner can enter it, whatever the umask."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.name != "nt" and (path.stat().st_mode & 0o777) != 0o700:
            path.chmod(0o700)
    except OSError as exc:
        raise HomeUnusable(str(path), exc.strerror or type(exc).__name__) from None


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
