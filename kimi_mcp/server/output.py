"""Sizing replies for hosts (Claude Code cuts tool output at 25,000 tokens) and rendering transcripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kimi_mcp.store import Conversation

CONVERSATIONS_URI = "kimi://conversations"
# A cut may step back this far to land on a paragraph, line or word boundary instead of mid-word.
_BOUNDARY_WINDOW = 0.2


def conversation_uri(conversation_id: str, turn: int | None = None) -> str:
    uri = f"{CONVERSATIONS_URI}/{conversation_id}"
    return f"{uri}/turns/{turn}" if turn is not None else uri


def fit_output(text: str, max_chars: int) -> tuple[str, bool]:
    """(text cut to at most `max_chars` at a clean boundary, whether it was cut)."""
    if len(text) <= max_chars:
        return text, False
    floor = int(max_chars * (1 - _BOUNDARY_WINDOW))
    head = text[:max_chars]
    for boundary in ("\n\n", "\n", " "):
        cut = head.rfind(boundary)
        if cut >= floor:
            return head[:cut].rstrip(), True
    return head, True


def render_turn(conversation: Conversation, index: int) -> str:
    turn = conversation.turns[index - 1]
    user = "\n\n".join(block.text for block in turn.user if block.type == "text")
    return f"## Turn {index}\n\n### User\n\n{user}\n\n### Kimi\n\n{turn.assistant_text}\n"


def render_transcript(conversation: Conversation) -> str:
    header = [
        f"# Conversation {conversation.id}",
        "",
        f"- model: {conversation.model}",
        f"- turns: {len(conversation.turns)}",
    ]
    if conversation.system:
        header += ["", "## System", "", conversation.system]
    turns = [render_turn(conversation, i) for i in range(1, len(conversation.turns) + 1)]
    return "\n".join(header) + "\n\n" + "\n".join(turns)
