"""What a `kimi_chat` result looks like: text first, machine-readable fields in `_meta`.

Hosts hand their model the text content of a result, except that Claude Code and Codex hand it
`JSON.stringify(structuredContent)` instead whenever a result carries one (and drop the text), while Gemini CLI
shows only the text and turns a declared `outputSchema` without `structuredContent` into an error. So the
reply goes out as plain text with a one-line footer, no `structuredContent` and no `outputSchema`; the typed
fields ride in `_meta` under `CHAT_META_KEY` for programmatic clients, which no host shows its model
(docs/hosts.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp_types import CallToolResult, ResourceLink, TextContent
from pydantic import BaseModel, Field

from kimi_mcp.kimi.models import ChatResult
from kimi_mcp.server.output import conversation_uri, fit_output

if TYPE_CHECKING:
    from kimi_mcp.context_files import PackedFiles

CHAT_META_KEY = "kimi-mcp/chat"
# Claude Code's own key: results longer than this many characters are saved to a file and the model gets a
# 2 KB preview. Its default is 50,000 and it accepts up to 500,000.
CLAUDE_CODE_SIZE_HINT_KEY = "anthropic/maxResultSizeChars"
CLAUDE_CODE_DEFAULT_RESULT_CHARS = 50_000
CLAUDE_CODE_MAX_RESULT_CHARS = 500_000
# Room for the footer and a note beside a reply cut to the cap (a footer is ~200 characters).
FOOTER_ALLOWANCE_CHARS = 2_000


class UsageMeta(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int


class ChatMeta(BaseModel):
    """The fields of `_meta["kimi-mcp/chat"]` on every successful `kimi_chat` result."""

    conversation_id: str = Field(description="Pass back as conversation_id to continue this conversation.")
    turn: int = Field(description="1-based number of this turn in the conversation.")
    model: str
    stop_reason: str
    usage: UsageMeta
    cache_hit_ratio: float = Field(description="Share of this turn's prompt tokens served from Kimi's cache.")
    truncated: bool = Field(description="True when the text was cut to max_output_chars.")
    shown_chars: int = Field(description="Characters of the reply in the text content.")
    full_chars: int = Field(description="Characters of the whole reply.")
    full_text_uri: str = Field(description="Resource with the whole transcript, this reply untruncated.")
    turn_uri: str = Field(description="Resource with exactly this turn's full reply text.")
    thinking: str | None = Field(None, description="Kimi's thinking, only with include_thinking=true.")
    note: str | None = None
    # Only when the call gave `files` (docs/files.md).
    files_summary: str | None = Field(None, description="One line: files sent, tokens, skips.")
    files_included: list[dict[str, Any]] | None = Field(
        None, description="Each file read: path, bytes, lines, tokens, status new|changed|unchanged, truncated."
    )
    files_skipped: list[dict[str, Any]] | None = Field(None, description="Each path left out, with its reason.")


def size_hint(max_output_chars: int) -> int:
    """The `anthropic/maxResultSizeChars` that lets a reply cut to `max_output_chars`, with its footer, through
    whole; never below Claude Code's own default, never above what it accepts."""
    wanted = max(max_output_chars + FOOTER_ALLOWANCE_CHARS, CLAUDE_CODE_DEFAULT_RESULT_CHARS)
    return min(wanted, CLAUDE_CODE_MAX_RESULT_CHARS)


def chat_result(
    result: ChatResult,
    *,
    conversation_id: str,
    turn: int,
    note: str | None,
    max_output_chars: int,
    include_thinking: bool,
    files: PackedFiles | None = None,
) -> CallToolResult:
    """The reply cut to size, a footer line with the conversation id (and where the rest is), and `_meta`."""
    uri = conversation_uri(conversation_id)
    shown, truncated = fit_output(result.text, max_output_chars)
    meta = ChatMeta(
        conversation_id=conversation_id,
        turn=turn,
        model=result.model,
        stop_reason=result.stop_reason,
        usage=UsageMeta(**result.usage.model_dump()),
        cache_hit_ratio=result.usage.cache_hit_ratio,
        truncated=truncated,
        shown_chars=len(shown),
        full_chars=len(result.text),
        full_text_uri=uri,
        turn_uri=conversation_uri(conversation_id, turn),
        thinking=result.thinking if include_thinking else None,
        note=note,
        files_summary=files.summary() if files is not None else None,
        files_included=files.files_included() if files is not None else None,
        files_skipped=files.files_skipped() if files is not None else None,
    )
    footer = f"\n\n[conversation_id: {conversation_id} · turn {turn}"
    if truncated:
        footer += f" · truncated to {len(shown):,} of {len(result.text):,} chars; full reply at {uri}"
    footer += "]"
    body = shown or (f"({result.note})" if result.note else "(empty reply)")
    if files is not None:
        footer += f"\n[files: {files.summary()}]"
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
    return CallToolResult(content=content, meta={CHAT_META_KEY: meta.model_dump(mode="json")})
