"""An ASGI app served by uvicorn on 127.0.0.1 from a background thread, quick to start and to stop.

uvicorn polls for exit every 0.1 s and sleeps 0.1 s more while shutting down; a test suite that starts a fresh
fake per test pays that hundreds of times, so this server wakes at once on `stop()` and polls in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

_START_TIMEOUT = 10.0
_GRACE = 1.0  # how long request tasks may take to end after their connections were closed
_POLL = 0.005


class _Server(uvicorn.Server):
    """uvicorn.Server whose main loop waits on an event instead of a 0.1 s tick."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit: asyncio.Event | None = None

    def request_exit(self) -> None:
        """Thread-safe: ask the serving loop to shut down now."""
        self.should_exit = True
        if self._loop is not None and self._exit is not None:
            self._loop.call_soon_threadsafe(self._exit.set)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop, self._exit = asyncio.get_running_loop(), asyncio.Event()
        await super().startup(sockets)

    async def main_loop(self) -> None:
        assert self._exit is not None
        while not self.should_exit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), timeout=1.0)
            await self.on_tick(0)  # keeps the Date header fresh

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            # A stopped fake answers nothing more: in-flight streams are cut, and their answers see the
            # disconnect and end quietly instead of being cancelled after a grace period.
            connection.transport.close()
        state = self.server_state
        if not await _until(lambda: not state.connections and not state.tasks, _GRACE):
            for task in list(state.tasks):
                task.cancel()
            await _until(lambda: not state.tasks, _GRACE)


async def _until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(_POLL)
    return True


class LoopbackServer:
    """Serves `app` on 127.0.0.1 (port 0: any free port) until `stop()`."""

    def __init__(self, app: ASGIApp, *, port: int = 0) -> None:
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on such sockets, and without it every
        # keep-alive response stalls ~40 ms on Nagle's algorithm meeting delayed ACKs.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            http="h11",  # fake_answer reaches the socket through h11's request cycle
            interface="asgi3",  # uvicorn's guess takes a bound method for an ASGI2 app
            lifespan="off",
            log_config=None,  # leave the test process's logging alone
            log_level="warning",
            access_log=False,
            proxy_headers=False,
        )
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=f"fake-kimi-{self.port}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake server on port {self.port} did not start")
            time.sleep(0.002)

    def stop(self) -> None:
        self._server.request_exit()
        self._thread.join(_START_TIMEOUT)
        self._socket.close()
