"""A fake Kimi Code service on loopback: real HTTP, scriptable, recording, with an emulated prompt cache.

Tests, the demo and the benchmarks point kimi-mcp (and its worker processes) at `FakeKimi.base_url` and
`FakeKimi.oauth_host`. It follows docs/kimi-api.md exactly: both chat surfaces under `/coding` (Anthropic
`/v1/messages`, OpenAI `/v1/chat/completions`, fake_openai.py), Bearer-only auth (§4), content-prefix caching
shared by the two surfaces (§6, fake_cache.py), the Files API (§7, fake_files.py), stream quirks (§8) and errors
(§9). Run it by hand with `python -m kimi_mcp.testing.fake_kimi [--platform]`.

Both chat surfaces share one script (`fake.script(...)`: each step answers whichever surface is called next), one
recording log (`fake.requests`; `messages_requests()`, `chat_completions_requests()`, `chat_requests()`), one
in-flight count and one prompt cache. The OpenAI surface enforces the payload rules of §5 (400 for a `developer`
role, `max_tokens`, `reasoning_effort`, an effort the model does not list), and with `fake.openai_allow_list =
True` refuses every User-Agent outside `fake.allowed_user_agents` with 403 `access_terminated_error` (§2).
`FakeKimi(profile="platform")` plays Moonshot's pay-as-you-go platform instead (see `FakeKimi`).

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
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kimi_mcp.testing import fake_openai
from kimi_mcp.testing.fake_answer import DelayedAnswer, DroppedConnection, Exchange, ReplyAnswer, transport_of
from kimi_mcp.testing.fake_cache import PromptCache, Surface
from kimi_mcp.testing.fake_files import MEDIA_SCHEME, RecordedUpload, file_object, media_references, receive_upload
from kimi_mcp.testing.fake_oauth import FakeOAuth
from kimi_mcp.testing.fake_openai import PLATFORM_MODEL, platform_models
from kimi_mcp.testing.fake_record import RecordedRequest, header_dict
from kimi_mcp.testing.fake_script import (
    Fault,
    Reply,
    default_reply,
    error_body,
    message_json,
    sse_frame,
    stream_events,
    with_invalid_json,
)
from kimi_mcp.testing.fake_server import LoopbackServer

__all__ = [
    "PLATFORM_MODEL",
    "FakeKimi",
    "Fault",
    "Profile",
    "RecordedRequest",
    "RecordedUpload",
    "Reply",
    "platform_models",
]

Profile = Literal["coding", "platform"]
Envelope = Literal["anthropic", "openai"]

DEFAULT_API_KEY = "sk-kimi-test-key"
DEFAULT_MODEL = "kimi-for-coding"
# docs/kimi-api.md §9: a /v1/messages body over this many bytes was refused with 413 (both chat surfaces here).
MESSAGES_BODY_LIMIT = 2_097_152
_CHAT_SUFFIXES = ("/v1/messages", "/v1/chat/completions")
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
    """The fake service. `with FakeKimi() as fake:` serves it on 127.0.0.1 from a background thread.

    `profile="coding"` (the default) is the Kimi Code plan under `/coding`: both chat surfaces, Files, models,
    usages, OAuth. `profile="platform"` is Moonshot's pay-as-you-go platform, whose users set the base URL
    `https://api.moonshot.ai/v1`: everything at the root (`/v1/chat/completions`, `/v1/files`, `/v1/models` with
    `platform_models()`), API keys only (no OAuth), no `/v1/messages`, no `/v1/usages` (both 404), no allow-list,
    errors in the OpenAI envelope everywhere, and a chat naming a model it does not list answers 404.
    `base_url` follows the profile (without `/v1`, as our settings normalise it).
    """

    def __init__(self, *, port: int = 0, profile: Profile = "coding") -> None:
        if profile not in ("coding", "platform"):
            raise ValueError(f"unknown profile {profile!r}: 'coding' or 'platform'")
        self.profile: Profile = profile
        self.oauth = FakeOAuth()
        self.api_keys: set[str] = {DEFAULT_API_KEY}
        # Every request, of every route and both chat surfaces, in arrival order.
        self.requests: list[RecordedRequest] = []
        self.models: list[dict[str, Any]] = default_models() if profile == "coding" else platform_models()
        self.usages: dict[str, Any] = default_usages()
        # docs/kimi-api.md §2: when True, /coding/v1/chat/completions answers 403 access_terminated_error to every
        # client whose User-Agent starts with none of `allowed_user_agents` (no effect on the platform profile).
        self.openai_allow_list = False
        self.allowed_user_agents: tuple[str, ...] = fake_openai.ALLOWED_USER_AGENT_PREFIXES
        # Seconds GET /v1/models waits before answering; math.inf hangs until the client gives up.
        self.models_delay: float = 0.0
        # Chat requests (either surface) open right now, and the most ever open at once (request received until
        # the last byte of its answer was sent): what a client's concurrency limit must keep low.
        self.messages_in_flight = 0
        self.max_messages_in_flight = 0
        self.messages_body_limit = MESSAGES_BODY_LIMIT
        # Every POST /v1/files, refused ones included (see RecordedUpload.status), and the ids it handed out.
        self.uploads: list[RecordedUpload] = []
        self.files: dict[str, RecordedUpload] = {}
        self._prefix = "/coding" if profile == "coding" else ""
        self._files_path = f"{self._prefix}/v1/files"
        # The error envelope of the side APIs (models, usages, files, 404s): the chat surfaces choose their own.
        self._envelope: Envelope = "anthropic" if profile == "coding" else "openai"
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
        """The server's root URL (where the OAuth routes are, on the coding profile)."""
        if self._port is None:
            raise RuntimeError("FakeKimi is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """The API base without `/v1`: `<root>/coding` (coding profile) or `<root>` (platform profile)."""
        return f"{self.oauth_host}{self._prefix}"

    def script(self, *steps: Reply | Fault) -> None:
        """Queue answers for the chat surfaces, consumed in order by whichever of POST /v1/messages and
        POST /v1/chat/completions comes next (then the default reply)."""
        with self._lock:
            self._script.extend(steps)

    def script_upload(self, *steps: Fault) -> None:
        """Queue error answers for POST /v1/files, consumed in order (then uploads succeed again).

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
        """The POST /v1/messages requests (Anthropic surface)."""
        return [r for r in list(self.requests) if r.method == "POST" and r.path.endswith("/v1/messages")]

    def chat_completions_requests(self) -> list[RecordedRequest]:
        """The POST /v1/chat/completions requests (OpenAI surface)."""
        return [r for r in list(self.requests) if r.method == "POST" and r.path.endswith("/v1/chat/completions")]

    def chat_requests(self) -> list[RecordedRequest]:
        """The chat requests of both surfaces, in arrival order."""
        return [r for r in list(self.requests) if r.method == "POST" and r.path.endswith(_CHAT_SUFFIXES)]

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
            Route(f"{self._prefix}/v1/chat/completions", self._chat_completions, methods=["POST"]),
            Route(self._files_path, self._upload, methods=["POST"]),
            Route(f"{self._prefix}/v1/models", self._list_models, methods=["GET"]),
        ]
        if self.profile == "coding":
            routes += [
                Route("/coding/v1/messages", self._messages, methods=["POST"]),
                Route("/coding/v1/usages", self._get_usages, methods=["GET"]),
                *self.oauth.routes(),
            ]
        return Starlette(routes=routes, exception_handlers={HTTPException: self._http_error})

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record every request (body read up front, except an upload's), then hand it to the routes."""
        if scope["type"] != "http":
            return await self._app(scope, receive, send)
        received_at = time.monotonic()
        headers = header_dict(scope["headers"])
        if scope["method"] == "POST" and scope["path"] == self._files_path:
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
        if not (record.method == "POST" and record.path.endswith(_CHAT_SUFFIXES)):
            return await self._app(scope, _replay(body, more, receive), _recording(send, record))
        done = self._open_message()
        try:
            await self._app(scope, _replay(body, more, receive), _recording(send, record, on_complete=done))
        finally:
            done()

    async def _messages(self, request: Request) -> Response | ASGIApp:
        return self._chat(request, "anthropic")

    async def _chat_completions(self, request: Request) -> Response | ASGIApp:
        return self._chat(request, "openai")

    def _chat(self, request: Request, surface: Surface) -> Response | ASGIApp:
        """Either chat surface: refusals that leave the script alone, then the next scripted step."""
        exchange: Exchange = request.scope[_EXCHANGE]
        admitted = self._admit(request, exchange.record, surface)
        if isinstance(admitted, Response):
            return admitted
        step = self._step_for(admitted) or self._next_step() or default_reply(admitted)
        if isinstance(step, Fault):
            return _fault_answer(step, surface, exchange)
        return self._render(step, admitted, surface, exchange)

    def _admit(self, request: Request, record: RecordedRequest, surface: Surface) -> dict[str, Any] | Response:
        """The request's JSON object, or the answer that refuses it, in the service's order: the proxy's size
        cap, authentication, the allow-list (§2), the payload rules (§5), the model, the media references."""
        if (size := record.body_size) > self.messages_body_limit:
            message = f"request body is {size} bytes, over the limit of {self.messages_body_limit} bytes"
            return _error(413, "request_too_large", message, envelope=surface)
        if (denied := self._deny(request, surface)) is not None:
            return denied
        if surface == "openai" and self._refuses_client(request):
            return _error(403, fake_openai.ALLOW_LIST_ERROR_TYPE, fake_openai.ALLOW_LIST_MESSAGE, envelope=surface)
        payload = _parse_json(record.body)
        if (problem := self._payload_problem(payload, surface)) is not None:
            return _error(400, "invalid_request_error", problem, envelope=surface)
        assert isinstance(payload, dict)  # the payload rules refuse anything else
        model = payload.get("model")
        if self.profile == "platform" and model not in {entry.get("id") for entry in self.models}:
            message = f"Not found the model {model} or Permission denied"
            return _error(404, "resource_not_found_error", message, envelope=surface)
        if (unknown := self._unknown_media(payload)) is not None:
            return _error(400, "invalid_request_error", f"file not found: {unknown}", envelope=surface)
        return payload

    def _payload_problem(self, payload: Any, surface: Surface) -> str | None:
        if surface == "anthropic":
            return None if isinstance(payload, dict) else "request body must be a JSON object"
        model = str(payload.get("model") or "") if isinstance(payload, dict) else ""
        return fake_openai.payload_problem(payload, self._efforts(model))

    def _render(self, reply: Reply, payload: dict[str, Any], surface: Surface, exchange: Exchange) -> ReplyAnswer:
        """The reply in the surface's shape, with prompt-side usage from the shared cache (§6)."""
        usage = self._cache.use(payload, surface)
        model = str(payload.get("model") or DEFAULT_MODEL)
        stream = bool(payload.get("stream"))
        number = next(self._ids)
        if surface == "anthropic":
            shape: dict[str, Any] = {"message_id": f"msg_fake_{number:06d}", "model": model, "usage": usage}
            if stream:
                frames = [sse_frame(e) for e in stream_events(reply, **shape)]
                frames = with_invalid_json(reply, frames, "content_block_delta")
                return ReplyAnswer(reply, exchange=exchange, frames=frames)
            return ReplyAnswer(reply, exchange=exchange, body=_json_bytes(message_json(reply, **shape)))
        shape = {"completion_id": f"chatcmpl-fake{number:06d}", "created": int(time.time()), "model": model,
                 "usage": usage}  # fmt: skip
        if stream:
            chunks = fake_openai.completion_chunks(reply, **shape, include_usage=fake_openai.wants_usage(payload))
            frames = with_invalid_json(reply, fake_openai.chunk_frames(chunks), None)
            return ReplyAnswer(reply, exchange=exchange, frames=frames)
        return ReplyAnswer(reply, exchange=exchange, body=_json_bytes(fake_openai.completion_json(reply, **shape)))

    def _refuses_client(self, request: Request) -> bool:
        if not self.openai_allow_list or self.profile != "coding":
            return False
        return not request.headers.get("user-agent", "").startswith(tuple(self.allowed_user_agents))

    def _efforts(self, model: str) -> frozenset[str]:
        """The thinking efforts /v1/models lists for `model` (for a model it does not list: any it lists)."""
        listed = [entry for entry in self.models if entry.get("id") == model] or self.models
        efforts: set[str] = set()
        for entry in listed:
            think = entry.get("think_efforts")
            if isinstance(think, dict) and think.get("support", True):
                efforts.update(think.get("valid_efforts") or [])
        return frozenset(efforts)

    async def _upload(self, request: Request) -> Response | DroppedConnection | ASGIApp:
        """POST /v1/files (docs/kimi-api.md §7): auth, then the body streamed to its end, then the answer."""
        exchange: Exchange = request.scope[_EXCHANGE]
        denied = self._deny(request, self._envelope)
        upload, problem = await receive_upload(request, exchange.record)
        with self._lock:
            self.uploads.append(upload)
        if not upload.complete:
            return _no_answer  # the client left before the end of its body: nothing to answer
        if denied is not None:
            answer: Response | ASGIApp = denied
        elif problem is not None:
            answer = _error(400, "invalid_request_error", problem, envelope=self._envelope)
        elif (step := self._next_upload_step()) is not None:
            answer = _fault_answer(step, self._envelope, exchange)
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
        listing: dict[str, Any] = (
            {"data": self.models} if self.profile == "coding" else {"object": "list", "data": self.models}
        )
        answer = self._deny(request, self._envelope) or JSONResponse(listing)
        if not self.models_delay:
            return answer
        return DelayedAnswer(answer, self.models_delay, request.scope[_EXCHANGE].record)

    async def _get_usages(self, request: Request) -> Response:
        return self._deny(request, self._envelope) or JSONResponse(self.usages)

    def _deny(self, request: Request, envelope: Envelope) -> Response | None:
        """docs/kimi-api.md §4: only `Authorization: Bearer` authenticates; an x-api-key alone gets 401.
        The platform knows API keys only (no OAuth), and answers in its own words."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        bearer = scheme.lower() == "bearer" and bool(token)
        if bearer and token in self.api_keys:
            return None
        if self.profile == "platform":
            return _error(401, "invalid_authentication_error", "Invalid Authentication", envelope=envelope)
        if not bearer:
            return _error(401, "authentication_error", "invalid x-api-key", envelope=envelope)
        if self.oauth.is_valid_access_token(token):
            return None
        return _error(401, "authentication_error", "invalid token", envelope=envelope)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        """Unknown paths (and wrong methods) answer 404 in the service's JSON error shape."""
        assert isinstance(exc, HTTPException)
        if exc.status_code in (404, 405):
            message = f"{request.method} {request.url.path} not found"
            kind = "not_found_error" if self.profile == "coding" else "resource_not_found_error"
            return _error(404, kind, message, envelope=self._envelope)
        return _error(exc.status_code, "api_error", str(exc.detail), envelope=self._envelope)

    def _open_message(self) -> Callable[[], None]:
        """Count one open chat request; the returned function closes it (once, however often called)."""
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

    def _step_for(self, body: dict[str, Any]) -> Reply | Fault | None:
        """A step chosen from the request itself, before the script: for fakes that answer by content (the soak
        benchmark's faults per call, the crash benchmark's slow replies). None: the script decides."""
        return None

    def _next_step(self) -> Reply | Fault | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _next_upload_step(self) -> Fault | None:
        with self._lock:
            return self._upload_script.popleft() if self._upload_script else None


def _error(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None, *, envelope: Envelope
) -> Response:
    body = error_body(error_type, message) if envelope == "anthropic" else fake_openai.error_body(error_type, message)
    return JSONResponse(body, status_code=status, headers=headers)


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


async def _no_answer(scope: Scope, receive: Receive, send: Send) -> None:
    return None


def _fault_answer(fault: Fault, envelope: Envelope, exchange: Exchange) -> Response | ASGIApp:
    """A scripted fault: a dropped or reset connection, a request never answered, or an error answer."""
    if fault.drop_connection or fault.reset:
        return DroppedConnection(exchange, reset=fault.reset)
    if fault.hang:
        return DelayedAnswer(Response(status_code=204), math.inf, exchange.record)
    return _fault_response(fault, envelope)


def _fault_response(fault: Fault, envelope: Envelope) -> Response:
    if fault.body is not None:
        return Response(fault.body, status_code=fault.status, headers=fault.response_headers())
    return _error(fault.status, fault.error_type, fault.message, fault.response_headers(), envelope=envelope)


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
    platform = "--platform" in sys.argv[1:]
    with FakeKimi(profile="platform" if platform else "coding") as fake:
        if platform:
            # As a platform user writes it (docs: the base URL with /v1, which our settings normalise).
            print(f"KIMI_CODE_BASE_URL={fake.base_url}/v1", flush=True)
            print("KIMI_CODE_PROTOCOL=openai", flush=True)
            print(f"KIMI_MCP_MODEL={PLATFORM_MODEL}", flush=True)
        else:
            print(f"KIMI_CODE_BASE_URL={fake.base_url}", flush=True)
            print(f"KIMI_CODE_OAUTH_HOST={fake.oauth_host}", flush=True)
        print(f"KIMI_API_KEY={DEFAULT_API_KEY}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
