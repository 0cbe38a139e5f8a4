"""A fake Kimi Code service on loopback: real HTTP, scriptable, recording, with an emulated prompt cache.

Tests, the demo and the benchmarks point kimi-mcp (and its worker processes) at `FakeKimi.base_url` and
`FakeKimi.oauth_host`. It follows docs/kimi-api.md exactly: the Anthropic surface under `/coding`, Bearer-only
auth (§4), content-prefix caching (§6), the Files API (§7, fake_files.py), stream quirks (§8) and errors (§9).
Run it by hand with `python -m kimi_mcp.testing.fake_kimi`.

Media: `POST /coding/v1/files` streams the multipart body through a counter and a sha256 (never kept), records a
`RecordedUpload` in `fake.uploads` and answers ids `fakefile000001`, …; `fake.files` maps the known ids to their
upload, `fake.forget_file(id)` makes one unknown (the service lost it) and `fake.script_upload(*faults)` queues
error answers for uploads (e.g. `Fault.too_large()`), apart from the messages script. /v1/messages refuses a
body over 2,097,152 bytes (413, checked first, as the proxy in front of the service does) and any `ms://<id>` media
reference to an unknown id (400 "file not found: ms://<id>"); both are checked before a scripted step is
consumed, so the script stays for the request a test meant it for (as for a 401). Inline base64 media passes.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kimi_mcp.testing.fake_answer import DelayedAnswer, DroppedConnection, Exchange, ReplyAnswer, transport_of
from kimi_mcp.testing.fake_cache import PromptCache
from kimi_mcp.testing.fake_files import MEDIA_SCHEME, RecordedUpload, file_object, media_references, receive_upload
from kimi_mcp.testing.fake_oauth import FakeOAuth
from kimi_mcp.testing.fake_record import RecordedRequest, header_dict
from kimi_mcp.testing.fake_script import Fault, Reply, default_reply, error_body
from kimi_mcp.testing.fake_server import LoopbackServer

__all__ = ["FakeKimi", "Fault", "RecordedRequest", "RecordedUpload", "Reply"]

DEFAULT_API_KEY = "sk-kimi-test-key"
DEFAULT_MODEL = "kimi-for-coding"
# docs/kimi-api.md §9: a /v1/messages body over this many bytes was refused with 413.
MESSAGES_BODY_LIMIT = 2_097_152
_FILES_PATH = "/coding/v1/files"
_EXCHANGE = "fake_kimi.exchange"


def default_models() -> list[dict[str, Any]]:
    """The plan's one model, as `GET /v1/models` lists it (docs/kimi-api.md §1)."""
    return [
        {
            "id": DEFAULT_MODEL,
            "display_name": "Kimi For Coding",
            "context_length": 262144,
            "supports_reasoning": True,
            "supports_thinking_type": "both",
            "supports_image_in": True,
            "supports_video_in": True,
            "think_efforts": {"support": True, "valid_efforts": ["low", "high", "max"], "default_effort": "high"},
        }
    ]


def default_usages(now: datetime | None = None) -> dict[str, Any]:
    """Plan usage with decimal strings and ISO reset times; the 300-minute window is the 5-hour bucket (§9)."""
    now = now or datetime.now(UTC)

    def iso(delta: timedelta) -> str:
        return (now + delta).replace(microsecond=0).isoformat().replace("+00:00", "Z")

    return {
        "usage": {"used": "12", "limit": "100", "resetTime": iso(timedelta(days=7))},
        "limits": [
            {
                "window": {"duration": 300, "timeUnit": "TIME_UNIT_MINUTE"},
                "detail": {"used": "3", "limit": "50", "resetTime": iso(timedelta(hours=5))},
            }
        ],
    }


class FakeKimi:
    """The fake service. `with FakeKimi() as fake:` serves it on 127.0.0.1 from a background thread."""

    def __init__(self, *, port: int = 0) -> None:
        self.oauth = FakeOAuth()
        self.api_keys: set[str] = {DEFAULT_API_KEY}
        self.requests: list[RecordedRequest] = []
        self.models: list[dict[str, Any]] = default_models()
        self.usages: dict[str, Any] = default_usages()
        # Seconds GET /v1/models waits before answering; math.inf hangs until the client gives up.
        self.models_delay: float = 0.0
        # POST /v1/messages requests open right now, and the most ever open at once (request received until the
        # last byte of its answer was sent): what a client's concurrency limit must keep low.
        self.messages_in_flight = 0
        self.max_messages_in_flight = 0
        self.messages_body_limit = MESSAGES_BODY_LIMIT
        # Every POST /v1/files, refused ones included (see RecordedUpload.status), and the ids it handed out.
        self.uploads: list[RecordedUpload] = []
        self.files: dict[str, RecordedUpload] = {}
        self._wanted_port = port
        self._port: int | None = None
        self._lock = threading.Lock()
        self._script: deque[Reply | Fault] = deque()
        self._upload_script: deque[Fault] = deque()
        self._file_ids = itertools.count(1)
        self._cache = PromptCache()
        self._ids = itertools.count(1)
        self._app = self._build_app()
        self._server: LoopbackServer | None = None

    # -- test-facing API --------------------------------------------------------------------------------

    @property
    def oauth_host(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeKimi is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.oauth_host}/coding"

    def script(self, *steps: Reply | Fault) -> None:
        """Queue answers for POST /coding/v1/messages, consumed in order (then the default reply)."""
        with self._lock:
            self._script.extend(steps)

    def script_upload(self, *steps: Fault) -> None:
        """Queue error answers for POST /coding/v1/files, consumed in order (then uploads succeed again).

        The body is read to its end first, so the client sees the answer rather than a broken pipe; a
        `drop_connection` fault closes the socket after the body arrived, without any response.
        """
        with self._lock:
            self._upload_script.extend(steps)

    def forget_file(self, file_id: str) -> None:
        """Make an uploaded id (`fakefile…` or `ms://fakefile…`) unknown, as if the service had dropped it."""
        file_id = file_id.removeprefix(MEDIA_SCHEME)
        with self._lock:
            if self.files.pop(file_id, None) is None:
                raise KeyError(f"fake Kimi never handed out file id {file_id!r}")

    def messages_requests(self) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.method == "POST" and r.path.endswith("/v1/messages")]

    def count(self, path_suffix: str, **form_or_json_fields: Any) -> int:
        """How many requests hit a path ending in `path_suffix` with these body fields (form or JSON)."""
        return sum(r.matches(path_suffix, form_or_json_fields) for r in list(self.requests))

    def reset_cache(self) -> None:
        self._cache.reset()

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("FakeKimi is already started")
        self._server = LoopbackServer(self._asgi, port=self._wanted_port)
        self._server.start()
        self._port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- HTTP -------------------------------------------------------------------------------------------

    def _build_app(self) -> ASGIApp:
        routes = [
            Route("/coding/v1/messages", self._messages, methods=["POST"]),
            Route(_FILES_PATH, self._upload, methods=["POST"]),
            Route("/coding/v1/models", self._list_models, methods=["GET"]),
            Route("/coding/v1/usages", self._get_usages, methods=["GET"]),
            *self.oauth.routes(),
        ]
        return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record every request (body read up front, except an upload's), then hand it to the routes."""
        if scope["type"] != "http":
            return await self._app(scope, receive, send)
        received_at = time.monotonic()
        headers = header_dict(scope["headers"])
        if scope["method"] == "POST" and scope["path"] == _FILES_PATH:
            # Streamed by the route (fake_files.py), which counts record.body_size as the bytes arrive.
            record = RecordedRequest(scope["method"], scope["path"], headers, b"", received_at)
            with self._lock:
                self.requests.append(record)
            scope[_EXCHANGE] = Exchange(record, transport_of(send))
            return await self._app(scope, receive, _recording(send, record))
        body, more = await _read_body(receive)
        record = RecordedRequest(scope["method"], scope["path"], headers, body, received_at, body_size=len(body))
        with self._lock:
            self.requests.append(record)
        scope[_EXCHANGE] = Exchange(record, transport_of(send))
        if not (record.method == "POST" and record.path.endswith("/v1/messages")):
            return await self._app(scope, _replay(body, more, receive), _recording(send, record))
        done = self._open_message()
        try:
            await self._app(scope, _replay(body, more, receive), _recording(send, record, on_complete=done))
        finally:
            done()

    async def _messages(self, request: Request) -> Response | ReplyAnswer | DroppedConnection:
        exchange: Exchange = request.scope[_EXCHANGE]
        if (size := exchange.record.body_size) > self.messages_body_limit:
            message = f"request body is {size} bytes, over the limit of {self.messages_body_limit} bytes"
            return _error(413, "request_too_large", message)
        if (denied := self._deny(request)) is not None:
            return denied
        try:
            payload = json.loads(exchange.record.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _error(400, "invalid_request_error", "request body must be a JSON object")
        if (unknown := self._unknown_media(payload)) is not None:
            return _error(400, "invalid_request_error", f"file not found: {unknown}")
        step = self._next_step() or default_reply(payload)
        if isinstance(step, Fault):
            if step.drop_connection:
                return DroppedConnection(exchange)
            return _fault_response(step)
        return ReplyAnswer(
            step,
            stream=bool(payload.get("stream")),
            message_id=f"msg_fake_{next(self._ids):06d}",
            model=str(payload.get("model") or DEFAULT_MODEL),
            usage=self._cache.use(payload),
            exchange=exchange,
        )

    async def _upload(self, request: Request) -> Response | DroppedConnection | ASGIApp:
        """POST /v1/files (docs/kimi-api.md §7): auth, then the body streamed to its end, then the answer."""
        exchange: Exchange = request.scope[_EXCHANGE]
        denied = self._deny(request)
        upload, problem = await receive_upload(request, exchange.record)
        with self._lock:
            self.uploads.append(upload)
        if not upload.complete:
            return _no_answer  # the client left before the end of its body: nothing to answer
        if denied is not None:
            answer: Response | DroppedConnection = denied
        elif problem is not None:
            answer = _error(400, "invalid_request_error", problem)
        elif (step := self._next_upload_step()) is not None:
            answer = DroppedConnection(exchange) if step.drop_connection else _fault_response(step)
        else:
            return self._accept(upload)
        upload.status = getattr(answer, "status_code", None)
        return answer

    def _accept(self, upload: RecordedUpload) -> Response:
        with self._lock:
            upload.file_id = f"fakefile{next(self._file_ids):06d}"
            self.files[upload.file_id] = upload
        upload.created_at = int(time.time())
        upload.status = 200
        return JSONResponse(file_object(upload))

    def _unknown_media(self, payload: dict[str, Any]) -> str | None:
        """The first `ms://<id>` media reference in the messages that names no known file, if any."""
        with self._lock:
            known = set(self.files)
        references = media_references(payload.get("messages"))
        return next((url for url in references if url.removeprefix(MEDIA_SCHEME) not in known), None)

    async def _list_models(self, request: Request) -> Response | DelayedAnswer:
        answer = self._deny(request) or JSONResponse({"data": self.models})
        if not self.models_delay:
            return answer
        return DelayedAnswer(answer, self.models_delay, request.scope[_EXCHANGE].record)

    async def _get_usages(self, request: Request) -> Response:
        return self._deny(request) or JSONResponse(self.usages)

    def _deny(self, request: Request) -> Response | None:
        """docs/kimi-api.md §4: only `Authorization: Bearer` authenticates; an x-api-key alone gets 401."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _error(401, "authentication_error", "invalid x-api-key")
        if token in self.api_keys or self.oauth.is_valid_access_token(token):
            return None
        return _error(401, "authentication_error", "invalid token")

    def _open_message(self) -> Callable[[], None]:
        """Count one open /v1/messages request; the returned function closes it (once, however often called)."""
        with self._lock:
            self.messages_in_flight += 1
            self.max_messages_in_flight = max(self.max_messages_in_flight, self.messages_in_flight)
        closed = False

        def close() -> None:
            nonlocal closed
            with self._lock:
                if not closed:
                    closed = True
                    self.messages_in_flight -= 1

        return close

    def _next_step(self) -> Reply | Fault | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _next_upload_step(self) -> Fault | None:
        with self._lock:
            return self._upload_script.popleft() if self._upload_script else None


def _error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error_body(error_type, message), status_code=status, headers=headers)


async def _no_answer(scope: Scope, receive: Receive, send: Send) -> None:
    return None


def _fault_response(fault: Fault) -> Response:
    if fault.body is not None:
        return Response(fault.body, status_code=fault.status, headers=fault.response_headers())
    return _error(fault.status, fault.error_type, fault.message, fault.response_headers())


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths (and wrong methods) answer 404 in the service's JSON error shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return _error(404, "not_found_error", f"{request.method} {request.url.path} not found")
    return _error(exc.status_code, "api_error", str(exc.detail))


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body; `more` is False if the client went away before sending all of it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body to the routes once, then passes through."""
    pending = [{"type": "http.request", "body": body, "more_body": False}] if complete else []

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _recording(send: Send, record: RecordedRequest, on_complete: Callable[[], None] | None = None) -> Send:
    async def recording_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
        last = message["type"] == "http.response.body" and not message.get("more_body", False)
        if last and on_complete is not None:
            on_complete()  # before the client can see the end and send its next request
        await send(message)
        if last:
            record.completed = True

    return recording_send


def main() -> None:
    """Serve a fake Kimi until interrupted, printing the environment that points kimi-mcp at it."""
    with FakeKimi() as fake:
        print(f"KIMI_CODE_BASE_URL={fake.base_url}", flush=True)
        print(f"KIMI_CODE_OAUTH_HOST={fake.oauth_host}", flush=True)
        print(f"KIMI_API_KEY={DEFAULT_API_KEY}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
