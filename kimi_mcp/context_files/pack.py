"""Files into text blocks for a user turn: stable order and headers, "already sent" by hash, and the budget.

One text block per file, sorted by path: `<file path="src/app.py" lines="120">`, the text, `</file>`. The same
files give the same bytes on the next turn, so a conversation's prefix stays byte-stable and Kimi's prompt cache
(by content prefix, docs/kimi-api.md §6) keeps hitting. A file whose content (sha256) was sent earlier in the
conversation is not sent again: it is in the history already. A changed one is sent again, its header saying it
replaces the earlier version.

The blocks sent must fit two limits the caller passes in a `Budget` (budget.py): tokens (what the model's context
window leaves after the system text, the history, the prompt and a reply reserve) and bytes (what the 2 MiB request
cap leaves, docs/kimi-api.md §9). Over either: `ContextFilesOverBudget`, naming the total and the largest files; or,
with on_overflow="truncate", the largest files are cut at a line to a common size until everything fits, each cut
marked in the text and in the result. Nothing is ever cut silently.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from kimi_mcp.context_files.budget import Budget
from kimi_mcp.context_files.model import ContextFile, FileSet, SkippedPath, json_size
from kimi_mcp.context_files.tokens import PER_BYTE, SCALE, estimate_tokens
from kimi_mcp.errors import ContextFilesOverBudget
from kimi_mcp.kimi.models import TextBlock

OnOverflow = Literal["error", "truncate"]
FileStatus = Literal["new", "changed", "unchanged"]
_LARGEST_NAMED = 5
_new_tuple = tuple.__new__  # NamedTuples built in C, as walk.py builds them
_NEWLINE = re.compile("\n")
_REPLACES = "changed since it was sent earlier in this conversation: this version replaces that one"


class PackedFile(NamedTuple):
    file: ContextFile
    status: FileStatus
    text: str | None  # the block sent; None when unchanged (the conversation has it already)
    tokens: int  # the block's estimate (for an unchanged file: the block as sent earlier, whole)
    wire_bytes: int  # what the block adds to the JSON body; 0 when not sent
    shown_lines: int | None = None  # lines kept when cut to fit; None when whole

    @property
    def truncated(self) -> bool:
        return self.shown_lines is not None

    def as_dict(self) -> dict[str, object]:
        """One entry of `files_included`."""
        entry: dict[str, object] = {
            "path": self.file.path,
            "bytes": self.file.size,
            "lines": self.file.lines,
            "tokens": self.tokens,
            "status": self.status,
        }
        if self.shown_lines is not None:
            entry["truncated"] = True
            entry["shown_lines"] = self.shown_lines
        return entry


@dataclass(frozen=True)
class PackedFiles:
    """The files of one turn, ready to send, and what was skipped."""

    files: tuple[PackedFile, ...]
    skipped: tuple[SkippedPath, ...]

    @property
    def sent(self) -> tuple[PackedFile, ...]:
        return tuple(f for f in self.files if f.text is not None)

    @property
    def tokens(self) -> int:
        """Tokens this turn's blocks add (unchanged files add none)."""
        return sum(f.tokens for f in self.sent)

    @property
    def wire_bytes(self) -> int:
        return sum(f.wire_bytes for f in self.sent)

    def blocks(self) -> list[TextBlock]:
        """The text blocks to put in the user turn, before the prompt, in this order."""
        return [TextBlock(text=f.text) for f in self.sent if f.text is not None]

    def sent_hashes(self) -> dict[str, str]:
        """path -> sha256 of the files this turn sends: record it with the turn. The union over a conversation's
        turns (later ones winning) is the `previously_sent` of its next turn."""
        return {f.file.path: f.file.sha256 for f in self.sent}

    def files_included(self) -> list[dict[str, object]]:
        return [f.as_dict() for f in self.files]

    def files_skipped(self) -> list[dict[str, str]]:
        return [s.as_dict() for s in self.skipped]

    def skipped_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))

    def summary(self) -> str:
        """One line for the calling agent, e.g. `12 files, 48k tokens, 3 skipped`."""
        unchanged = sum(1 for f in self.files if f.status == "unchanged")
        cut = sum(1 for f in self.files if f.truncated)
        parts = [f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}"]
        if unchanged:
            parts[0] += f" ({unchanged} unchanged since sent earlier, not resent)"
        parts.append(f"{_short(self.tokens)} tokens")
        if cut:
            parts.append(f"{cut} cut to fit")
        parts.append(f"{len(self.skipped)} skipped")
        return ", ".join(parts)


def path_order(path: str) -> str:
    """The sort key of a path: folder by folder (`a/z.py` before `a-b/c.py` before `a.py`), as a string, which
    sorts faster than a list of parts and in the same order (no path holds a NUL character)."""
    return path.replace("/", "\0")


def diff_sent(files: Sequence[ContextFile], previously_sent: Mapping[str, str]) -> dict[str, FileStatus]:
    """Each file's status against `previously_sent` (path -> sha256 of what earlier turns sent)."""
    statuses: dict[str, FileStatus] = {}
    for file in files:
        earlier = previously_sent.get(file.path)
        statuses[file.path] = "new" if earlier is None else "unchanged" if earlier == file.sha256 else "changed"
    return statuses


def file_order(file: ContextFile) -> str:
    return file.path.replace("/", "\0")  # path_order, in one call: the sort key of a thousand files


def pack(
    files: Sequence[ContextFile],
    skipped: Sequence[SkippedPath],
    budget: Budget,
    *,
    on_overflow: OnOverflow = "error",
    previously_sent: Mapping[str, str] | None = None,
) -> PackedFiles:
    """The blocks for `files` (sorted by path here, whatever their order), within `budget`."""
    ordered = FileSet(tuple(sorted(files, key=file_order)), tuple(sorted(skipped, key=_skip_order)))
    return pack_sorted(ordered, budget, on_overflow=on_overflow, previously_sent=previously_sent)


def pack_sorted(
    fileset: FileSet,
    budget: Budget,
    *,
    on_overflow: OnOverflow = "error",
    previously_sent: Mapping[str, str] | None = None,
) -> PackedFiles:
    """`pack` for a FileSet as `collect` makes it, its files and skips in order already."""
    sent = previously_sent or {}
    packed: list[PackedFile] = []
    to_send: list[PackedFile] = []
    tokens = size = 0
    for file in fileset.files:  # diff_sent and the totals, in the one pass over the files
        earlier = sent.get(file.path)
        entry = _whole(file, "new" if earlier is None else "unchanged" if earlier == file.sha256 else "changed")
        packed.append(entry)
        if entry.text is not None:
            to_send.append(entry)
            tokens += entry.tokens
            size += entry.wire_bytes
    if tokens > budget.tokens or size > budget.bytes:
        if on_overflow != "truncate":
            raise _over(to_send, budget)
        cut = {p.file.path: p for p in _fit(to_send, budget)}
        packed = [cut.get(p.file.path, p) for p in packed]
    return PackedFiles(tuple(packed), fileset.skipped)


def _skip_order(skip: SkippedPath) -> tuple[str, str]:
    return path_order(skip.path), skip.reason


# -- blocks ---------------------------------------------------------------------------------------------------


def render(file: ContextFile, status: FileStatus, *, body: str | None = None, shown: str | None = None) -> str:
    """A file's block: a header naming its path and lines, the text (or `body`, a cut of it), the footer."""
    text = file.text if body is None else body
    return _header(file, status, shown) + text + _footer(text)


def _header(file: ContextFile, status: FileStatus, shown: str | None = None) -> str:
    attributes = f'path="{_attribute(file.path)}" lines="{file.lines}"'
    if shown is not None:
        attributes += f' shown="{shown}"'
    if status == "changed":
        attributes += f' note="{_REPLACES}"'
    return f"<file {attributes}>\n"


def _footer(text: str) -> str:
    return "\n</file>" if text and text[-1] != "\n" else "</file>"


def wire_bytes(block: str) -> int:
    """What a text block adds to the request body: its JSON as the wire writes it (UTF-8), and a comma."""
    return json_size(block.encode("utf-8", "surrogatepass"))[0] + _BLOCK_OVERHEAD


# As kimi/wires.py's body_bytes writes JSON: compact, UTF-8 rather than \u escapes.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# The object around the text, the text's quotes and the comma before the next block.
_BLOCK_OVERHEAD = len(_JSON.encode({"type": "text", "text": ""})) + len(",")


def _whole(file: ContextFile, status: FileStatus) -> PackedFile:
    path, text = file.path, file.text
    if status == "new" and file.json_bytes is not None and _plain(path) and "&" not in path and "<" not in path:
        # The common case, without the general path's calls (a thousand times a tree): _header's attributes are
        # the path as it is and the lines; in JSON, its 4 quotes and its newline take a byte more each.
        header = f'<file path="{path}" lines="{file.lines}">\n'
        footer = "</file>" if not text or text[-1] == "\n" else "\n</file>"
        block = header + text + footer
        tokens = -(-len(block) * PER_BYTE // SCALE) if block.isascii() else estimate_tokens(block)
        size = len(header) + 5 + file.json_bytes + _FOOTER_JSON[footer] + _BLOCK_OVERHEAD
        return _new_tuple(PackedFile, (file, status, block, tokens, size, None))
    header, footer = _header(file, status), _footer(text)
    block = header + text + footer
    tokens = -(-len(block) * PER_BYTE // SCALE) if block.isascii() else estimate_tokens(block)  # ASCII: inline
    if status == "unchanged":
        return _new_tuple(PackedFile, (file, status, None, tokens, 0, None))
    if file.json_bytes is None or not _plain(path):
        size = wire_bytes(block)
    else:  # the text was measured when it was read; the header and the footer are ASCII with known escapes
        size = len(header) + header.count('"') + 1 + file.json_bytes + _FOOTER_JSON[footer] + _BLOCK_OVERHEAD
    return _new_tuple(PackedFile, (file, status, block, tokens, size, None))  # as read.py builds its tuples


def _plain(path: str) -> bool:
    """Whether `path` is written in JSON as it is: printable ASCII without a backslash (a quote is &quot;)."""
    return path.isascii() and path.isprintable() and "\\" not in path


_FOOTER_JSON = {"</file>": len("</file>"), "\n</file>": len("\\n</file>")}


def _attribute(value: str) -> str:
    if "&" not in value and '"' not in value and "<" not in value:
        return value  # the common case, without three calls
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _short(tokens: int) -> str:
    return str(tokens) if tokens < 1000 else f"{round(tokens / 1000)}k"


# -- the budget -----------------------------------------------------------------------------------------------


def _over(
    to_send: Sequence[PackedFile], budget: Budget, *, floor: Sequence[PackedFile] | None = None
) -> ContextFilesOverBudget:
    """The error naming the total and the largest files; `floor`: the files cut to nothing, which still did not
    fit (then the total is theirs: what no cut can go below)."""
    largest = sorted(to_send, key=lambda p: (-p.tokens, p.file.path))[:_LARGEST_NAMED]
    counted = to_send if floor is None else floor
    return ContextFilesOverBudget(
        files=len(to_send),
        tokens=sum(p.tokens for p in counted),
        token_budget=budget.tokens,
        size=sum(p.wire_bytes for p in counted),
        byte_budget=budget.bytes,
        window_tokens=budget.window,
        largest=[(p.file.path, p.tokens) for p in largest],
        even_cut=floor is not None,
    )


def _fit(to_send: list[PackedFile], budget: Budget) -> list[PackedFile]:
    """Cut the largest files to a common size C, the largest C with which everything fits.

    A file of t tokens and b bytes over C keeps about C tokens and b*C/t bytes (at least its header and the
    marker); files at or under C are sent whole. The cost is monotonic in C, so C is found by bisection; each
    cut is then the longest run of whole lines within its file's share, so the sum fits by construction."""
    floors = {p.file.path: _cut(p, 0, 0) for p in to_send}  # the header and the marker, no text

    def shares(c: int) -> list[tuple[int, int]]:
        out = []
        for p in to_send:
            if p.tokens <= c:
                out.append((p.tokens, p.wire_bytes))
            else:
                floor = floors[p.file.path]
                out.append((max(c, floor.tokens), max(p.wire_bytes * c // p.tokens, floor.wire_bytes)))
        return out

    def fits(c: int) -> bool:
        cost = shares(c)
        return sum(t for t, _ in cost) <= budget.tokens and sum(b for _, b in cost) <= budget.bytes

    if not fits(0):
        raise _over(to_send, budget, floor=list(floors.values()))
    low, high = 0, max(p.tokens for p in to_send)  # fits(low) holds; fits(high) does not (we are over budget)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    out = []
    for p, (tokens, size) in zip(to_send, shares(low), strict=True):
        out.append(p if p.tokens <= low else _cut(p, tokens, size))
    return out


def _cut(p: PackedFile, max_tokens: int, max_bytes: int) -> PackedFile:
    """The longest cut of `p` at a line end whose block fits both limits (the first line cut by characters when
    even it does not fit whole); with limits of 0, the smallest cut: the header and the marker alone."""
    text = p.file.text
    ends = [match.end() for match in _NEWLINE.finditer(text)]
    if text and not text.endswith("\n"):
        ends.append(len(text))

    def ok(candidate: PackedFile) -> bool:
        return candidate.tokens <= max_tokens and candidate.wire_bytes <= max_bytes

    best = _cut_at(p, 0, 0)
    low, high = 0, len(ends)  # the most whole lines that fit: bisection over their count
    while low < high:
        mid = (low + high + 1) // 2
        if ok(attempt := _cut_at(p, ends[mid - 1], mid)):
            low, best = mid, attempt
        else:
            high = mid - 1
    if low == 0 and ends:  # not even the first line fits whole (a minified file): as much of it as fits
        low, high = 0, ends[0] - 1
        while low < high:
            mid = (low + high + 1) // 2
            if ok(attempt := _cut_at(p, mid, 0)):
                low, best = mid, attempt
            else:
                high = mid - 1
    return best


def _cut_at(p: PackedFile, end: int, shown_lines: int) -> PackedFile:
    """`p` cut after its first `end` characters, `shown_lines` whole lines (0 with `end` > 0: part of line 1)."""
    text = p.file.text
    if shown_lines or not end:
        what, shown = f"{shown_lines:,} of {p.file.lines:,} lines", f"lines 1-{shown_lines}" if end else "none"
    else:
        what, shown = f"the first {end:,} characters of line 1", "part of line 1"
    marker = (
        f"[kimi-mcp cut this file here to fit the context budget: {what} shown, about "
        f"{estimate_tokens(text[end:]):,} tokens left out]\n"
    )
    head = text[:end]
    body = head + ("\n" if head and not head.endswith("\n") else "") + marker
    block = render(p.file, p.status, body=body, shown=shown)
    return PackedFile(p.file, p.status, block, estimate_tokens(block), wire_bytes(block), shown_lines)
