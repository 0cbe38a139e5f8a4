"""The MCP tools: `kimi_chat`, `kimi_upload_media` and `kimi_login_status`.

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
from kimi_mcp.kimi.media import LocalMedia, decode_base64, inspect_data
from kimi_mcp.server import local_files, turns
from kimi_mcp.server.arguments import ArgumentCheck
from kimi_mcp.server.chat_result import CLAUDE_CODE_SIZE_HINT_KEY, chat_result, size_hint
from kimi_mcp.server.login_prompt import finished_login_meanwhile, login_required_result
from kimi_mcp.server.progress import ProgressReporter, UploadProgress
from kimi_mcp.server.state import AppState
from kimi_mcp.server.status import login_status
from kimi_mcp.settings import Settings, ThinkingLevel

logger = logging.getLogger(__name__)

# A bound on one turn's media list: each item may be a large upload, and a host passing hundreds is a mistake.
MAX_MEDIA_PER_CALL = 20
# Entries, not files: a folder or a glob stands for many (context_files bounds the files themselves).
MAX_FILE_ENTRIES_PER_CALL = 200

# What the calling agent reads to decide when and how to use each tool (docs/hosts.md: Codex may find the tools by
# keyword search, so the words an agent would search for are in them). The whole tools/list answer must stay
# under 6,000 characters (tests/server/test_tools.py): every word here is paid for in each host session's context.
CHAT_DESCRIPTION = (
    "Ask Kimi (Moonshot's kimi-for-coding, 262k-token context) and get its reply. Use it for a second opinion or "
    "code review, reading long text or many files, or a parallel sub-task. Kimi sees ONLY what you put in this "
    "call (prompt, system, media, files) plus earlier turns of the same conversation_id: not your tools, files "
    "or chat, so include everything it needs. The reply is text ending with [conversation_id: ... · turn N]; pass "
    "that id back to continue the thread (cheap: Kimi caches the shared prefix). Parallel calls are fine; calls "
    "on one id take turns. A long reply is cut and its footer names the kimi://conversations/{id} resource with "
    "the full text (or ask Kimi, in the same conversation, for the rest). files: absolute files, folders or "
    "globs on the kimi-mcp server's disk, read by kimi-mcp itself (skipping .git, dependencies, build output, "
    ".gitignored and binary files); later turns resend only changed files. media: images/videos as absolute "
    "paths on that disk, or ms:// ids from kimi_upload_media. A failed call's text starts with Error: and says "
    "what to do."
)
UPLOAD_DESCRIPTION = (
    "Upload an image (JPEG, PNG, GIF, WebP) or video (MP4, MOV, WebM, MKV, AVI, FLV, 3GP, MPEG) to Kimi and get "
    "an ms:// id to pass in kimi_chat's media. Not needed for a file on the kimi-mcp server's disk: kimi_chat's "
    "media takes its path. Use it when you are not on the server's machine (data_base64 + mime_type: the bytes "
    "themselves), or to upload ahead of time (path: absolute, inside the server's allowed folders). The same "
    "content always gives the same id (cached)."
)
STATUS_DESCRIPTION = (
    "Show how kimi-mcp is signed in to Kimi (API key, account login or none), the backend, model and protocol, "
    "and the plan's 5-hour and weekly quota with reset times. Call it when kimi_chat reports a login, 401/403 "
    "or quota (429) problem. Never shows a token."
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
        str | None, Field(description="Continue this conversation: the kc_... id from an earlier result's footer.")
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
    media: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=4096)]] | None,
        Field(
            max_length=MAX_MEDIA_PER_CALL,
            description="Images/videos for this turn: absolute paths on the server's disk, or ms:// ids.",
        ),
    ] = None,
    files: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=4096)]] | None,
        Field(
            max_length=MAX_FILE_ENTRIES_PER_CALL,
            description="Files, folders or globs (absolute, on the server's disk, e.g. /repo/src/**/*.py) for Kimi "
            "to read as context.",
        ),
    ] = None,
    on_overflow: Annotated[
        Literal["error", "truncate"],
        Field(description="When the files do not fit Kimi's window: fail (default) or cut the largest ones."),
    ] = "error",
) -> CallToolResult:
    state = _state(ctx)
    cap = state.settings.max_output_chars

    async def chat() -> CallToolResult:
        return await _chat(
            state,
            ctx,
            media=media or [],
            files=files or [],
            on_overflow=on_overflow,
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
    media: list[str],
    files: list[str],
    on_overflow: Literal["error", "truncate"],
    prompt: str,
    system: str | None,
    conversation_id: str | None,
    thinking: ThinkingLevel,
    include_thinking: bool,
    max_output_tokens: int | None,
    max_output_chars: int,
) -> CallToolResult:
    policy = await local_files.access_policy(state, ctx) if media or files else None

    async def reopen(path: str) -> LocalMedia | None:
        """The file an upload Kimi lost came from, read again under this call's policy (None if not allowed)."""
        try:
            allowed = policy or await local_files.access_policy(state, ctx)
            return await local_files.read_media(allowed, path, state.settings.max_media_bytes)
        except errors.KimiMcpError:
            return None

    ask = turns.Ask(
        prompt=prompt,
        thinking=thinking,
        max_output_tokens=max_output_tokens,
        media=tuple(await local_files.media_items(state, ctx, media, policy)),
        reopen=reopen,
        files=tuple(files),
        files_policy=policy,
        on_overflow=on_overflow,
    )
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
        files=outcome.files,
    )


UPLOAD_META_KEY = "kimi-mcp/upload"


async def kimi_upload_media(
    ctx: Context,
    path: Annotated[
        str | None,
        Field(max_length=4096, description="Absolute path of the file on the kimi-mcp server's disk."),
    ] = None,
    data_base64: Annotated[
        str | None, Field(description="The file's bytes, base64 (instead of path; same size limit).")
    ] = None,
    mime_type: Annotated[
        str | None, Field(max_length=100, description="With data_base64: its type, e.g. image/png (checked).")
    ] = None,
) -> CallToolResult:
    """Upload one file and return `{media_id, mime_type, bytes, sha256, cached}` as JSON text (and in `_meta`)."""
    state = _state(ctx)
    try:
        media = await _media_to_upload(state, ctx, path, data_base64, mime_type)
        outcome = await state.uploader.ensure(media, UploadProgress(ctx, media.name))
    except errors.LoginRequired as exc:
        return await login_required_result(state, ctx, exc)
    except errors.KimiMcpError as exc:
        logger.info("kimi_upload_media failed: %s", exc.message)
        return _error(exc.message)
    except Exception as exc:
        logger.exception("kimi_upload_media failed unexpectedly")
        return _error(errors.InternalError(type(exc).__name__).message)
    report = {
        "media_id": outcome.reference,
        "mime_type": outcome.media_type.mime_type,
        "bytes": outcome.bytes,
        "sha256": outcome.sha256,
        "cached": outcome.cached,
    }
    text = json.dumps(report, indent=2)
    return CallToolResult(content=[TextContent(type="text", text=text)], meta={UPLOAD_META_KEY: report})


async def _media_to_upload(
    state: AppState, ctx: Context, path: str | None, data_base64: str | None, mime_type: str | None
) -> LocalMedia:
    limit = state.settings.max_media_bytes
    if (path is None) == (data_base64 is None):
        raise errors.InvalidArguments(
            "kimi_upload_media", ["give exactly one of path (a file on the server) or data_base64 (with mime_type)"]
        )
    if path is not None:
        return await local_files.read_media(await local_files.access_policy(state, ctx), path, limit)
    assert data_base64 is not None
    data = decode_base64(data_base64, max_bytes=limit)
    return inspect_data(data, max_bytes=limit, claimed_mime=mime_type)


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
    check.add("kimi_upload_media", kimi_upload_media)
    server.tool(
        name="kimi_upload_media",
        title="Upload media to Kimi",
        description=UPLOAD_DESCRIPTION,
        # Not idempotent in the strict sense only for Kimi's side: the same content returns the same cached id.
        annotations=ToolAnnotations(
            read_only_hint=False, open_world_hint=True, destructive_hint=False, idempotent_hint=True
        ),
        structured_output=False,
    )(kimi_upload_media)
    server.tool(
        name="kimi_login_status",
        title="Kimi login status",
        description=STATUS_DESCRIPTION,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True, idempotent_hint=True),
        structured_output=False,
    )(kimi_login_status)
