"""The MCP tools: `kimi_chat` and `kimi_login_status`.

Every failure a user can act on comes back as an `isError` result whose text says what happened and what to
do; nothing a tool raises may crash the server or reach the model as a bare "Error executing tool".
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ResourceLink, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from kimi_mcp import errors
from kimi_mcp.kimi.models import ChatRequest, ChatResult, Message, TextBlock
from kimi_mcp.server.login_prompt import finished_login_meanwhile, login_required_result
from kimi_mcp.server.output import conversation_uri, fit_output
from kimi_mcp.server.progress import ProgressReporter
from kimi_mcp.server.state import AppState
from kimi_mcp.server.status import login_status
from kimi_mcp.store import Turn

logger = logging.getLogger(__name__)

CHAT_DESCRIPTION = (
    "Ask Kimi (Moonshot's kimi-for-coding, 262k-token context) and get its reply. Kimi sees ONLY what you put "
    "in this call (prompt, system) plus earlier turns of the same conversation_id — not your files, tools or "
    "chat. Good for a second opinion or review, reading long text you paste in, or a parallel sub-task. "
    "Returns the reply text and a conversation_id; pass it back to continue the thread (cheap: Kimi caches the "
    "shared prefix). Long replies are cut to max_output_chars; the full text stays at kimi://conversations/{id}."
)
STATUS_DESCRIPTION = (
    "Show how kimi-mcp is signed in to Kimi (API key, account login or none), the base URL and protocol, and "
    "when logged in the 5-hour and weekly quota. Never shows a token."
)


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int


class ChatOutput(BaseModel):
    text: str = Field(description="Kimi's reply (possibly truncated; see `truncated`).")
    conversation_id: str = Field(description="Pass back as conversation_id to continue this conversation.")
    turn: int = Field(description="1-based number of this turn in the conversation.")
    model: str
    stop_reason: str
    usage: UsageOut
    cache_hit_ratio: float = Field(description="Share of this turn's prompt tokens served from Kimi's cache.")
    truncated: bool = Field(description="True when `text` was cut to max_output_chars.")
    full_text_uri: str = Field(description="Resource with the whole transcript, reply included.")
    thinking: str | None = Field(None, description="Kimi's thinking, only with include_thinking=true.")
    note: str | None = None


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


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
        bool, Field(description="Return Kimi's thinking in the structured result (never in the text).")
    ] = False,
    max_output_tokens: Annotated[
        int | None, Field(ge=1, le=262_144, description="Cap on reply tokens; default: what the context leaves.")
    ] = None,
    max_output_chars: Annotated[
        int | None, Field(ge=200, description="Cut the returned text at this many characters; default 60,000.")
    ] = None,
) -> Annotated[CallToolResult, ChatOutput]:
    state = _state(ctx)

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
            max_output_chars=max_output_chars or state.settings.max_output_chars,
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
    thinking: Literal["off", "low", "high", "max"],
    include_thinking: bool,
    max_output_tokens: int | None,
    max_output_chars: int,
) -> CallToolResult:
    history: list[Message] = []
    model, wire = state.settings.model, state.settings.protocol
    if conversation_id:
        conversation = await state.store.load(conversation_id)
        history, system, model = conversation.messages(), conversation.system, conversation.model
    else:
        conversation_id = state.store.new_id()
    user_content = [TextBlock(text=prompt)]
    request = ChatRequest(
        model=model,
        system=system,
        messages=[*history, Message(role="user", content=user_content)],
        thinking=thinking,
        max_output_tokens=max_output_tokens,
        cache_key=conversation_id if state.settings.cache_enabled else None,
    )
    reporter = ProgressReporter(ctx)
    result = await reporter.run(lambda: state.kimi.chat(request, on_progress=reporter.update))

    turn = Turn(
        user=user_content,
        assistant_text=result.text,
        thinking=result.thinking,
        stop_reason=result.stop_reason,
        usage=result.usage,
    )
    note = result.note
    try:
        turn_number = await state.store.append_turn(conversation_id, model=model, wire=wire, system=system, turn=turn)
    except Exception as exc:  # Kimi already answered (and the quota is spent): return the reply regardless
        logger.exception("could not store the turn of conversation %s", conversation_id)
        turn_number = len(history) // 2 + 1
        unsaved = errors.TurnNotSaved(type(exc).__name__).message
        note = f"{note} {unsaved}" if note else unsaved
    return _tool_result(result, conversation_id, turn_number, note, max_output_chars, include_thinking)


def _tool_result(
    result: ChatResult,
    conversation_id: str,
    turn_number: int,
    note: str | None,
    max_output_chars: int,
    include_thinking: bool,
) -> CallToolResult:
    """The reply as the host shows it: text cut to size with a footer line, and the typed `ChatOutput`."""
    uri = conversation_uri(conversation_id)
    shown, truncated = fit_output(result.text, max_output_chars)
    output = ChatOutput(
        text=shown,
        conversation_id=conversation_id,
        turn=turn_number,
        model=result.model,
        stop_reason=result.stop_reason,
        usage=UsageOut(**result.usage.model_dump()),
        cache_hit_ratio=result.usage.cache_hit_ratio,
        truncated=truncated,
        full_text_uri=uri,
        thinking=result.thinking if include_thinking else None,
        note=note,
    )
    footer = f"\n\n[conversation_id: {conversation_id} · turn {turn_number}"
    if truncated:
        footer += f" · truncated to {len(shown):,} of {len(result.text):,} chars; full reply at {uri}"
    footer += "]"
    body = shown or (f"({result.note})" if result.note else "(empty reply)")
    if note and note != result.note:
        footer += f"\n[{note}]"
    content: list[Any] = [TextContent(type="text", text=body + footer)]
    if truncated:
        content.append(
            ResourceLink(
                type="resource_link",
                uri=uri,
                name=f"conversation {conversation_id}",
                description="Full transcript with the untruncated reply",
                mime_type="text/markdown",
            )
        )
    return CallToolResult(content=content, structured_content=output.model_dump(mode="json"))


async def kimi_login_status(ctx: Context) -> dict[str, Any]:
    """Login state, base URL, protocol and quota; never a token."""
    try:
        return await login_status(_state(ctx))
    except errors.KimiMcpError as exc:
        raise ToolError(exc.message) from None
    except Exception as exc:
        logger.exception("kimi_login_status failed unexpectedly")
        raise ToolError(errors.InternalError(type(exc).__name__).message) from None


def register(server: MCPServer[AppState]) -> None:
    server.tool(
        name="kimi_chat",
        title="Ask Kimi",
        description=CHAT_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True, destructive_hint=False),
    )(kimi_chat)
    server.tool(
        name="kimi_login_status",
        title="Kimi login status",
        description=STATUS_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True, idempotent_hint=True),
    )(kimi_login_status)
