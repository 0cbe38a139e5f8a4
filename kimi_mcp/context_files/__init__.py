"""Files, folders and globs as context for Kimi: read inside the allowed folders, packed into a turn within budget.

The core of `kimi_chat`'s `files` (docs/files.md). No MCP here: a `KimiClient` user calls it the same way.

    policy = FileAccessPolicy.from_settings(settings)
    window = (await client.context_window(request.model)).tokens
    packed = await prepare_files(
        ["/repo/src", "/repo/README.md", "/repo/tests/**/*.py"], policy,
        budget=budget_for(request, protocol=settings.protocol, window_tokens=window),  # request: without the files
        max_file_bytes=settings.max_file_bytes,
        previously_sent=hashes_of_earlier_turns,        # {path: sha256}: not sent again when unchanged
    )
    content = [*packed.blocks(), TextBlock(text=prompt)]  # the user turn; record packed.sent_hashes() with it

Steps usable alone: `budget_for` / `budget_left` (what a request leaves for files), `read_files` (walk, skip,
read, hash, estimate: in a worker thread, with progress), `pack` (diff against what was sent, blocks in a stable
order, the budget), `estimate_tokens`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial

import anyio
import anyio.from_thread
import anyio.to_thread

from kimi_mcp.access import FileAccessPolicy
from kimi_mcp.context_files.budget import FILES_REPLY_RESERVE_TOKENS, Budget, budget_for, budget_left
from kimi_mcp.context_files.model import SKIP_REASONS, ContextFile, FileSet, SkippedPath, SkipReason
from kimi_mcp.context_files.pack import (
    FileStatus,
    OnOverflow,
    PackedFile,
    PackedFiles,
    diff_sent,
    file_order,
    pack,
    pack_sorted,
    path_order,
    render,
    wire_bytes,
)
from kimi_mcp.context_files.read import read_all
from kimi_mcp.context_files.tokens import estimate_tokens
from kimi_mcp.context_files.walk import MAX_FILES, expand
from kimi_mcp.errors import NoContextFiles

__all__ = [
    "FILES_REPLY_RESERVE_TOKENS",
    "MAX_FILES",
    "SKIP_REASONS",
    "Budget",
    "ContextFile",
    "FileSet",
    "FileStatus",
    "OnOverflow",
    "PackedFile",
    "PackedFiles",
    "SkipReason",
    "SkippedPath",
    "budget_for",
    "budget_left",
    "collect",
    "diff_sent",
    "estimate_tokens",
    "pack",
    "prepare_files",
    "read_files",
    "render",
    "wire_bytes",
]

Progress = Callable[[int, int], Awaitable[None]]
_EXAMPLES = 3


def collect(
    specs: Sequence[str],
    policy: FileAccessPolicy,
    *,
    max_file_bytes: int,
    on_progress: Callable[[int, int], None] | None = None,
    check_cancelled: Callable[[], None] | None = None,
) -> FileSet:
    """The files `specs` (absolute paths, folders, globs) name, read under `policy`. BLOCKING.

    Raises `FileAccessDenied` for a spec outside the allowed folders (or missing), `TooManyContextFiles`, and
    `NoContextFiles` when nothing at all can be sent. `on_progress(files read, files to read)`."""
    walked = expand(specs, policy, check_cancelled=check_cancelled)
    read = read_all(walked.candidates, max_file_bytes, on_progress=on_progress, check_cancelled=check_cancelled)
    files: list[ContextFile] = []
    skipped = walked.skipped
    for result in read:
        (files if type(result) is ContextFile else skipped).append(result)  # type: ignore[arg-type]
    files.sort(key=file_order)
    skipped.sort(key=lambda s: (path_order(s.path), s.reason))
    fileset = FileSet(tuple(files), tuple(skipped))
    if not files:
        raise NoContextFiles(fileset.skipped_counts(), [f"{s.path}: {s.reason}" for s in skipped[:_EXAMPLES]])
    return fileset


async def read_files(
    specs: Sequence[str], policy: FileAccessPolicy, *, max_file_bytes: int, on_progress: Progress | None = None
) -> FileSet:
    """`collect` in a worker thread: the event loop keeps serving while a large tree is read, `on_progress` is
    awaited on the loop (at most 4 times a second), and cancelling the caller stops the reading."""
    work = partial(
        collect,
        specs,
        policy,
        max_file_bytes=max_file_bytes,
        on_progress=_reporter(on_progress),
        check_cancelled=anyio.from_thread.check_cancelled,
    )
    return await anyio.to_thread.run_sync(work)


async def prepare_files(
    specs: Sequence[str],
    policy: FileAccessPolicy,
    *,
    budget: Budget,
    max_file_bytes: int,
    on_overflow: OnOverflow = "error",
    previously_sent: Mapping[str, str] | None = None,
    on_progress: Progress | None = None,
) -> PackedFiles:
    """Read (`read_files`) and pack (`pack`) in one worker thread: the blocks for this turn, within `budget`,
    files already sent unchanged left out. Raises what those raise, and `ContextFilesOverBudget`."""

    def work(report: Callable[[int, int], None] | None) -> PackedFiles:
        fileset = collect(
            specs,
            policy,
            max_file_bytes=max_file_bytes,
            on_progress=report,
            check_cancelled=anyio.from_thread.check_cancelled,
        )
        return pack_sorted(fileset, budget, on_overflow=on_overflow, previously_sent=previously_sent)

    return await anyio.to_thread.run_sync(work, _reporter(on_progress))


def _reporter(on_progress: Progress | None) -> Callable[[int, int], None] | None:
    """A callback for the worker thread that awaits `on_progress` on the event loop."""
    if on_progress is None:
        return None
    callback = on_progress

    def report(done: int, total: int) -> None:
        anyio.from_thread.run(callback, done, total)

    return report
