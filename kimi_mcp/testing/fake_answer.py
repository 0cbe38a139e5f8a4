"""ASGI answers of the fake's /v1/messages: scripted replies, streams, cuts and dropped connections.

They work below Starlette's `Response` because a fault injector must do what a well-behaved response cannot:
close the socket mid-stream or without any response, and notice at once when the client goes away.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from kimi_mcp.testing.fake_record import RecordedRequest
from kimi_mcp.testing.fake_script import Reply, Usage, message_json, sse_frame, stream_events

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
    """Closes the socket without any HTTP response (a network fault, docs/kimi-api.md §9)."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _cut(self._exchange, receive)


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
    """A scripted `Reply`, as JSON or as an SSE stream, watching for the client to disconnect meanwhile."""

    def __init__(self, reply: Reply, *, stream: bool, message_id: str, model: str, usage: Usage, exchange: Exchange):
        self._reply = reply
        self._stream = stream
        self._shape: dict[str, Any] = {"message_id": message_id, "model": model, "usage": usage}
        self._exchange = exchange
        self._cut_by_us = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch_disconnect, receive, group.cancel_scope)
            if self._stream:
                await self._send_stream(send, receive)
            else:
                await self._send_json(send, receive)
            group.cancel_scope.cancel()

    async def _send_stream(self, send: Send, receive: Receive) -> None:
        events = stream_events(self._reply, **self._shape)
        await _start(send, 200, "text/event-stream; charset=utf-8")
        for number, event in enumerate(events):
            if number == self._reply.cut_after_events:
                return await self._cut(receive)
            if number and self._reply.delay:
                await anyio.sleep(self._reply.delay)
            await send({"type": "http.response.body", "body": sse_frame(event), "more_body": True})
        if self._reply.cut_after_events is not None and self._reply.cut_after_events >= len(events):
            return await self._cut(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_json(self, send: Send, receive: Receive) -> None:
        body = json.dumps(message_json(self._reply, **self._shape), ensure_ascii=False).encode()
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
        await _cut(self._exchange, receive)

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


async def _cut(exchange: Exchange, receive: Receive) -> None:
    """Close the socket abruptly, then wait until the server has noticed, so it writes nothing more."""
    if exchange.transport is None:
        raise RuntimeError("fake Kimi cannot cut connections outside uvicorn")
    exchange.transport.close()
    with anyio.move_on_after(_CLOSE_GRACE):
        while (await receive())["type"] != "http.disconnect":
            pass
