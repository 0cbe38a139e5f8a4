"""`kimi-mcp serve --transport http`: the MCP server over streamable HTTP, under uvicorn.

One app, one lifespan: the SDK's `StreamableHTTPSessionManager.run()` enters the server's lifespan once for the
whole app, so every session shares one `AppState` (one Kimi client and connection pool, one store, one login
manager) and the per-credential concurrency limit and per-conversation ordering hold across sessions.
Responses are SSE (`json_response=False`) so progress notifications stream while a call runs.

Layers, outside in: `Gate` (drain, 413 wording) → Starlette (`/healthz`, unauthenticated) → the SDK's bearer auth
(401) → the SDK's body cap (413) → its Host/Origin check (421/403) → the session manager.

Shutdown (SIGTERM/SIGINT): answer new requests 503 and end the standalone SSE streams at once, let tool calls in
flight finish for `KIMI_MCP_SHUTDOWN_GRACE_SECONDS`, then stop them with a readable error result; a second signal
stops them at once. The port stays open while calls are in flight, so a client is told why (503 with a readable
error) rather than refused a connection; it closes once they are done. The store is closed by the lifespan's exit
after the last response went out.

A start that fails after the port was bound (the lifespan raised) ends the process with status 1 and one line that
says why, never with 0 as if it had served and stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType

import uvicorn
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kimi_mcp import logs
from kimi_mcp._version import __version__
from kimi_mcp.errors import ServerStartFailed
from kimi_mcp.server.http_guard import CallGuard, Gate, StaticTokenVerifier
from kimi_mcp.settings import Settings

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
# uvicorn's own limit is only a backstop: our drain stops the calls at the grace period and the responses then go out.
BACKSTOP_SECONDS = 10.0


@dataclass(frozen=True)
class HttpOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/mcp"
    stateless: bool = False
    token: str | None = None
    allowed_hosts: tuple[str, ...] = field(default=())
    allowed_origins: tuple[str, ...] = field(default=())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(options: HttpOptions) -> TransportSecuritySettings:
    """DNS-rebinding protection: on for loopback, and wherever the Host values to accept are named."""
    loopback = is_loopback(options.host)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=loopback or bool(options.allowed_hosts),
        allowed_hosts=[*LOOPBACK_HOSTS, *options.allowed_hosts],
        allowed_origins=[*LOOPBACK_ORIGINS, *options.allowed_origins],
    )


def url_of(host: str, port: int, path: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


async def _healthz(_: Request) -> PlainTextResponse:
    return PlainTextResponse(f"ok kimi-mcp {__version__}")


def build_app(settings: Settings, options: HttpOptions, calls: CallGuard) -> Gate:
    from kimi_mcp.server.app import build_server

    server = build_server(settings, transport="http")
    server.middleware.append(calls)
    verifier = StaticTokenVerifier(options.token) if options.token else None
    # The issuer is never contacted: with a token verifier and no auth server provider, the SDK only checks tokens.
    auth = (
        AuthSettings(issuer_url=url_of(options.host, options.port, ""), resource_server_url=None) if verifier else None
    )
    app = server._lowlevel_server.streamable_http_app(  # MCPServer's own method takes auth only from its constructor
        streamable_http_path=options.path,
        json_response=False,
        stateless_http=options.stateless,
        max_request_body_size=settings.http_max_body_bytes,
        transport_security=transport_security(options),
        host=options.host,
        auth=auth,
        token_verifier=verifier,
        custom_starlette_routes=[Route("/healthz", _healthz, methods=["GET"])],
    )
    return Gate(app, options.path, settings.http_max_body_bytes)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before uvicorn starts so that port 0 gives a port we can print."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return socket.create_server(address[:2], family=family, backlog=2048)


class _Server(uvicorn.Server):
    """uvicorn with our signal handling: a drain with a grace period, and exit status 0 after it."""

    def __init__(self, config: uvicorn.Config, gate: Gate, calls: CallGuard, grace: float, url: str) -> None:
        super().__init__(config)
        self._gate, self._calls, self._grace, self._url = gate, calls, grace, url
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def asked_to_stop(self) -> bool:
        return self._signals > 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await super().startup(sockets)
        except SystemExit:  # uvicorn's answer to a failed lifespan start-up (status 3, after a bare log line)
            raise self.start_failed() from None
        except Exception as exc:  # e.g. the event loop refused our socket: the lifespan has started, end it
            await self.lifespan.shutdown()
            raise self.start_failed(exc) from None
        if self.started:
            print(f"kimi-mcp: serving MCP on {self._url}", file=sys.stderr, flush=True)

    def start_failed(self, exc: BaseException | None = None) -> ServerStartFailed:
        cause = exc or self._gate.startup_error
        if cause is None:
            return ServerStartFailed(self._url, "the application did not start")
        logger.debug("start-up failed", exc_info=cause)
        return ServerStartFailed(self._url, logs.redact(_describe(cause)))

    async def main_loop(self) -> None:
        await super().main_loop()
        if self._gate.draining:
            # Keep listening while calls finish, so new requests get the drain's 503 rather than a refused
            # connection; the grace period's stop (or a second signal) ends the calls if they take too long.
            await self._calls.wait_idle()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's version re-raises the signal after shutdown, which would end the process with -SIGTERM, not 0.
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self._loop is None:
            self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._begin_shutdown)

    def _begin_shutdown(self) -> None:
        self._signals += 1
        if self._signals > 1:
            self._calls.stop_all(at_once=True)
            return
        in_flight = self._calls.in_flight
        print(
            f"kimi-mcp: stopping; {in_flight} call(s) in flight get up to {self._grace:g} s to finish",
            file=sys.stderr,
            flush=True,
        )
        self._gate.drain()
        self.should_exit = True
        assert self._loop is not None
        self._loop.call_later(self._grace, self._calls.stop_all)


def _describe(exc: BaseException) -> str:
    """`Type: message` of the first leaf of an exception group (the lifespan's task groups wrap what failed)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def serve(settings: Settings, options: HttpOptions, sock: socket.socket) -> None:
    """Serve on `sock` (from `bind`) until SIGTERM/SIGINT; returns once every response went out and the store is
    closed. Raises `ServerStartFailed` when it never started serving."""
    calls = CallGuard(settings.shutdown_grace_seconds)
    gate = build_app(settings, options, calls)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        gate,
        lifespan="on",
        log_config=None,  # our logging (kimi_mcp.logs) stays in charge, with its secret redaction
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds + BACKSTOP_SECONDS,
    )
    server = _Server(config, gate, calls, settings.shutdown_grace_seconds, url_of(options.host, port, options.path))
    with sock:
        asyncio.run(server.serve(sockets=[sock]))
    if not server.started and not server.asked_to_stop:
        # Older uvicorn releases end a failed start quietly instead of exiting with status 3.
        raise server.start_failed()
