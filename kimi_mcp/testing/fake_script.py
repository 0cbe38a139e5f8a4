"""Scripted answers of the fake Kimi service and how they look on the Anthropic wire.

`Reply` and `Fault` are what a test queues with `FakeKimi.script()` (and `Fault` with `FakeKimi.script_upload()`
for POST /v1/files). One script serves both chat surfaces: each step answers whichever of /v1/messages and
/v1/chat/completions is called next. The functions below turn a `Reply` into the exact SSE event sequence (or
JSON message) of the Anthropic Messages API (docs/kimi-api.md §1, §8); fake_openai.py does the same for the
OpenAI surface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_DELTA_CHARS = 20
_DEFAULT_TEXT_CHARS = 200

Event = tuple[str, dict[str, Any]]


@dataclass
class Reply:
    """A scripted chat answer, for either surface (options marked "OpenAI" matter only on /v1/chat/completions).

    `thinking` is sent as thinking blocks (Anthropic) or `delta.reasoning_content` (OpenAI). `stop_reason` takes
    an Anthropic stop reason or an OpenAI finish reason (mapped across, fake_openai.py); None sends neither.
    `cut_after_events` closes the connection before that many SSE frames were sent (`data: [DONE]` counts on
    the OpenAI surface); in JSON mode any value cuts the body half-way. With `reset` that close is a TCP reset.
    `stall_after_events` sends that many frames, then nothing more while the connection stays open (a stream
    that stalls between events); `invalid_json_at` replaces the frame at that index with an event whose data
    is not JSON. Both count frames as `cut_after_events` does.
    """

    text: str = "Hello from fake Kimi."
    thinking: str | None = None
    text_deltas: list[str] | None = None
    stop_reason: str | None = "end_turn"
    delay: float = 0.0
    cut_after_events: int | None = None
    reset: bool = False
    stall_after_events: int | None = None
    invalid_json_at: int | None = None
    output_tokens: int | None = None
    # docs/kimi-api.md §8: Kimi may send zeros in message_start and the totals (cache reads included) only in
    # message_delta. True scripts that shape; False puts the prompt-side counts in message_start, as Anthropic does.
    usage_in_delta: bool = False
    # OpenAI (docs/kimi-api.md §6): usage in `choices[0].usage` of the last chunk instead of the top-level `usage`.
    usage_in_choice: bool = False
    # OpenAI: usage in a further last chunk with `choices: []`, as OpenAI itself sends it.
    usage_in_own_chunk: bool = False
    # OpenAI: cached tokens as `usage.prompt_tokens_details.cached_tokens` instead of Kimi's `usage.cached_tokens`.
    cached_tokens_in_details: bool = False

    def __post_init__(self) -> None:
        if self.usage_in_choice and self.usage_in_own_chunk:
            raise ValueError("usage goes either in choices[0] or in its own chunk, not both")

    def deltas(self) -> list[str]:
        """The text_delta chunks: the scripted ones, else `text` in ~20-char pieces."""
        if self.text_deltas is not None:
            return list(self.text_deltas)
        return split_text(self.text)

    def full_text(self) -> str:
        return "".join(self.text_deltas) if self.text_deltas is not None else self.text

    def usage_output_tokens(self) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        return len(self.full_text() + (self.thinking or "")) // 4 + 1


# The service's words when an account has too many requests in flight (docs/kimi-api.md §9).
BUSY_MESSAGE = "You've reached your concurrent request limit, please try again later."
# What the nginx in front of the service answers for a body over its size limit (docs/kimi-api.md §9): HTML.
NGINX_413_HTML = (
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


# What a proxy in front of the service answers when the service behind it fails: an HTML page, not JSON (§9).
NGINX_502_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
# An event stream that is not SSE: the events as bare JSON lines, with no `event:`/`data:` fields.
MALFORMED_SSE = (
    '{"type": "message_start", "message": {"role": "assistant"}}\n'
    '{"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Lost words."}}\n'
    '{"choices": [{"delta": {"content": "Lost words."}, "finish_reason": "stop"}]}\n\n'
)


@dataclass
class Fault:
    """A scripted error answer (docs/kimi-api.md §9), a connection dropped without any response (with
    `reset`: by a TCP reset), or a request accepted and never answered (`hang`, until the client leaves).

    A `status` of 200 with a raw `body` scripts a success answer that carries no reply (wrong content type,
    empty body, malformed stream)."""

    status: int
    error_type: str = "api_error"
    message: str = "fault injected"
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    reset: bool = False
    hang: bool = False
    # A raw response body instead of the JSON error envelope (its content type goes in `headers`).
    body: str | None = None

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["retry-after"] = _format_seconds(self.retry_after)
        return headers

    @classmethod
    def busy(cls, retry_after: float | None = None) -> Fault:
        """403 "concurrent request limit": the account has too many requests in flight."""
        return cls(403, "permission_error", BUSY_MESSAGE, retry_after=retry_after)

    @classmethod
    def too_large(cls, message: str = "request entity too large") -> Fault:
        """413 in the service's JSON error shape: the request (an upload, a message) was too big (§9)."""
        return cls(413, "request_too_large", message)

    @classmethod
    def nginx_too_large(cls) -> Fault:
        """413 as nginx answers it, an HTML page rather than JSON (seen on video batches, §9)."""
        return cls(413, body=NGINX_413_HTML, headers={"content-type": "text/html"})

    @classmethod
    def connection_reset(cls) -> Fault:
        """The request is read, then the connection is reset (TCP RST) before any byte of an answer."""
        return cls(0, drop_connection=True, reset=True)

    @classmethod
    def no_answer(cls) -> Fault:
        """The request is read and never answered: the connection stays open and silent until the client leaves."""
        return cls(0, hang=True)

    @classmethod
    def proxy_page(cls, status: int = 502) -> Fault:
        """An HTML error page from the proxy in front of the service (nginx's 502 Bad Gateway by default)."""
        return cls(status, body=NGINX_502_HTML, headers={"content-type": "text/html"})

    @classmethod
    def malformed_stream(cls) -> Fault:
        """200 `text/event-stream` whose body is not SSE (bare JSON lines)."""
        return cls(200, body=MALFORMED_SSE, headers={"content-type": "text/event-stream"})

    @classmethod
    def wrong_content_type(cls) -> Fault:
        """200 `text/plain`: something answered, but not with a reply."""
        return cls(200, body="OK\n", headers={"content-type": "text/plain; charset=utf-8"})

    @classmethod
    def error_event(cls, message: str = "Overloaded") -> Fault:
        """200 `text/event-stream` carrying one `error` event, as the service reports a failure after the 200: read
        as such by both surfaces' clients (the Anthropic SDK by the event's name, OpenAI readers by its `error`)."""
        data = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": message}})
        return cls(200, body=f"event: error\ndata: {data}\n\n", headers={"content-type": "text/event-stream"})

    @classmethod
    def empty_success(cls) -> Fault:
        """200 with an empty body (Content-Length: 0) and no content type."""
        return cls(200, body="")


@dataclass(frozen=True)
class Usage:
    """Prompt-side token counts of one request, as the emulated prompt cache saw it (docs/kimi-api.md §6)."""

    input_tokens: int = 0
    cache_read_input_tokens: int = 0


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """The Anthropic-style error envelope Kimi's Anthropic surface answers with (fake_openai.py has the other)."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def default_reply(request: dict[str, Any]) -> Reply:
    """The deterministic answer used when nothing is scripted, so tests can assert on it."""
    return Reply(text=f"Fake Kimi reply to: {last_user_text(request)[:_DEFAULT_TEXT_CHARS]}")


def last_user_text(request: dict[str, Any]) -> str:
    """The text blocks of the last user message, joined by newlines ("" if there is none)."""
    users = [m for m in request.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return ""
    content = users[-1].get("content")
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "\n".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text")


def message_json(reply: Reply, *, message_id: str, model: str, usage: Usage) -> dict[str, Any]:
    """The non-streamed answer: one complete Message object."""
    content: list[dict[str, Any]] = []
    if reply.thinking is not None:
        # docs/kimi-api.md §8: thinking blocks may come with empty signatures.
        content.append({"type": "thinking", "thinking": reply.thinking, "signature": ""})
    if reply.full_text():
        content.append({"type": "text", "text": reply.full_text()})
    message = _message_shell(message_id, model, usage, reply.usage_output_tokens())
    message.update(content=content, stop_reason=reply.stop_reason)
    return message


def stream_events(reply: Reply, *, message_id: str, model: str, usage: Usage) -> list[Event]:
    """The SSE events of a streamed answer, in the Anthropic Messages API order."""
    start_usage = Usage() if reply.usage_in_delta else usage
    start_output = 0 if reply.usage_in_delta else 1
    events: list[Event] = [
        (
            "message_start",
            {"type": "message_start", "message": _message_shell(message_id, model, start_usage, start_output)},
        ),
        ("ping", {"type": "ping"}),
    ]
    index = 0
    if reply.thinking is not None:
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": d} for d in split_text(reply.thinking)]
        deltas.append({"type": "signature_delta", "signature": ""})  # docs/kimi-api.md §8
        events += _block_events(index, start, deltas)
        index += 1
    if text_deltas := [d for d in reply.deltas() if d]:
        deltas = [{"type": "text_delta", "text": d} for d in text_deltas]
        events += _block_events(index, {"type": "text", "text": ""}, deltas)
    if reply.stop_reason is not None:
        # docs/kimi-api.md §8: a stream without a stop reason must be possible (it is an error client-side).
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                    "usage": _delta_usage(reply, usage),
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
    return events


def _delta_usage(reply: Reply, usage: Usage) -> dict[str, int]:
    if not reply.usage_in_delta:
        return {"output_tokens": reply.usage_output_tokens()}
    return {
        "input_tokens": usage.input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": reply.usage_output_tokens(),
    }


def sse_frame(event: Event) -> bytes:
    """`event: <type>\\ndata: <json>\\n\\n` framing."""
    name, data = event
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def with_invalid_json(reply: Reply, frames: list[bytes], event_name: str | None) -> list[bytes]:
    """`frames` with the one at `reply.invalid_json_at` (if any) replaced by an event whose data is cut-off JSON;
    `event_name` is its `event:` line (the Anthropic surface names its events, the OpenAI one does not)."""
    at = reply.invalid_json_at
    if at is None or not 0 <= at < len(frames):
        return frames
    head = f"event: {event_name}\n" if event_name else ""
    broken = f'{head}data: {{"type": "content_block_delta", "delta": {{"text": "cut off\n\n'.encode()
    return [*frames[:at], broken, *frames[at + 1 :]]


def _block_events(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> list[Event]:
    events: list[Event] = [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
    ]
    events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _message_shell(message_id: str, model: str, usage: Usage, output_tokens: int) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "cache_creation_input_tokens": 0,
        },
    }


def split_text(text: str) -> list[str]:
    return [text[i : i + _DELTA_CHARS] for i in range(0, len(text), _DELTA_CHARS)]


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
