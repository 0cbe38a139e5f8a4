"""The fake Kimi's Files API (docs/kimi-api.md §7): multipart uploads counted and hashed as they stream in.

`POST /coding/v1/files` takes a `file` part and a `purpose` part (`image` or `video`). The request body is fed
chunk by chunk to python_multipart's streaming parser; the bytes of the file part go into a counter and a sha256
and are dropped at once, so an upload of any size costs the fake a few hundred KiB and runs at loopback speed.
What the fake saw is kept as a `RecordedUpload`. This module also finds the `ms://<id>` references of a
/v1/messages request, which the fake accepts only for ids it handed out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from kimi_mcp.testing.fake_record import RecordedRequest

UPLOAD_PURPOSES = ("image", "video")
MEDIA_SCHEME = "ms://"
# A form field other than the file (`purpose`) is tiny; more than this is a broken or hostile request.
_MAX_FIELD_BYTES = 1024
_EMPTY_SHA256 = hashlib.sha256().hexdigest()


@dataclass
class RecordedUpload:
    """One POST /v1/files as the fake saw it; the file's bytes are described (size, sha256), never kept."""

    fields: list[str]  # multipart field names, in the order they came
    filename: str | None  # of the `file` part
    content_type: str | None  # of the `file` part
    purpose: str | None
    size: int  # bytes in the `file` part
    sha256: str  # hex digest of the `file` part
    headers: dict[str, str]  # of the HTTP request
    file_id: str | None = None  # the id answered (only for a 200)
    status: int | None = None  # the HTTP status answered; None if the client left or the connection was dropped
    complete: bool = False  # the whole request body arrived
    created_at: int = 0  # Unix seconds, as in the answer

    @property
    def reference(self) -> str | None:
        return f"{MEDIA_SCHEME}{self.file_id}" if self.file_id else None


class _UploadParser:
    """python_multipart callbacks: part headers decoded, the `file` part counted and hashed, `purpose` kept."""

    def __init__(self, boundary: bytes) -> None:
        self.fields: list[str] = []
        self.filename: str | None = None
        self.content_type: str | None = None
        self.purpose = bytearray()
        self.file_parts = 0
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.ended = False
        self.problem: str | None = None
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._part_headers: dict[str, bytes] = {}
        self._part: str | None = None  # "file", "purpose" or None (ignored)
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_end": self._on_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        """Parse one chunk of the body; after the first problem the rest is only drained."""
        if self.problem is not None:
            return
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            self.problem = f"malformed multipart body: {exc}"

    def finish(self) -> None:
        if self.problem is None and not self.ended:
            self.problem = "malformed multipart body: it ends before the closing boundary"

    def _on_part_begin(self) -> None:
        self._part_headers = {}
        self._part = None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._part_headers[self._header_name.decode("latin-1").strip().lower()] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        _, params = parse_options_header(self._part_headers.get("content-disposition"))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self.fields.append(name)
        if name == "file":
            self.file_parts += 1
            if self.file_parts == 1:
                self._part = "file"
                filename = params.get(b"filename")
                self.filename = filename.decode("utf-8", "replace") if filename is not None else None
                content_type = self._part_headers.get("content-type")
                self.content_type = content_type.decode("latin-1") if content_type is not None else None
        elif name == "purpose":
            self._part = "purpose"
            self.purpose.clear()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self.size += end - start
            self.sha256.update(memoryview(data)[start:end])  # no copy of the chunk
        elif self._part == "purpose":
            self.purpose += data[start:end]
            if len(self.purpose) > _MAX_FIELD_BYTES:
                raise MultipartParseError(f"the purpose field is over {_MAX_FIELD_BYTES} bytes")

    def _on_end(self) -> None:
        self.ended = True

    def upload(self, headers: dict[str, str], complete: bool) -> RecordedUpload:
        return RecordedUpload(
            fields=list(self.fields),
            filename=self.filename,
            content_type=self.content_type,
            purpose=self.purpose.decode("utf-8", "replace") if "purpose" in self.fields else None,
            size=self.size,
            sha256=self.sha256.hexdigest(),
            headers=headers,
            complete=complete,
        )


async def receive_upload(request: Request, record: RecordedRequest) -> tuple[RecordedUpload, str | None]:
    """Stream the request body through the multipart parser; the upload as seen, and why it is refused (or None).

    The body is always read to its end, even when it is refused: a client still sending a large file would
    otherwise see a broken pipe instead of the answer. `record.body_size` counts the bytes as they arrive.
    """
    media_type, params = parse_options_header(request.headers.get("content-type"))
    parser: _UploadParser | None = None
    problem: str | None = "the request must be multipart/form-data with a boundary"
    if media_type == b"multipart/form-data" and params.get(b"boundary"):
        try:
            parser = _UploadParser(params[b"boundary"])
            problem = None
        except ValueError as exc:  # python_multipart's FormParserError is one
            problem = f"malformed multipart boundary: {exc}"
    complete = False
    try:
        async for chunk in request.stream():
            record.body_size += len(chunk)
            if parser is not None:
                parser.feed(chunk)
        complete = True
    except ClientDisconnect:
        pass
    if parser is None:
        return RecordedUpload([], None, None, None, 0, _EMPTY_SHA256, record.headers, complete=complete), problem
    if complete:
        parser.finish()
        problem = parser.problem or _form_problem(parser)
    return parser.upload(record.headers, complete), problem


def _form_problem(parser: _UploadParser) -> str | None:
    if parser.file_parts == 0:
        return "missing multipart field: file"
    if parser.file_parts > 1:
        return "only one file per request"
    if "purpose" not in parser.fields:
        return "missing multipart field: purpose"
    purpose = parser.purpose.decode("utf-8", "replace")
    if purpose not in UPLOAD_PURPOSES:
        return f"invalid purpose {purpose!r}: expected one of {', '.join(UPLOAD_PURPOSES)}"
    return None


def file_object(upload: RecordedUpload) -> dict[str, Any]:
    """The service's answer for an uploaded file (docs/kimi-api.md §7)."""
    return {
        "id": upload.file_id,
        "object": "file",
        "bytes": upload.size,
        "created_at": upload.created_at,
        "filename": upload.filename,
        "purpose": upload.purpose,
    }


def media_references(value: Any) -> Iterator[str]:
    """Every `ms://…` URL in media parts anywhere in `value` (a request's messages), in order.

    Anthropic wire: `{"type": "image"|"video", "source": {"type": "url", "url": …}}`, also inside tool results;
    OpenAI wire: `{"type": "image_url"|"video_url", "image_url"|"video_url": {"url": …}}` (docs/kimi-api.md §7).
    """
    if isinstance(value, list):
        for item in value:
            yield from media_references(item)
        return
    if not isinstance(value, dict):
        return
    url = _media_url(value)
    if isinstance(url, str) and url.startswith(MEDIA_SCHEME):
        yield url
    for item in value.values():
        if isinstance(item, dict | list):
            yield from media_references(item)


def _media_url(block: dict[str, Any]) -> Any:
    kind = block.get("type")
    if kind in ("image", "video"):
        source = block.get("source")
        return source.get("url") if isinstance(source, dict) and source.get("type") == "url" else None
    if kind in ("image_url", "video_url"):
        part = block.get(kind)
        return part.get("url") if isinstance(part, dict) else part
    return None
