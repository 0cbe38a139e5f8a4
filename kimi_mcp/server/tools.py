"""The MCP tools: `kimi_chat` and `kimi_login_status`.

Every failure a user can act on comes back as an `isError` result whose text says what happened and what to
do; nothing a tool raises may crash the server or reach the model as a bare "Error executing tool".
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BeforeValidator, Field

from kimi_mcp import errors
from kimi_mcp.server import turns
from kimi_mcp.server.arguments import ArgumentCheck
from kimi_mcp.server.chat_result import CLAUDE_CODE_SIZE_HINT_KEY, chat_result, size_hint
from kimi_mcp.server.login_prompt import finished_login_meanwhile, login_required_result
from kimi_mcp.server.progress import ProgressReporter
from kimi_mcp.server.state import AppState
from kimi_mcp.server.status import login_status
from kimi_mcp.settings import Settings, ThinkingLevel

logger = logging.getLogger(__name__)

CHAT_DESCRIPTION = (
    "Ask Kimi (Moonshot's kimi-for-coding, 262k-token context) and get its reply. Kimi sees ONLY what you put "
    "in this call (prompt, system) plus earlier turns of the same conversation_id — not your files, tools or "
    "chat. Good for a second opinion or review, reading long text you paste in, or a parallel sub-task. "
    "Returns the reply as text ending with a line [conversation_id: … · turn N]; pass the id back to continue "
    "the thread (cheap: Kimi caches the shared prefix). Long replies are cut; the footer then names the "
    "kimi://conversations/{id} resource with the full text."
)
STATUS_DESCRIPTION = (
    "Show how kimi-mcp is signed in to Kimi (API key, account login or none), the base URL and protocol, and "
    "when logged in the 5-hour and weekly quota. Never shows a token."
)


def _not_a_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("true/false is not a number")
    return value


# Pydantic's lax int takes JSON `true` as 1; strict would also refuse "5000", which some hosts send for numbers.
NOT_A_BOOL = BeforeValidator(_not_a_bool)


def _error(message: str) -> CallToolResult:
    # "Error:" in the text itself: Codex does not show its model the isError flag (docs/hosts.md).
    return CallToolResult(content=[TextContent(type="text", text=f"Error: {message}")], is_error=True)


def _state(ctx: Context) -> AppState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


async def kimi_chat(
    prompt: Annotated[str, Field(min_length=1, description="What to ask Kimi. Include all context it needs.")],
    ctx: Context,
    system: Annotated[
        str | None, Field(description="System instructions for a new conversation (ignored when continuing).")
    ] = None,
    conversation_id: Annotated[
        str | None, Field(description="Continue this conversation (from an earlier kimi_chat result).")
    ] = None,
    thinking: Annotated[
        Literal["off", "low", "high", "max"] | None,
        Field(description="How hard Kimi thinks before answering; default from settings (off)."),
    ] = None,
    include_thinking: Annotated[
        bool,
        Field(
            description="Also return Kimi's thinking, in the result's _meta for programmatic clients (not the text)."
        ),
    ] = False,
    max_output_tokens: Annotated[
        Annotated[int, Field(ge=1, le=262_144)] | None,
        NOT_A_BOOL,
        Field(description="Cap on reply tokens; default: what the context leaves."),
    ] = None,
    max_output_chars: Annotated[
        Annotated[int, Field(ge=200)] | None,
        NOT_A_BOOL,
        Field(description="Cut the returned text shorter than the server's cap (KIMI_MCP_MAX_OUTPUT_CHARS)."),
    ] = None,
) -> CallToolResult:
    state = _state(ctx)
    cap = state.settings.max_output_chars

    async def chat() -> CallToolResult:
        return await _chat(
            state,
            ctx,
            prompt=prompt,
            system=system,
            conversation_id=conversation_id,
            thinking=thinking or state.settings.thinking,
            include_thinking=include_thinking,
            max_output_tokens=max_output_tokens,
            # Per call the cut can only be lowered: the tool's size hint to hosts follows the server's cap.
            max_output_chars=min(max_output_chars or cap, cap),
        )

    try:
        try:
            return await chat()
        except errors.LoginRequired as exc:
            if not await finished_login_meanwhile(state, ctx):
                return await login_required_result(state, ctx, exc)
        return await chat()
    except errors.LoginRequired as exc:
        return await login_required_result(state, ctx, exc)
    except errors.KimiMcpError as exc:
        logger.info("kimi_chat failed: %s", exc.message)
        return _error(exc.message)
    except Exception as exc:  # the model must read something useful, and the server must keep serving
        logger.exception("kimi_chat failed unexpectedly")
        return _error(errors.InternalError(type(exc).__name__).message)


async def _chat(
    state: AppState,
    ctx: Context,
    *,
    prompt: str,
    system: str | None,
    conversation_id: str | None,
    thinking: ThinkingLevel,
    include_thinking: bool,
    max_output_tokens: int | None,
    max_output_chars: int,
) -> CallToolResult:
    ask = turns.Ask(prompt=prompt, thinking=thinking, max_output_tokens=max_output_tokens)
    # One reporter for the whole call: its heartbeat also covers a wait for the conversation's previous turn.
    reporter = ProgressReporter(ctx)
    if conversation_id:
        outcome = await reporter.run(lambda: turns.proceed(state, reporter, ask, conversation_id))
    else:
        outcome = await reporter.run(lambda: turns.start(state, reporter, ask, system))
    notes = [note for note in (outcome.result.note, outcome.note) if note]
    return chat_result(
        outcome.result,
        conversation_id=outcome.conversation_id,
        turn=outcome.turn,
        note=" ".join(notes) or None,
        max_output_chars=max_output_chars,
        include_thinking=include_thinking,
    )


STATUS_META_KEY = "kimi-mcp/login_status"


async def kimi_login_status(ctx: Context) -> CallToolResult:
    """Login state, base URL, protocol and quota as JSON text (the same document in `_meta`); never a token.

    Text, not structured output, for the same reasons as kimi_chat (server/chat_result.py): every host shows its
    model the text, and a small indented JSON document reads well enough there.
    """
    try:
        report = await login_status(_state(ctx))
    except errors.KimiMcpError as exc:
        return _error(exc.message)
    except Exception as exc:
        logger.exception("kimi_login_status failed unexpectedly")
        return _error(errors.InternalError(type(exc).__name__).message)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], meta={STATUS_META_KEY: report})


def register(server: MCPServer[AppState], settings: Settings) -> None:
    check = ArgumentCheck()  # bad arguments read as field, what is allowed, what was sent (server/arguments.py)
    check.add("kimi_chat", kimi_chat)
    server.middleware.append(check)
    server.tool(
        name="kimi_chat",
        title="Ask Kimi",
        description=CHAT_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True, destructive_hint=False),
        # Claude Code saves results over 50,000 characters to a file unless the tool allows more (chat_result.py).
        meta={CLAUDE_CODE_SIZE_HINT_KEY: size_hint(settings.max_output_chars)},
        structured_output=False,
    )(kimi_chat)
    server.tool(
        name="kimi_login_status",
        title="Kimi login status",
        description=STATUS_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True, idempotent_hint=True),
        structured_output=False,
    )(kimi_login_status)
