"""Serving MCP over stdio so that every request line gets an answer.

Where the `mcp` SDK (2.3) drops a line: its stdio transport (`mcp/server/stdio.py`, `stdio_server`'s
`stdin_reader`) validates each line with `jsonrpc_message_adapter.validate_json`. pydantic's JSON parser refuses
a lone surrogate escape such as `"\\ud800"` ("lone leading surrogate in hex escape" / "unexpected end of hex
escape"), so the line becomes a `ValidationError` put on the read stream in place of a message. The dispatcher
(`mcp/shared/jsonrpc_dispatcher.py`, `JSONRPCDispatcher._dispatch`) hands such items to `on_stream_exception`,
which only the client side sets; on a server it logs them at DEBUG and drops them. The request's id goes with
the line, so nothing is ever answered and the host waits for its timeout. Any other line that is not a JSON-RPC
message (not JSON, or JSON of the wrong shape) is dropped the same way.

The guard sits between that transport and the server. From a dropped line's validation error it takes the line
back (pydantic keeps the whole input), parses it with Python's `json`, which accepts lone surrogates, replaces
them with U+FFFD (server/surrogates.py says why) and passes the repaired message on. What still is no message
gets a JSON-RPC error: -32700 (id null) for text that is not JSON, -32600 for JSON that is not a valid request,
with its id when it has one. Upstream, the transport or the dispatcher should answer these itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable
from typing import Any, Protocol

import anyio
from anyio.abc import ObjectSendStream
from mcp.server import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError, jsonrpc_message_adapter
from pydantic import ValidationError

from kimi_mcp.server.surrogates import scrubbed

logger = logging.getLogger(__name__)
Item = SessionMessage | Exception


class Replies(Protocol):
    """The transport's write stream (the SDK's is a context-carrying memory stream)."""

    async def send(self, item: SessionMessage, /) -> None: ...


async def serve_stdio(server: MCPServer[Any]) -> None:
    """What `MCPServer.run("stdio")` does, with the guard between the SDK's stdio transport and the server."""
    lowlevel = server._lowlevel_server  # private, but MCPServer.run_stdio_async uses it just so
    async with stdio_server() as (read_stream, write_stream):
        guarded_send, guarded_receive = anyio.create_memory_object_stream[Item](0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(relay, read_stream, guarded_send, write_stream)
            await lowlevel.run(guarded_receive, write_stream, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()


async def relay(source: AsyncIterable[Item], sink: ObjectSendStream[Item], replies: Replies) -> None:
    """Pass messages from `source` to `sink`; repair or answer each line the transport could not read."""
    async with sink:
        try:
            async for item in source:
                if isinstance(item, Exception):
                    repaired = await repair(item, replies)
                    if repaired is None:
                        continue
                    item = repaired
                await sink.send(item)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the server has stopped reading: nothing left to relay


async def repair(error: Exception, replies: Replies) -> Item | None:
    """The message `error` stood for, repaired; else None once the sender has had its JSON-RPC error."""
    found, value = _rejected_input(error)
    if not found:
        return error  # not a rejected line: the server logs and drops it, as before
    if isinstance(value, str):
        if not value.strip():
            return None  # a blank line carries no request
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            await _answer(replies, None, PARSE_ERROR, "Parse error: the line is not valid JSON")
            return None
    fixed, count = scrubbed(value)
    if count:
        try:
            message = jsonrpc_message_adapter.validate_json(json.dumps(fixed), by_name=False)
        except ValidationError:
            pass
        else:
            logger.warning("replaced lone UTF-16 surrogates with U+FFFD in %d string(s) of a message", count)
            return SessionMessage(message)
    await _refuse(replies, fixed)
    return None


def _rejected_input(error: Exception) -> tuple[bool, Any]:
    """The line (str) or parsed message (dict, list...) that `jsonrpc_message_adapter` refused.

    An error located at the message itself (invalid JSON, wrong type) or at a missing top-level field carries
    the whole message as its input.
    """
    if not isinstance(error, ValidationError):
        return False, None
    for detail in error.errors():
        loc = detail["loc"]
        if detail["type"] == "json_invalid" or len(loc) == 1 or (detail["type"] == "missing" and len(loc) == 2):
            return True, detail["input"]
    return False, None


async def _refuse(replies: Replies, value: Any) -> None:
    """-32600 for a request of the wrong shape; notifications and responses get no answer (JSON-RPC 2.0 §5)."""
    if not isinstance(value, dict):
        await _answer(replies, None, INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 message")
        return
    request_id = value.get("id")
    valid_id = isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool))
    if "method" in value and valid_id:
        await _answer(replies, request_id, INVALID_REQUEST, "Invalid request: not a valid JSON-RPC 2.0 request")
    else:
        logger.warning("dropped an invalid JSON-RPC notification or response (fields: %s)", sorted(value)[:10])


async def _answer(replies: Replies, request_id: str | int | None, code: int, message: str) -> None:
    logger.warning("answered an unreadable request line: %s", message)
    error = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))
    await replies.send(SessionMessage(error))
