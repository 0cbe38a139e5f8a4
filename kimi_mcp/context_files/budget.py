"""What a turn leaves for its files: tokens of the model's context window and bytes of the request body.

docs/files.md, "The budget". For the turn as it would be sent without the files (*used* bytes of JSON body):

- tokens = window - used / 3 - reserve, never below 0: the request at 3 bytes a token, the estimate the reply
  budget uses too (docs/kimi-api.md §5), on the safe side; the reserve is room for the reply, the call's
  `max_output_tokens` or 32,768, never more than a quarter of the window, so a small model still has room;
- bytes = 2 MiB - used - 1,024, never below 0: what the service's request cap leaves (docs/kimi-api.md §9), less
  room for what a count of the body leaves out (`"stream": true`, separators).

`budget_for(request, ...)` is what `kimi_chat` calls (server/turns.py), and what a `KimiClient` user calls with the
same request and the same window (`await client.context_window(model)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kimi_mcp.kimi.models import ChatRequest
    from kimi_mcp.settings import WireProtocol

# What files given as context leave of the model's window for the reply (at most a quarter of a small window),
# unless the call sets max_output_tokens.
FILES_REPLY_RESERVE_TOKENS = 32_768
# The service's request cap (docs/kimi-api.md §9), as kimi/upstream.py's MAX_REQUEST_BYTES (not imported: that
# module loads the HTTP client, and this arithmetic needs none).
REQUEST_CAP_BYTES = 2_097_152
# Room in the body cap for what the byte count of the request without files leaves out (`stream`, separators).
BODY_MARGIN_BYTES = 1024
# What the request without the files takes of the window, estimated as the wires do (docs/kimi-api.md §5): 3 bytes
# a token, on the safe side.
BYTES_PER_TOKEN = 3


@dataclass(frozen=True)
class Budget:
    """What the files may add to the request: `tokens` of Kimi's window, `bytes` of the request body; `window`
    is the context window `tokens` was computed from (named in the over-budget error), None if not known."""

    tokens: int
    bytes: int
    window: int | None = None


def budget_left(
    used_bytes: int,
    *,
    window_tokens: int,
    max_output_tokens: int | None = None,
    request_cap_bytes: int = REQUEST_CAP_BYTES,
) -> Budget:
    """The budget a request of `used_bytes` (its JSON body without the files) leaves on a model whose context
    window is `window_tokens`; `max_output_tokens` is the reply's reserve when the call sets one."""
    reserve = min(max_output_tokens or FILES_REPLY_RESERVE_TOKENS, window_tokens // 4)
    return Budget(
        tokens=max(window_tokens - used_bytes // BYTES_PER_TOKEN - reserve, 0),
        bytes=max(request_cap_bytes - used_bytes - BODY_MARGIN_BYTES, 0),
        window=window_tokens,
    )


def budget_for(request: ChatRequest, *, protocol: WireProtocol, window_tokens: int) -> Budget:
    """The budget `request` leaves for files: `request` is the turn as it would be sent without them (system
    text, history, media, prompt), `protocol` the wire that will send it, `window_tokens` the model's context
    window (`KimiClient.context_window`). Raises `RequestOverBodyCap` if the request alone is over the cap."""
    from kimi_mcp.kimi import wires  # the wire's own body, byte for byte; loaded when a budget is first needed

    used = wires.body_bytes(wires.build_body(protocol, request))
    return budget_left(used, window_tokens=window_tokens, max_output_tokens=request.max_output_tokens)
