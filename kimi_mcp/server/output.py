"""Sizing replies for hosts (Claude Code cuts tool output at 25,000 tokens) and rendering transcripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kimi_mcp.store import Conversation, ConversationSummary

CONVERSATIONS_URI = "kimi://conversations"
# A cut may step back this far to land on a paragraph, line or word boundary instead of mid-word.
_BOUNDARY_WINDOW = 0.2


def conversation_uri(conversation_id: str, turn: int | None = None) -> str:
    uri = f"{CONVERSATIONS_URI}/{conversation_id}"
    return f"{uri}/turns/{turn}" if turn is not None else uri


# Hosts cap tool output in tokens. ASCII text and code run 2.5-4 characters a token, CJK text about one, so a
# non-ASCII character counts as this many characters against `max_output_chars`.
NON_ASCII_WEIGHT = 3


def _fitting_prefix(text: str, budget: int) -> int:
    """Length of the longest prefix of `text` whose weighted size is within `budget`."""
    if len(text) * NON_ASCII_WEIGHT <= budget or (text.isascii() and len(text) <= budget):
        return len(text)
    used = 0
    for index, char in enumerate(text):
        used += 1 if char < "\x80" else NON_ASCII_WEIGHT
        if used > budget:
            return index
    return len(text)


def fit_output(text: str, max_chars: int) -> tuple[str, bool]:
    """(text cut at a clean boundary to fit `max_chars` weighted characters, whether it was cut)."""
    fits = _fitting_prefix(text, max_chars)
    if fits == len(text):
        return text, False
    floor = int(fits * (1 - _BOUNDARY_WINDOW))
    head = text[:fits]
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


def render_conversation_list(summaries: Sequence[ConversationSummary]) -> str:
    """The kimi://conversations resource's JSON; `kimi-mcp conversations list --json` prints the same."""
    items = [
        {
            "id": s.id,
            "uri": conversation_uri(s.id),
            "first_prompt_line": s.first_prompt_line,
            "updated_at": datetime.fromtimestamp(s.updated_at, UTC).isoformat(),
            "turns": s.turns,
            "model": s.model,
        }
        for s in summaries
    ]
    return json.dumps({"conversations": items}, indent=2, ensure_ascii=False)
