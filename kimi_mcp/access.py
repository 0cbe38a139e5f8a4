"""The local file access policy: which files kimi-mcp may read for a caller (docs/architecture.md, docs/media.md).

Every feature that reads a file a caller names (media today, files as context next) goes through here, so the
rules live in one place: the path must be absolute; symlinks and `..` are resolved before the check; the resolved
file must lie inside one of the allowed roots and be a regular file (no folder, device, FIFO or socket). The roots
are KIMI_MCP_ALLOWED_DIRS, else the server's working folder; an MCP client's roots (`roots/list`) narrow them, and
replace the working-folder default only where the caller may widen it (see `with_client_roots`).

A check and a later open are two steps another process could slip between, so `open_regular` checks again on the
open file descriptor and never blocks on a FIFO swapped in meanwhile.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit
from urllib.request import url2pathname

from kimi_mcp.errors import FileAccessDenied

if TYPE_CHECKING:
    from kimi_mcp.settings import Settings

_OUTSIDE = "it is outside the allowed folders (symlinks and `..` are resolved before this check)"


class FileAccessPolicy:
    """The folders whose regular files may be read. Immutable; narrowing returns a new policy."""

    roots: tuple[Path, ...]
    explicit: bool

    def __init__(self, roots: Iterable[Path], *, explicit: bool = True) -> None:
        """`roots`: absolute folders (a relative one is a programming error). `explicit`: False only for the
        working-folder default, the one set that client roots may replace rather than narrow."""
        resolved: list[Path] = []
        for root in roots:
            if not Path(root).is_absolute():
                raise ValueError(f"an allowed root must be an absolute path, not {str(root)!r}")
            # Resolved once, here: file paths are compared after their own symlinks are resolved, so a root named
            # through a symlink must be compared by its target too. A root that does not exist yet stays as named.
            real = Path(os.path.realpath(root))
            if real not in resolved:
                resolved.append(real)
        self.roots = tuple(resolved)
        self.explicit = explicit

    @classmethod
    def from_settings(cls, settings: Settings) -> FileAccessPolicy:
        """KIMI_MCP_ALLOWED_DIRS when set, else the server's working folder (a default clients may replace)."""
        if settings.allowed_dirs:
            return cls(settings.allowed_dirs, explicit=True)
        return cls((Path.cwd(),), explicit=False)

    def with_client_roots(self, client_roots: Sequence[Path] | None, *, may_widen: bool) -> FileAccessPolicy:
        """The policy for a call from a client that offers `client_roots` (None: it offers none).

        `may_widen` (stdio: the client is the user's own host) lets the client's roots replace the working-folder
        default. Otherwise the result is the intersection: client roots inside an allowed root, and allowed roots
        inside a client root, so client roots never widen KIMI_MCP_ALLOWED_DIRS, nor anything over HTTP. An empty
        list is an answer too: the client allows no folder, and nothing can be read.
        """
        if client_roots is None:
            return self
        offered = FileAccessPolicy(client_roots)
        if may_widen and not self.explicit:
            return offered
        narrowed = [c for c in offered.roots if self.contains(c)]
        narrowed += [a for a in self.roots if offered.contains(a) and not _inside_any(a, narrowed)]
        return FileAccessPolicy(narrowed)

    def contains(self, resolved: Path) -> bool:
        """Whether an already resolved path lies inside (or is) one of the roots."""
        return _inside_any(resolved, self.roots)

    def resolve_file(self, raw: str) -> Path:
        """The resolved path of the regular file `raw` names, or `FileAccessDenied` naming the roots.

        Only `stat` is used here, never `open`: a FIFO or device is refused without being touched.
        """
        if not raw or "\0" in raw:
            raise self._denied(raw, "it is not a usable path (empty, or it contains a NUL character)")
        if not Path(raw).is_absolute():
            raise self._denied(raw, "it is a relative path, and the server's working folder is not the caller's")
        # Containment first, on the non-strict resolution: a path outside the roots is refused the same way
        # whether it exists or not, so the policy cannot be used to probe for files elsewhere.
        if not self.contains(Path(os.path.realpath(raw))):
            raise self._denied(raw, _OUTSIDE)
        try:
            real = Path(os.path.realpath(raw, strict=True))
            if not self.contains(real):  # it changed since the first resolution
                raise self._denied(raw, _OUTSIDE)
            mode = os.stat(real).st_mode
        except OSError as exc:
            raise self._denied(raw, _os_reason(exc)) from None
        if not stat.S_ISREG(mode):
            raise self._denied(raw, f"it is {_kind_of(mode)}, not a regular file")
        if not os.access(real, os.R_OK):
            raise self._denied(raw, "permission denied: the server's user may not read it")
        return real

    def _denied(self, raw: str, reason: str) -> FileAccessDenied:
        return FileAccessDenied(raw, reason, [str(root) for root in self.roots])

    def __repr__(self) -> str:
        return f"FileAccessPolicy({[str(r) for r in self.roots]!r}, explicit={self.explicit})"


_REGULAR_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_REGULAR_FLAGS |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)


def open_regular(path: Path) -> BinaryIO:
    """Open `path` read-only, refusing (FileAccessDenied) anything that is not a regular file once open.

    Between `resolve_file` and this open the file may have been replaced: O_NOFOLLOW refuses a symlink put in its
    place, O_NONBLOCK keeps a FIFO from blocking the open until a writer appears, and fstat on the descriptor sees
    what was actually opened. O_NONBLOCK is cleared afterwards so reads behave normally.
    """
    try:
        fd = os.open(path, _REGULAR_FLAGS)
    except OSError as exc:
        # roots=None: the policy that names them passed this path; the file changed after that check.
        reason = "a symbolic link took the checked file's place" if exc.errno == errno.ELOOP else _os_reason(exc)
        raise FileAccessDenied(str(path), reason, None) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileAccessDenied(str(path), f"it is {_kind_of(mode)}, not a regular file", None)
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return open(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path | str, max_bytes: int) -> tuple[int, bytes | None]:
    """(size, content) of the regular file at `path`, with `open_regular`'s checks but no file object: for
    reading many small files (context_files/), where the file object costs more than the read. The content is
    None, unread, when the size (from fstat on the open descriptor) is over `max_bytes`; else the first `size`
    bytes (fewer if the file shrank meanwhile). O_NONBLOCK stays set: it does not change reads of a regular file.
    """
    try:
        fd = os.open(path, _REGULAR_FLAGS)
    except OSError as exc:
        reason = "a symbolic link took the checked file's place" if exc.errno == errno.ELOOP else _os_reason(exc)
        raise FileAccessDenied(str(path), reason, None) from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise FileAccessDenied(str(path), f"it is {_kind_of(status.st_mode)}, not a regular file", None)
        size = status.st_size
        if size > max_bytes:
            return size, None
        data = b""
        while len(data) < size:  # once, unless a read comes back short
            chunk = os.read(fd, size - len(data))
            if not chunk:
                break
            data += chunk
        return size, data
    finally:
        os.close(fd)


def paths_from_root_uris(uris: Iterable[str]) -> list[Path]:
    """Local folders from MCP roots. Roots are `file://` URIs; any other scheme, or another host, is skipped."""
    paths: list[Path] = []
    for uri in uris:
        parts = urlsplit(str(uri))
        if parts.scheme.lower() != "file" or parts.netloc.lower() not in ("", "localhost"):
            continue
        path = Path(url2pathname(parts.path))  # percent-decoded; on Windows also /C:/x -> C:\\x
        if path.is_absolute() and path not in paths:
            paths.append(path)
    return paths


def _inside_any(path: Path, roots: Iterable[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _kind_of(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such file"
    if exc.errno == errno.ELOOP:
        return "it is a loop of symbolic links"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: the server's user may not read it"
    return exc.strerror or type(exc).__name__
