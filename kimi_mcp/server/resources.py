"""The MCP resources: the login state and the conversations (full transcripts, untruncated replies)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError

from kimi_mcp import errors
from kimi_mcp.server.login_prompt import login_resource_state
from kimi_mcp.server.output import CONVERSATIONS_URI, render_transcript
from kimi_mcp.server.state import AppState
from kimi_mcp.store import Conversation

_RECENT_LIMIT = 50


def _state(ctx: Context) -> AppState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


async def login(state: AppState) -> str:
    """Login state as JSON; reading it while logged out starts a device login and shows its URL and code."""
    return json.dumps(await login_resource_state(state), indent=2)


async def conversations(state: AppState) -> str:
    """Recent conversations, most recent first, as JSON."""
    summaries = await state.store.recent(_RECENT_LIMIT)
    items = [
        {
            "id": s.id,
            "uri": f"{CONVERSATIONS_URI}/{s.id}",
            "first_prompt_line": s.first_prompt_line,
            "updated_at": datetime.fromtimestamp(s.updated_at, UTC).isoformat(),
            "turns": s.turns,
            "model": s.model,
        }
        for s in summaries
    ]
    return json.dumps({"conversations": items}, indent=2, ensure_ascii=False)


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
    index = int(turn) if turn.isdigit() else 0
    if not 1 <= index <= len(loaded.turns):
        raise ResourceError(f"Conversation {conversation_id} has turns 1 to {len(loaded.turns)}; no turn {turn!r}.")
    return loaded.turns[index - 1].assistant_text


def register(server: MCPServer[AppState], current_state: Callable[[], AppState]) -> None:
    """Static resources get no Context in mcp 2.x, so they reach the shared state through `current_state`."""

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
