"""`kimi-mcp upload FILE…`: upload images or videos to Kimi and print their `ms://` ids.

One line per file on stdout, `ms://<id><TAB><file>`, so scripts can cut the id; a progress bar on stderr when it
is a terminal. The upload cache is the server's own (the store in KIMI_MCP_HOME): a file uploaded here is not
uploaded again by a server that is later asked for the same content, and vice versa.

A person at a terminal names their own files, so the server's allowed-folder policy does not apply here; the rest
of it does (regular files only: no directories, devices or FIFOs; type by content; the size limit).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import anyio

from kimi_mcp import errors
from kimi_mcp.server.progress import upload_figures
from kimi_mcp.settings import Settings

_BAR_WIDTH = 30
_REDRAW_SECONDS = 0.1


class ProgressBar:
    """`name [████░░░░] 12.0 of 50.0 MB (24%)`, redrawn in place on a terminal."""

    def __init__(self, name: str, out: TextIO) -> None:
        self.name = name
        self.out = out
        self._drawn_at = 0.0
        self._drawn = False

    async def __call__(self, sent: int, total: int) -> None:
        now = time.monotonic()
        if now - self._drawn_at < _REDRAW_SECONDS and sent < total:
            return
        self._drawn_at = now
        filled = round(_BAR_WIDTH * sent / total) if total else _BAR_WIDTH
        bar = "█" * filled + "░" * (_BAR_WIDTH - filled)
        self.out.write(f"\r{self.name} [{bar}] {upload_figures(sent, total)}")
        self.out.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.out.write("\n")
            self.out.flush()


async def upload(settings: Settings, files: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Upload each file; 0 when all went up, 1 if any failed (each failure is said on stderr, the rest go on)."""
    from kimi_mcp.access import FileAccessPolicy
    from kimi_mcp.kimi.client import KimiClient
    from kimi_mcp.kimi.media import LocalMedia, inspect_path
    from kimi_mcp.kimi.uploads import MediaUploader
    from kimi_mcp.store import ConversationStore

    anywhere = FileAccessPolicy([Path(os.sep)])

    def read(name: str) -> LocalMedia:
        path = anywhere.resolve_file(os.path.abspath(name))
        return inspect_path(path, max_bytes=settings.max_media_bytes)

    show_bar = _is_terminal(err)
    failed = 0
    store = ConversationStore(settings.home, max_age_seconds=settings.conversation_max_age_days * 86_400)
    try:
        async with KimiClient(settings) as kimi:
            uploader = MediaUploader(kimi, store.uploads)
            for name in files:
                bar = ProgressBar(name, err) if show_bar else None
                try:
                    media = await anyio.to_thread.run_sync(read, name)
                    outcome = await uploader.ensure(media, bar)
                except errors.LoginRequired:
                    raise  # every other file would fail the same way
                except errors.KimiMcpError as exc:
                    if bar is not None:
                        bar.close()
                    print(f"kimi-mcp: {name}: {exc.message}", file=err)
                    failed += 1
                    continue
                if bar is not None:
                    bar.close()
                cached = " (already uploaded)" if outcome.cached else ""
                print(f"{outcome.reference}\t{name}{cached}", file=out, flush=True)
    finally:
        await store.aclose()
    return 1 if failed else 0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
