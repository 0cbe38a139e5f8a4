"""Reading the files a walk found: size cap before reading, binary by content, text decoded, hashed, estimated,
and measured (its size as JSON in the request body, its lines) in one pass while its bytes are at hand.

Each file is read with `access.read_regular` (open_regular's checks: no symlink swapped in, no FIFO, a regular
file once open) at the resolved path the walk checked. Its size is checked on the open descriptor before a byte
is read, so a file over KIMI_MCP_MAX_FILE_BYTES costs nothing. Binary is decided by content, as git does: a NUL
byte in the first 8 KiB, or bytes there that are not UTF-8. Further on, a stray invalid byte (a Latin-1 comment
in a UTF-8 file) becomes U+FFFD rather than costing the whole file. BLOCKING (callers run it in a worker thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from hashlib import sha256

from kimi_mcp.access import read_regular
from kimi_mcp.context_files.model import SHORT_ESCAPES, WRITTEN_AS_IS, ContextFile, SkippedPath, json_size
from kimi_mcp.context_files.tokens import PER_BYTE, SCALE, estimate_tokens
from kimi_mcp.context_files.walk import Candidate, _new_tuple
from kimi_mcp.errors import FileAccessDenied

HEAD_BYTES = 8192  # as git's buffer_is_binary: the first 8,000-odd bytes decide
_BOM = "\ufeff"


def read_one(candidate: Candidate, max_file_bytes: int) -> ContextFile | SkippedPath:
    """The file as text, or why it was skipped."""
    try:
        size, data = read_regular(candidate.real, max_file_bytes)
    except FileAccessDenied as exc:
        reason = "special_file" if "not a regular file" in exc.reason else "unreadable"
        return SkippedPath(candidate.path, reason, exc.reason)
    except OSError as exc:
        return SkippedPath(candidate.path, "unreadable", exc.strerror or type(exc).__name__)
    if data is None:
        return SkippedPath(candidate.path, "too_large", f"{size:,} bytes, over {max_file_bytes:,}")
    if data.isascii() and data.find(b"\0", 0, HEAD_BYTES) == -1 and b"\r" not in data:
        # Most source files: ASCII without a NUL or a CR, so the text is the bytes read, character for
        # character. The general path below, without its calls: this runs a thousand times a tree.
        text = data.decode("ascii")
        escaped = data.translate(None, WRITTEN_AS_IS)  # json_size(data), inline
        six = len(escaped.translate(None, SHORT_ESCAPES))
        json_bytes, newlines = len(data) + len(escaped) + 4 * six, escaped.count(b"\n")
        tokens = -(-len(data) * PER_BYTE // SCALE)  # estimate_tokens(text), its ASCII case
    else:
        decoded = _decode(data)
        if decoded is None:
            return SkippedPath(candidate.path, "binary")
        text, as_read = decoded
        # The text's UTF-8 is the bytes read unless decoding changed them (a BOM, CRLF, U+FFFD): no copy then.
        json_bytes, newlines = json_size(data if as_read else text.encode("utf-8"))
        tokens = estimate_tokens(text)
    lines = newlines + 1 if text and text[-1] != "\n" else newlines  # count_lines, without a pass of its own
    # ContextFile(path, real, text, size, lines, tokens, sha256, json_bytes), built as walk.py builds its tuples.
    return _new_tuple(
        ContextFile,
        (candidate.path, candidate.real, text, len(data), lines, tokens, sha256(data).hexdigest(), json_bytes),
    )


def read_all(
    candidates: Sequence[Candidate],
    max_file_bytes: int,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    check_cancelled: Callable[[], None] | None = None,
    progress_interval: float = 0.25,
) -> list[ContextFile | SkippedPath]:
    """Each candidate read in turn; `on_progress(done, total)` at most every `progress_interval` seconds, and
    once at the end."""
    total = len(candidates)
    out: list[ContextFile | SkippedPath] = []
    last = time.monotonic()
    for done, candidate in enumerate(candidates, 1):
        out.append(read_one(candidate, max_file_bytes))
        if done % 64 == 0:
            if check_cancelled is not None:
                check_cancelled()
            if on_progress is not None and time.monotonic() - last >= progress_interval:
                on_progress(done, total)
                last = time.monotonic()
    if on_progress is not None:
        on_progress(total, total)
    return out


def count_lines(text: str) -> int:
    """Lines as an editor numbers them: a last line without its newline counts too."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def _decode(data: bytes) -> tuple[str, bool] | None:
    """(the text, whether its UTF-8 is `data` as read), or None for binary content."""
    if data.find(b"\0", 0, HEAD_BYTES) != -1:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Invalid bytes in the head: binary. Further on: a stray byte in a text file, shown as U+FFFD.
        if exc.start < HEAD_BYTES:
            return None
        return _normalized(data.decode("utf-8", "replace")), False
    if "\r" not in text and not text.startswith(_BOM):
        return text, True  # the common case, without a call
    normalized = _normalized(text)
    return normalized, normalized is text


def _normalized(text: str) -> str:
    """`text` without a byte-order mark, CRLF read as LF; the same object when there was neither."""
    if text.startswith(_BOM):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text
