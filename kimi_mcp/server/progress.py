"""Progress for long calls: hosts reset their tool timeout on progress, not on logs (docs/architecture.md).

A heartbeat goes out at least every `HEARTBEAT_SECONDS` while waiting, and streamed counts as they grow
(throttled). The progress value only ever increases, as the MCP spec requires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from mcp.server.mcpserver import Context

from kimi_mcp.kimi.models import StreamProgress

HEARTBEAT_SECONDS = 5.0
_MIN_INTERVAL_SECONDS = 0.5
logger = logging.getLogger(__name__)
T = TypeVar("T")


class ProgressReporter:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._started = time.monotonic()
        self._last_sent = 0.0
        self._count = 0
        self._latest = StreamProgress(phase="waiting")
        self._waiting_for: str | None = None
        self._uploading: str | None = None  # an upload or a file read under way: its progress line

    def message(self) -> str:
        p = self._latest
        elapsed = time.monotonic() - self._started
        if self._uploading is not None:
            return f"{self._uploading}… {elapsed:.0f} s"
        if self._waiting_for is not None:
            return f"Queued: waiting for {self._waiting_for}… {elapsed:.0f} s"
        if p.phase == "queued":
            return f"Queued: too many Kimi calls in flight (KIMI_MCP_MAX_CONCURRENCY)… {elapsed:.0f} s"
        if p.phase == "waiting":
            return f"Waiting for Kimi… {elapsed:.0f} s"
        if p.phase == "thinking":
            return f"Kimi is thinking… {p.thinking_chars} chars of thinking, {elapsed:.0f} s"
        return f"Kimi is answering… {p.text_chars} chars, {elapsed:.0f} s"

    async def waiting_for(self, what: str | None) -> None:
        """Say the call is queued behind `what` (None: no longer queued); sent at once."""
        self._waiting_for = what
        if what is not None:
            await self._send()

    async def uploading(self, what: str, sent: int, total: int) -> None:
        """An upload of the call's media is under way (`sent` of `total` bytes); throttled like the stream."""
        self._uploading = f"Uploading {what} to Kimi: {upload_figures(sent, total)}"
        if time.monotonic() - self._last_sent >= _MIN_INTERVAL_SECONDS or sent >= total:
            await self._send()

    async def reading_files(self, done: int, total: int) -> None:
        """Files given as context are being read (`done` of `total`); throttled like the stream."""
        self._uploading = f"Reading files: {done:,} of {total:,}"
        if time.monotonic() - self._last_sent >= _MIN_INTERVAL_SECONDS or done >= total:
            await self._send()

    async def update(self, progress: StreamProgress) -> None:
        self._latest = progress
        self._waiting_for = None
        self._uploading = None
        if time.monotonic() - self._last_sent >= _MIN_INTERVAL_SECONDS:
            await self._send()

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` with the heartbeat beside it; its own exception comes out unwrapped."""
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self.heartbeat)
                try:
                    return await work()
                finally:
                    group.cancel_scope.cancel()
        except BaseExceptionGroup as grouped:
            if len(grouped.exceptions) == 1:
                raise grouped.exceptions[0] from None
            raise

    async def heartbeat(self) -> None:
        """Runs until cancelled: a progress notification at least every HEARTBEAT_SECONDS."""
        while True:
            await anyio.sleep(max(0.0, self._last_sent + HEARTBEAT_SECONDS - time.monotonic()))
            if time.monotonic() - self._last_sent >= HEARTBEAT_SECONDS - 0.01:
                await self._send()

    async def _send(self) -> None:
        self._count += 1
        self._last_sent = time.monotonic()
        try:
            await self._ctx.report_progress(self._count, None, self.message())
        except Exception:  # a progress hiccup must never fail the call itself
            logger.debug("progress notification failed", exc_info=True)


def upload_figures(sent: int, total: int) -> str:
    """`12.5 of 50.0 MB (25%)`."""
    percent = 100 * sent // total if total else 100
    return f"{sent / 1e6:.1f} of {total / 1e6:.1f} MB ({percent}%)"


class UploadProgress:
    """Progress for `kimi_upload_media`: bytes sent of the file's size, as the MCP spec's progress and total.

    The value never goes back, even when an upload restarts after a token refresh (the spec wants it to increase).
    """

    def __init__(self, ctx: Context, what: str) -> None:
        self._ctx = ctx
        self._what = what
        self._sent = 0
        self._last_sent_at = 0.0

    async def __call__(self, sent: int, total: int) -> None:
        if sent <= self._sent:
            return
        self._sent = sent
        now = time.monotonic()
        if now - self._last_sent_at < _MIN_INTERVAL_SECONDS and sent < total:
            return
        self._last_sent_at = now
        message = f"Uploading {self._what} to Kimi: {upload_figures(sent, total)}"
        try:
            await self._ctx.report_progress(sent, total, message)
        except Exception:
            logger.debug("progress notification failed", exc_info=True)
