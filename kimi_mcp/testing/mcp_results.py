"""Reading kimi-mcp's tool results the way a programmatic MCP client does: the fields from `_meta`, the reply
from the text content (without the footer line). Used by tests, the demo and the benchmarks."""

from __future__ import annotations

from typing import Any

from kimi_mcp.server.chat_result import CHAT_META_KEY
from kimi_mcp.server.tools import STATUS_META_KEY

_FOOTER_START = "\n\n[conversation_id: "


def text_of(result: Any) -> str:
    """All text blocks of a tool result, joined."""
    return "".join(block.text for block in result.content if block.type == "text")


def chat_meta(result: Any) -> dict[str, Any]:
    """The `_meta["kimi-mcp/chat"]` fields of a successful kimi_chat result."""
    meta = result.meta or {}
    return dict(meta[CHAT_META_KEY])


def reply_of(result: Any) -> str:
    """Kimi's reply as the text content shows it, without the footer line(s)."""
    text = text_of(result)
    cut = text.rfind(_FOOTER_START)
    return text[:cut] if cut >= 0 else text


def status_of(result: Any) -> dict[str, Any]:
    """The `kimi_login_status` document (from `_meta`)."""
    meta = result.meta or {}
    return dict(meta[STATUS_META_KEY])
