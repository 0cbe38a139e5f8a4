"""ASGI answers of the fake's chat surfaces: scripted replies, streams, cuts and dropped connections.

They work below Starlette's `Response` because a fault injector must do what a well-behaved response cannot:
close the socket mid-stream or without any response, and notice at once when the client goes away.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import time
from dataclasses import dataclass

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from kimi_mcp.testing.fake_record import RecordedRequest
from kimi_mcp.testing.fake_script import Reply

# After cutting a connection, how long to wait for the server to notice it is gone before giving up.
_CLOSE_GRACE = 2.0


@dataclass
class Exchange:
    """One HTTP exchange: its record, and the raw socket transport (only for fault injection)."""

    record: RecordedRequest
    transport: asyncio.Transport | None


def transport_of(send: Send) -> asyncio.Transport | None:
    """uvicorn's own `send` is a bound method of its request cycle, which holds the connection's transport."""
    return getattr(getattr(send, "__self__", None), "transport", None)


class DroppedConnection:
    """Closes the socket without any HTTP response (a network fault, docs/kimi-api.md §9); with `reset`, by a TCP
    reset (RST) rather than an orderly close."""

    def __init__(self, exchange: Exchange, *, reset: bool = False) -> None:
        self._exchange = exchange
        self._reset = reset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _cut(self._exchange, receive, reset=self._reset)


class DelayedAnswer:
    """`response`, sent after `delay` seconds (math.inf: never); ends quietly if the client leaves first."""

    def __init__(self, response: Response, delay: float, record: RecordedRequest) -> None:
        self._response = response
        self._delay = delay
        self._record = record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        left = False

        async def watch(cancel: anyio.CancelScope) -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            self._record.disconnected_at = time.monotonic()
            cancel.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(watch, group.cancel_scope)
            if math.isinf(self._delay):
                await anyio.sleep_forever()
            await anyio.sleep(self._delay)
            group.cancel_scope.cancel()
        if not left:
            await self._response(scope, receive, send)


class ReplyAnswer:
    """A scripted `Reply` already rendered for its surface: SSE `frames` (a stream) or a JSON `body`, sent while
    watching for the client to disconnect. The Reply's `delay` goes between frames (before the body in JSON
    mode), its `cut_after_events` closes the connection mid-answer (`reset`: by a TCP reset) and its
    `stall_after_events` stops sending mid-answer, leaving the connection open until the client leaves."""

    def __init__(
        self, reply: Reply, *, exchange: Exchange, frames: list[bytes] | None = None, body: bytes | None = None
    ) -> None:
        if (frames is None) == (body is None):
            raise ValueError("a ReplyAnswer is either a stream of frames or one JSON body")
        self._reply = reply
        self._frames = frames
        self._body = body
        self._exchange = exchange
        self._cut_by_us = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch_disconnect, receive, group.cancel_scope)
            if self._frames is not None:
                await self._send_stream(self._frames, send, receive)
            else:
                assert self._body is not None
                await self._send_json(self._body, send, receive)
            group.cancel_scope.cancel()

    async def _send_stream(self, frames: list[bytes], send: Send, receive: Receive) -> None:
        await _start(send, 200, "text/event-stream; charset=utf-8")
        for number, frame in enumerate(frames):
            if number == self._reply.cut_after_events:
                return await self._cut(receive)
            if number == self._reply.stall_after_events:
                await anyio.sleep_forever()  # ended by _watch_disconnect when the client gives up
            if number and self._reply.delay:
                await anyio.sleep(self._reply.delay)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if self._reply.cut_after_events is not None and self._reply.cut_after_events >= len(frames):
            return await self._cut(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_json(self, body: bytes, send: Send, receive: Receive) -> None:
        if self._reply.delay:
            await anyio.sleep(self._reply.delay)
        await _start(send, 200, "application/json", length=len(body))
        if self._reply.cut_after_events is not None:
            # In JSON mode a cut truncates the body half-way: the client sees an incomplete response.
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            return await self._cut(receive)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _cut(self, receive: Receive) -> None:
        self._cut_by_us = True
        await _cut(self._exchange, receive, reset=self._reply.reset)

    async def _watch_disconnect(self, receive: Receive, scope: anyio.CancelScope) -> None:
        """Ends the answer as soon as the client closes the connection; stamps when that was noticed."""
        while (await receive())["type"] != "http.disconnect":
            pass
        record = self._exchange.record
        if not record.completed and not self._cut_by_us:
            record.disconnected_at = time.monotonic()
        scope.cancel()


async def _start(send: Send, status: int, media_type: str, *, length: int | None = None) -> None:
    headers = [(b"content-type", media_type.encode()), (b"cache-control", b"no-cache")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _cut(exchange: Exchange, receive: Receive, *, reset: bool = False) -> None:
    """Close the socket abruptly, then wait until the server has noticed, so it writes nothing more.

    `reset`: SO_LINGER with a zero timeout makes the close send a TCP reset (RST), as a crashed peer or a
    middlebox dropping the connection does, rather than an orderly FIN."""
    if exchange.transport is None:
        raise RuntimeError("fake Kimi cannot cut connections outside uvicorn")
    if reset and (sock := exchange.transport.get_extra_info("socket")) is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        exchange.transport.abort()
    else:
        exchange.transport.close()
    with anyio.move_on_after(_CLOSE_GRACE):
        while (await receive())["type"] != "http.disconnect":
            pass
