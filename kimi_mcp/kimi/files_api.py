"""Kimi's Files API (docs/kimi-api.md §7): the streamed multipart body of one upload, and what its answer means.

`KimiClient.upload` sends it. The body is never built in memory: the file goes to the socket chunk by chunk as it
is read from disk, with an exact Content-Length computed beforehand (no chunked transfer encoding, which some
proxies in front of upload endpoints refuse), so peak memory stays flat however large the file.

Uploads do not go through the anthropic SDK, so its retry loop does not cover them; `retry_delay` applies the
same rule here (docs/kimi-api.md §9): transient answers are retried a bounded number of times, honouring
`Retry-After` up to `MAX_RETRY_AFTER_SECONDS`.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2

from kimi_mcp import errors
from kimi_mcp.kimi.upstream import MAX_RETRY_AFTER_SECONDS, error_for_response, retry_after_seconds

if TYPE_CHECKING:
    from kimi_mcp.kimi.media import LocalMedia

UploadProgress = Callable[[int, int], Awaitable[None]]
"""Called with (bytes of the file sent so far, the file's size) while an upload is under way."""

FILES_PATH = "/v1/files"
REFERENCE_SCHEME = "ms://"
# Read from disk and handed to the socket one piece at a time: the only part of a file ever held in memory.
CHUNK_BYTES = 1 << 20
# Progress is reported at most once per this many bytes and once per 1% of the file, plus once at the end: a
# 512 MiB upload then makes 100 notifications, not 512 (each one is a message to the MCP host).
PROGRESS_MIN_STEP_BYTES = 1 << 20
# Backoff between retries when the service does not say how long to wait: the anthropic SDK's figures.
_INITIAL_RETRY_DELAY = 0.5
_MAX_RETRY_DELAY = 8.0
# What an id may look like: it is replayed inside `ms://<id>` in every later turn, and error answers naming it are
# matched by upstream.gone_file_reference with the same characters.
_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,199}")


@dataclass(frozen=True)
class UploadedFile:
    """A file Kimi now holds."""

    id: str
    bytes: int

    @property
    def reference(self) -> str:
        """How messages refer to it: `ms://<id>` (docs/kimi-api.md §7)."""
        return REFERENCE_SCHEME + self.id


def file_id_of(reference: str) -> str | None:
    """`abc` for `ms://abc`; None for anything that is not an `ms://` reference to a plausible id."""
    if not reference.startswith(REFERENCE_SCHEME):
        return None
    file_id = reference[len(REFERENCE_SCHEME) :]
    return file_id if _FILE_ID.fullmatch(file_id) else None


class MultipartBody:
    """The multipart/form-data body of one upload: part `file` (`upload.<ext>`, the media's type), part `purpose`.

    Its length is known before a byte is sent, and `stream()` can be called again for a retry (each call reads
    the file afresh).
    """

    def __init__(self, media: LocalMedia, *, boundary: str | None = None) -> None:
        self.media = media
        # Random, so it cannot occur in the file by accident or by design (RFC 2046 §5.1.1 allows 70 characters).
        self.boundary = boundary or "kimi-mcp-" + secrets.token_hex(16)
        media_type = media.media_type
        self._head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="upload.{media_type.extension}"\r\n'
            f"Content-Type: {media_type.mime_type}\r\n\r\n"
        ).encode("ascii")
        self._tail = (
            f"\r\n--{self.boundary}\r\n"
            'Content-Disposition: form-data; name="purpose"\r\n\r\n'
            f"{media_type.kind}\r\n"
            f"--{self.boundary}--\r\n"
        ).encode("ascii")

    @property
    def content_length(self) -> int:
        return len(self._head) + self.media.size + len(self._tail)

    def headers(self) -> dict[str, str]:
        """Content-Type and an exact Content-Length: httpx2 then streams without chunked transfer encoding."""
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(self.content_length),
        }

    async def stream(self, progress: ProgressMeter | None = None) -> AsyncIterator[bytes]:
        """The body, the file read chunk by chunk; `MediaChanged` if the file is not the size it was checked at."""
        media = self.media
        yield self._head
        sent = 0
        chunks = media.chunks(CHUNK_BYTES)
        try:
            async for chunk in chunks:
                sent += len(chunk)
                if sent > media.size:
                    break
                yield chunk
                if progress is not None:
                    await progress.advance(sent)
        except OSError as exc:
            raise errors.MediaChanged(media.name, exc.strerror or type(exc).__name__) from None
        finally:
            if (aclose := getattr(chunks, "aclose", None)) is not None:
                await aclose()  # closes the file now, not whenever the generator is collected
        if sent != media.size:
            # Sending on would break the Content-Length promise, and the cache would file the new content under
            # the old content's sha256.
            now = "more" if sent > media.size else f"{sent:,}"
            raise errors.MediaChanged(media.name, f"it was {media.size:,} bytes when checked, now {now}")
        yield self._tail


class ProgressMeter:
    """Turns per-chunk counts into throttled, never decreasing `UploadProgress` calls.

    A retry sends the file again from its start; its counts stay silent until they pass what was already
    reported, so the caller sees one monotonic progression that ends at the total.
    """

    def __init__(self, total: int, callback: UploadProgress) -> None:
        self.total = total
        self._callback = callback
        self._step = max(total // 100, PROGRESS_MIN_STEP_BYTES)
        self._reported = 0

    async def advance(self, sent: int) -> None:
        if sent <= self._reported:
            return
        if sent < self.total and sent - self._reported < self._step:
            return
        self._reported = sent
        await self._callback(sent, self.total)


def uploaded_file(response: httpx2.Response, media: LocalMedia) -> UploadedFile:
    """The file object of a successful answer (200 or 201): `{id, object: "file", bytes, ...}`."""
    try:
        data: Any = json.loads(response.content)
    except ValueError:
        raise errors.UploadAnswerMalformed("not JSON", response.status_code) from None
    if not isinstance(data, dict):
        raise errors.UploadAnswerMalformed("not a JSON object", response.status_code)
    file_id = data.get("id")
    if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
        shown = "no id" if file_id is None else f"an unusable id {str(file_id)[:40]!r}"
        raise errors.UploadAnswerMalformed(shown, response.status_code)
    size = data.get("bytes")
    if isinstance(size, int) and not isinstance(size, bool) and size != media.size:
        raise errors.UploadAnswerMalformed(
            f"it says it stored {size:,} bytes of the {media.size:,} sent", response.status_code
        )
    return UploadedFile(id=file_id, bytes=media.size)


def upload_error(response: httpx2.Response, media: LocalMedia) -> Exception:
    """The error for a failed upload answer; `upstream.Rejected` for a 401 so the token can be recovered."""
    if response.status_code == 413:
        return errors.UploadTooLarge(media.name, media.size)
    return error_for_response(response.status_code, response.content, response.headers)


def retry_delay(response: httpx2.Response, attempt: int) -> float | None:
    """Seconds to wait before retrying after the failed answer `response`, or None for no retry.

    The anthropic SDK's rule, so uploads and chat treat a fault alike: `x-should-retry` (set by
    upstream.mark_retry, e.g. for a 403 "concurrent request limit" or a used-up quota) decides first; else 408,
    409, 429 and 5xx are transient. A `Retry-After` over `MAX_RETRY_AFTER_SECONDS` is not waited for.
    """
    verdict = response.headers.get("x-should-retry")
    if verdict == "false":
        return None
    status = response.status_code
    if verdict != "true" and status not in (408, 409, 429) and status < 500:
        return None
    asked = retry_after_seconds(response.headers)
    if asked is not None:
        return asked if asked <= MAX_RETRY_AFTER_SECONDS else None
    return backoff(attempt)


def backoff(attempt: int) -> float:
    """Seconds before retry number `attempt + 1` when the service did not say: exponential, with jitter."""
    delay = min(_INITIAL_RETRY_DELAY * 2**attempt, _MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())  # as the SDK: clients that failed together spread out
