"""What the two chat wires share, and which one `KIMI_CODE_PROTOCOL` selects (docs/kimi-api.md §1, §5, §8, §9).

`anthropic_wire.py` speaks `POST {base}/v1/messages` through the anthropic SDK, `openai_wire.py` speaks
`POST {base}/v1/chat/completions` with httpx2's own SSE reader. Both build their body from the same wire-neutral
`ChatRequest` with the same output budget and the same request cap, and both turn their stream into a `ChatResult`
through one `ReplyState`: the placeholder filter, the thinking-only note and the missing stop reason behave
the same on either wire.

Neither wire module is imported here at module level: each loads only when its protocol is in use (the OpenAI
wire never imports the anthropic SDK, docs/architecture.md "Start-up").
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2

from kimi_mcp import errors
from kimi_mcp.kimi.models import (
    Base64Source,
    ChatRequest,
    ChatResult,
    ImageBlock,
    StreamProgress,
    Usage,
    VideoBlock,
)
from kimi_mcp.kimi.sanitize import TextBlockFilter
from kimi_mcp.kimi.upstream import MAX_REQUEST_BYTES, in_chain
from kimi_mcp.netcause import describe_transport_error
from kimi_mcp.settings import CONTEXT_WINDOW_TOKENS, WireProtocol, env_name_of

ProgressCallback = Callable[[StreamProgress], Awaitable[None]]
_NO_EVENTS = "it carried no events: an empty or malformed event stream"

# Output budget (docs/kimi-api.md §5): what is left of the context, estimated at ~3 bytes a token to stay on the
# safe side, never below a floor that still leaves room for an answer.
_BYTES_PER_TOKEN_ESTIMATE = 3
_MIN_OUTPUT_TOKENS = 4096
PLACEHOLDER_NOTE = "Kimi produced only thinking and no answer text for this turn."
# The Anthropic surface rejects empty text blocks; a thinking-only turn left an empty reply in the history.
# A fixed stand-in keeps the replayed bytes identical from turn to turn, so the cache still hits (§6). The OpenAI
# wire replays the same stand-in, so a conversation reads the same whichever wire continues it.
EMPTY_REPLY_STAND_IN = "(no answer text)"


def build_body(
    protocol: WireProtocol,
    request: ChatRequest,
    *,
    efforts: frozenset[str] = frozenset(),
    context_tokens: int = CONTEXT_WINDOW_TOKENS,
) -> dict[str, Any]:
    """The body the wire of `protocol` would send for `request`; `RequestOverBodyCap` if it is over the cap.

    `context_tokens` is the model's context window (`KimiClient.context_window`), for the output budget."""
    if protocol == "openai":
        from kimi_mcp.kimi import openai_wire

        return openai_wire.build_body(request, efforts=efforts, context_tokens=context_tokens)
    from kimi_mcp.kimi import anthropic_wire

    return anthropic_wire.build_body(request, efforts=efforts, context_tokens=context_tokens)


def body_bytes(body: dict[str, Any]) -> int:
    """The size of `body` as sent (compact JSON, UTF-8), for the service's request cap (docs/kimi-api.md §9)."""
    return len(encode(body))


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def inline_media_bytes(request: ChatRequest) -> int:
    """Bytes of base64 image data the request carries inline, history included."""
    return sum(
        len(block.source.data)
        for message in request.messages
        for block in message.content
        if isinstance(block, (ImageBlock, VideoBlock)) and isinstance(block.source, Base64Source)
    )


def check_request_size(size: int, request: ChatRequest) -> None:
    """Refuse here rather than by a 413 after sending a large body (§9): nothing is sent."""
    if size > MAX_REQUEST_BYTES:
        raise errors.RequestOverBodyCap(size, MAX_REQUEST_BYTES, inline_media_bytes(request))


def output_budget(prompt_bytes: int, requested: int | None, context_tokens: int = CONTEXT_WINDOW_TOKENS) -> int:
    """What is left of the model's `context_tokens` after the prompt; the floor never above half the window, so a
    small model (8,192 tokens) is not asked for more than it has."""
    left = context_tokens - prompt_bytes // _BYTES_PER_TOKEN_ESTIMATE
    budget = max(left, min(_MIN_OUTPUT_TOKENS, context_tokens // 2))
    return min(requested, budget) if requested else budget


def prompt_bytes(body: dict[str, Any]) -> int:
    """The prompt part of a body (model, system, messages) in bytes, for the output budget."""
    return len(json.dumps(body, ensure_ascii=False).encode())


@contextmanager
def reading_reply(idle_seconds: float) -> Iterator[None]:
    """Around the reading of a reply that has begun: a transport failure becomes what it means to the caller.

    A read that waited past the idle limit is a stalled stream; another timeout (the whole call's limit) is left
    for client.py to name; any other failure is a cut reply. Both wires read their streams inside this.
    """
    try:
        yield
    except httpx2.TransportError as exc:
        if isinstance(exc, httpx2.ReadTimeout):
            raise stalled(idle_seconds) from None
        if isinstance(exc, httpx2.TimeoutException):
            raise
        raise cut_reply(exc) from None


def cut_reply(exc: httpx2.TransportError) -> errors.IncompleteStream:
    """Kimi was reached and had begun to answer: the reply was cut, the network is not "unreachable"."""
    how = "was reset" if in_chain(exc, ConnectionResetError) else "closed"
    return errors.IncompleteStream(f"the connection {how} mid-reply: {type(exc).__name__}")


# -- the stream idle timeout (KIMI_MCP_STREAM_IDLE_SECONDS, docs/reliability.md) ---------------------------------


def chat_timeout(http_timeout: httpx2.Timeout, idle_seconds: float) -> httpx2.Timeout:
    """The limits of one chat request: the HTTP client's, with the read limit set to the stream idle timeout.

    httpx2's read timeout bounds each wait for data on the socket: the wait for the answer's first byte (a server
    that accepted the request and never answers) and every gap between two events of a streamed reply. Uploads
    and the side APIs keep the client's own read limit (KIMI_MCP_TIMEOUT): a large upload's answer may take long.
    """
    return httpx2.Timeout(
        connect=http_timeout.connect, read=idle_seconds, write=http_timeout.write, pool=http_timeout.pool
    )


def read_timed_out(exc: BaseException) -> bool:
    """True if `exc` (an SDK's or httpx2's) comes from a read that waited past the read limit."""
    return in_chain(exc, httpx2.ReadTimeout)


def no_answer(exc: BaseException, url: str, idle_seconds: float) -> errors.ServiceUnavailable:
    """The request was sent and nothing came back within the idle limit, after the retries."""
    cause = describe_transport_error(exc, url)
    return errors.ServiceUnavailable(f"{cause}: no answer began within {_idle_limit(idle_seconds)}")


def stalled(idle_seconds: float) -> errors.IncompleteStream:
    """The reply had begun, then nothing more arrived within the idle limit: not retried (see docs/reliability.md)."""
    return errors.IncompleteStream(f"the stream stalled: nothing arrived for {_idle_limit(idle_seconds)}")


def _idle_limit(idle_seconds: float) -> str:
    return f"{idle_seconds:g} s, the {env_name_of('stream_idle_seconds')} limit"


def not_a_stream(response: httpx2.Response, *, json_ok: bool = False) -> errors.ServiceUnavailable | None:
    """Why a success answer to a streamed chat request cannot be a reply, or None if it may be one: an empty body,
    or a content type other than `text/event-stream` (or, when `json_ok`, one JSON completion). Checked before
    reading, so the error names what came instead of a stream that merely "ended early"."""
    kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if response.headers.get("content-length", "").strip() == "0":
        return errors.ServiceUnavailable(f"HTTP {response.status_code} with an empty body instead of a reply stream")
    if kind == "text/event-stream" or (json_ok and kind == "application/json"):
        return None
    shown = f"a {kind} body" if kind else "a body with no content type"
    return errors.ServiceUnavailable(
        f"HTTP {response.status_code} with {shown} instead of a reply stream; if this persists, check "
        f"{env_name_of('base_url')} and any proxy in between"
    )


class ReplyState:
    """One reply as it streams in, whatever the wire: answer text (placeholder blocks hidden, docs/kimi-api.md §8),
    thinking, usage and stop reason, with progress reported to the caller as it grows."""

    def __init__(self, model: str, on_progress: ProgressCallback | None) -> None:
        self.model = model
        self.on_progress = on_progress
        self.text: list[str] = []
        self.thinking: list[str] = []
        # Running counts: progress goes out per delta, and re-summing the pieces each time is quadratic.
        self.text_chars = 0
        self.thinking_chars = 0
        self.usage = Usage()
        self.stop_reason: str | None = None
        self.events = 0  # events of the stream read so far: none at all means an empty or malformed stream
        self.hid_placeholder = False
        self._block: TextBlockFilter | None = None

    def start_text(self) -> None:
        """A new text block begins: the placeholder may start it (§8)."""
        self._block = TextBlockFilter()

    async def add_text(self, delta: str) -> None:
        if self._block is None:
            self.start_text()
        assert self._block is not None
        await self._show(self._block.feed(delta))

    async def end_text(self) -> None:
        """The open text block (if any) is complete: release what the filter held back."""
        if self._block is None:
            return
        block, self._block = self._block, None
        await self._show(block.close())
        self.hid_placeholder |= block.hidden

    async def add_thinking(self, delta: str) -> None:
        self.thinking.append(delta)
        self.thinking_chars += len(delta)
        await self.report("thinking")

    async def _show(self, text: str) -> None:
        """Text the placeholder filter released: part of the answer from now on."""
        if text:
            self.text.append(text)
            self.text_chars += len(text)
            await self.report("answering", text)

    async def report(self, phase: str, new_text: str = "") -> None:
        if self.on_progress is None:
            return
        await self.on_progress(
            StreamProgress(
                phase=phase,  # type: ignore[arg-type]
                new_text=new_text,
                text_chars=self.text_chars,
                thinking_chars=self.thinking_chars,
                output_tokens=self.usage.output_tokens,
            )
        )

    def result(self) -> ChatResult:
        """The finished reply; `IncompleteStream` if the stream never said why it stopped (§8)."""
        if self.stop_reason is None:
            raise errors.IncompleteStream() if self.events else errors.IncompleteStream(_NO_EVENTS)
        text = "".join(self.text)
        thinking = "".join(self.thinking)
        note = PLACEHOLDER_NOTE if not text.strip() and (self.hid_placeholder or thinking) else None
        return ChatResult(
            text=text,
            model=self.model,
            stop_reason=self.stop_reason,
            usage=self.usage,
            thinking=thinking or None,
            note=note,
        )
