"""The MCP resources: the login state and the conversations (full transcripts, untruncated replies)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.shared.exceptions import MCPError

from kimi_mcp import errors
from kimi_mcp.server.login_prompt import login_resource_state
from kimi_mcp.server.output import CONVERSATIONS_URI, render_conversation_list, render_transcript
from kimi_mcp.server.state import AppState
from kimi_mcp.store import Conversation

_RECENT_LIMIT = 50
ECHO_MAX_CHARS = 64
_TURN_NUMBER = re.compile(r"[0-9]{1,9}")
_UNKNOWN = "Unknown resource: "  # how the SDK's resource manager words a URI nothing matches


def _state(ctx: Context) -> AppState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


async def login(state: AppState) -> str:
    """Login state as JSON; reading it while logged out starts a device login and shows its URL and code."""
    return json.dumps(await login_resource_state(state), indent=2)


async def conversations(state: AppState) -> str:
    """Recent conversations, most recent first, as JSON."""
    return render_conversation_list(await state.store.recent(_RECENT_LIMIT))


async def _load(ctx: Context, conversation_id: str) -> Conversation:
    try:
        return await _state(ctx).store.load(conversation_id)
    except errors.KimiMcpError as exc:
        raise ResourceError(exc.message) from None


async def conversation(conversation_id: str, ctx: Context) -> str:
    """The whole transcript as Markdown."""
    return render_transcript(await _load(ctx, conversation_id))


async def conversation_turn(conversation_id: str, turn: str, ctx: Context) -> str:
    """One turn's full reply text, exactly as Kimi sent it."""
    loaded = await _load(ctx, conversation_id)
    # ASCII digits only: str.isdigit() also passes "١" (Arabic-Indic) and "²", and int() of 5,000 digits raises.
    index = int(turn) if _TURN_NUMBER.fullmatch(turn) else 0
    if not 1 <= index <= len(loaded.turns):
        raise ResourceError(
            f"Conversation {conversation_id} has turns 1 to {len(loaded.turns)}; no turn {_cut(turn)!r}."
        )
    return loaded.turns[index - 1].assistant_text


def _cut(text: str) -> str:
    """Text a caller sent, echoed in an error: bounded, whatever was sent."""
    return text if len(text) <= ECHO_MAX_CHARS else text[:ECHO_MAX_CHARS] + "…"


class UnknownUriCut:
    """A `ServerMiddleware`: the SDK's "Unknown resource: <uri>" echoes the whole URI, however long; cut it."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        try:
            return await call_next(ctx)
        except MCPError as exc:
            if ctx.method != "resources/read" or not exc.message.startswith(_UNKNOWN):
                raise
            uri = exc.data.get("uri") if isinstance(exc.data, dict) else None
            uri = _cut(uri if isinstance(uri, str) else exc.message.removeprefix(_UNKNOWN))
            message = f"{_UNKNOWN}{uri}. kimi-mcp serves kimi://login and kimi://conversations (with ids from there)."
            raise MCPError(code=exc.code, message=message, data={"uri": uri}) from None


def register(server: MCPServer[AppState], current_state: Callable[[], AppState]) -> None:
    """Static resources get no Context in mcp 2.x, so they reach the shared state through `current_state`."""
    server.middleware.append(UnknownUriCut())

    async def read_login() -> str:
        try:
            return await login(current_state())
        except errors.KimiMcpError as exc:
            raise ResourceError(exc.message) from None

    async def read_conversations() -> str:
        try:
            return await conversations(current_state())
        except errors.KimiMcpError as exc:
            raise ResourceError(exc.message) from None

    server.resource(
        "kimi://login",
        name="kimi-login",
        title="Kimi login",
        description="Login state. Reading it while logged out starts a device login and returns the URL and code.",
        mime_type="application/json",
    )(read_login)
    server.resource(
        CONVERSATIONS_URI,
        name="kimi-conversations",
        title="Kimi conversations",
        description="Recent kimi_chat conversations (id, first prompt line, updated, turns).",
        mime_type="application/json",
    )(read_conversations)
    server.resource(
        CONVERSATIONS_URI + "/{conversation_id}",
        name="kimi-conversation",
        title="Kimi conversation transcript",
        description="A whole conversation as Markdown, replies untruncated.",
        mime_type="text/markdown",
    )(conversation)
    server.resource(
        CONVERSATIONS_URI + "/{conversation_id}/turns/{turn}",
        name="kimi-conversation-turn",
        title="One Kimi reply",
        description="The full reply text of one turn, exactly as Kimi sent it.",
        mime_type="text/plain",
    )(conversation_turn)
