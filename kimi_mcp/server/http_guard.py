"""The HTTP server's own checks around the SDK's streamable HTTP app: the bearer token, the body cap's answer, the
graceful drain, the lifespan's start-up error.

The token goes through the SDK's auth hooks (`token_verifier=` with `AuthSettings`): its `RequireAuthMiddleware`
answers 401 with `WWW-Authenticate: Bearer` before the MCP endpoint reads anything. The SDK also enforces the body
cap (`max_request_body_size`: Content-Length first, then the chunks as they arrive), but answers with a bare
"Request body too large"; `Gate` gives that 413 a JSON-RPC error body that says which setting to change.

An error answered before the body was read (413, 401, 503, …) must still reach a client that is busy sending a
large body: closing a socket with unread data makes the kernel send a reset, which throws away the answer the client
had not read yet (it saw `ReadError` instead of the 413 for a 5 MB body). So `Gate` reads the rest of such a body
and drops it, within bounds, before the answer's last byte goes out ("lingering close", as nginx and Apache do).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import anyio
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import CallToolResult, TextContent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kimi_mcp.errors import NotTakingRequests, RequestBodyTooLarge, ServerShuttingDown

CLIENT_ID = "kimi-mcp-http"
# How long and how much of an unwanted request body `Gate` reads before an error answer; past either, the client
# may see a reset instead of the answer, which is all an endless or very slow body deserves.
LINGER_SECONDS = 30.0
LINGER_MAX_BYTES = 1 << 30


class StaticTokenVerifier:
    """Accepts exactly one bearer token, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")

    async def verify_token(self, token: str) -> AccessToken | None:
        # Starlette decodes headers as latin-1; surrogatepass keeps any odd input comparable instead of raising.
        if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self._token):
            return AccessToken(token=token, client_id=CLIENT_ID, scopes=[])
        return None


class CallGuard:
    """MCPServer middleware: tool calls in flight, so a shutdown past its grace period can stop them readably."""

    def __init__(self, grace_seconds: float) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._waited: float | None = grace_seconds
        self._idle: anyio.Event | None = None

    @property
    def in_flight(self) -> int:
        return len(self._scopes)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                return await call_next(ctx)
            finally:
                self._scopes.discard(scope)
                if not self._scopes and self._idle is not None:
                    self._idle.set()
        # Only our own cancel() lands here; a client's cancellation still propagates as before.
        message = ServerShuttingDown(self._waited).message
        # "Error:" like every kimi-mcp error: Codex does not show its model the isError flag (docs/hosts.md).
        return CallToolResult(content=[TextContent(type="text", text=f"Error: {message}")], is_error=True)

    async def wait_idle(self) -> None:
        """Return once no tool call is in flight (at once if none is)."""
        while self._scopes:
            self._idle = anyio.Event()
            await self._idle.wait()

    def stop_all(self, *, at_once: bool = False) -> None:
        """Stop every call in flight: the grace period is over, or (`at_once`) a second signal came."""
        if at_once:
            self._waited = None
        for scope in list(self._scopes):
            scope.cancel()


class Gate:
    """Outermost ASGI layer: refuses new requests while draining, ends idle SSE streams, words the 413, lets an
    error answer reach a client still sending its body, and keeps the lifespan's start-up error."""

    def __init__(self, app: ASGIApp, mcp_path: str, max_body_bytes: int) -> None:
        self._app = app
        self._mcp_path = mcp_path
        self._max_body_bytes = max_body_bytes
        self._streams: set[anyio.CancelScope] = set()
        self.draining = False
        # Why the app's lifespan failed to start (the store, the session manager, …), for the start-up message.
        self.startup_error: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        body = _RequestBody(receive)
        receive, send = body.receive, _drained_before_errors(send, body)
        if self.draining:
            await _send_json(send, 503, _rpc_error(-32000, NotTakingRequests().message))
            return
        send = self._worded_413(send)
        if scope["method"] != "GET" or scope["path"] != self._mcp_path:
            await self._app(scope, receive, send)
            return
        # A GET on the endpoint is the standalone SSE stream: it carries no call and stays open for as long as the
        # client keeps it, so a shutdown ends it at once instead of waiting out the grace period for it.
        with anyio.CancelScope() as stream_scope:
            self._streams.add(stream_scope)
            try:
                await self._app(scope, receive, send)
            finally:
                self._streams.discard(stream_scope)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def quiet_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "lifespan.startup.complete":
                started = True
            if message["type"] == "lifespan.startup.failed":
                # Starlette puts the whole traceback here and uvicorn logs it as an error; the server's own
                # start-up message says what failed instead (the traceback is in the debug log).
                message = {"type": message["type"], "message": ""}
            await send(message)

        try:
            await self._app(scope, receive, quiet_send)
        except BaseException as exc:
            if not started:
                self.startup_error = exc
            raise

    def drain(self) -> None:
        """Stop taking requests and end the standalone SSE streams; calls in flight go on."""
        self.draining = True
        for stream_scope in list(self._streams):
            stream_scope.cancel()

    def _worded_413(self, send: Send) -> Send:
        replacing = False

        async def wrapped(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] == 413:
                replacing = True
                return
            if replacing:
                if not message.get("more_body", False):
                    body = _rpc_error(-32600, RequestBodyTooLarge(self._max_body_bytes).message)
                    await _send_json(send, 413, body, close=True)
                return
            await send(message)

        return wrapped


class _RequestBody:
    """The request's `receive`, noting whether the body was read to its end, and able to read the rest."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.complete = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.complete = True  # the last chunk, or the client left
        return message

    async def drain(self) -> None:
        """Read and drop what is left of the body, within `LINGER_SECONDS` and `LINGER_MAX_BYTES`."""
        dropped = 0
        with anyio.move_on_after(LINGER_SECONDS):
            while not self.complete and dropped <= LINGER_MAX_BYTES:
                dropped += len((await self.receive()).get("body", b""))


def _drained_before_errors(send: Send, body: _RequestBody) -> Send:
    """`send` that, for an error answer given before the body was read, reads the body before the answer's end."""
    status = 0

    async def wrapped(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            if status >= 400 and not body.complete:
                await body.drain()
        await send(message)

    return wrapped


def _rpc_error(code: int, message: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()


async def _send_json(send: Send, status: int, body: bytes, *, close: bool = True) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
