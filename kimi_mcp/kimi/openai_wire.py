"""The OpenAI wire: `POST {base}/v1/chat/completions`, streamed as SSE (docs/kimi-api.md §1, §2, §5–§9).

No SDK: the stream is read with httpx2's own SSE reader (`httpx2.EventSource`) into the few pydantic models below,
which name only the fields Kimi's chunks carry that we use. Why not the `openai` SDK (built on httpx2 as well):
measured in fresh interpreters on the 2-core CI machine, it adds ~0.47 s, ~570 modules and ~15 MiB RSS to import
and ~0.87 s to its first streamed reply, where this module needs nothing the client has not already loaded (its
first reply: ~0.07 s); its typed chunks do not know Kimi's fields (`reasoning_content`, `usage.cached_tokens`,
usage inside `choices[0]`), so they would be read as untyped extras anyway; and it reads `OPENAI_API_KEY`,
`OPENAI_ORG_ID`, `OPENAI_PROJECT_ID`… from the environment whenever an argument is left out. What the SDK would
have given, its retry loop, is `KimiClient`'s own (the one uploads use, with the same rules as the anthropic SDK's).

Nothing here is read from `OPENAI_*` variables: the URL is `settings.base_url`, the token ours, the headers the
httpx2 client's. `KimiClient` sends the body (`wires.encode(build_body(...))`) and hands the open response to
`read_reply`; this module only builds bodies and reads answers.
"""

from __future__ import annotations

from typing import Any

import httpx2
from pydantic import BaseModel, ConfigDict, ValidationError

from kimi_mcp import errors
from kimi_mcp.kimi.models import Base64Source, ChatRequest, ChatResult, ContentBlock, Message, TextBlock, VideoBlock
from kimi_mcp.kimi.upstream import error_details
from kimi_mcp.kimi.wires import (
    EMPTY_REPLY_STAND_IN,
    ProgressCallback,
    ReplyState,
    body_bytes,
    check_request_size,
    not_a_stream,
    output_budget,
    prompt_bytes,
    reading_reply,
)
from kimi_mcp.logs import redact
from kimi_mcp.settings import CONTEXT_WINDOW_TOKENS, STREAM_IDLE_SECONDS

CHAT_PATH = "/v1/chat/completions"
DONE = "[DONE]"
# OpenAI's finish reasons in the words the Anthropic wire reports (docs/kimi-api.md §8), so `stop_reason` means
# the same whichever wire answered; a reason not listed here is passed on as it came.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


# -- the body (docs/kimi-api.md §5, §6, §7) ---------------------------------------------------------------------


def thinking_field(level: str, efforts: frozenset[str]) -> dict[str, Any]:
    """The top-level `thinking` object: this surface thinks by default, so off is an explicit `disabled`; on is
    `enabled`, with an `effort` only when the model lists it (§5). Never `reasoning_effort`."""
    if level == "off":
        return {"type": "disabled"}
    if level in efforts:
        return {"type": "enabled", "effort": level}
    return {"type": "enabled"}


def build_body(
    request: ChatRequest, *, efforts: frozenset[str] = frozenset(), context_tokens: int = CONTEXT_WINDOW_TOKENS
) -> dict[str, Any]:
    """The whole JSON body for one turn, as sent. Deterministic: the same request gives the same bytes.

    Raises `RequestOverBodyCap` (nothing sent) when it is over the service's request cap (§9).
    """
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})  # never `developer` (§5)
    messages += [_message_json(m) for m in request.messages]
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    # not max_tokens (§5); what the model's window leaves (context_tokens: /v1/models or the default)
    body["max_completion_tokens"] = output_budget(prompt_bytes(body), request.max_output_tokens, context_tokens)
    body["thinking"] = thinking_field(request.thinking, efforts)
    if request.cache_key:
        body["prompt_cache_key"] = request.cache_key  # §6
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    # `temperature` and `top_p` are left out: the service's defaults suit its thinking modes (§5).
    check_request_size(body_bytes(body), request)
    return body


def _message_json(message: Message) -> dict[str, Any]:
    if message.role == "assistant":
        # Our history keeps only the reply text of an assistant turn; this surface takes it as a plain string.
        text = "".join(block.text for block in message.content if isinstance(block, TextBlock))
        return {"role": "assistant", "content": text or EMPTY_REPLY_STAND_IN}
    parts = [_part(block) for block in message.content if not isinstance(block, TextBlock) or block.text]
    return {"role": message.role, "content": parts or [{"type": "text", "text": EMPTY_REPLY_STAND_IN}]}


def _part(block: ContentBlock) -> dict[str, Any]:
    """One content part (§7): text; an image as `image_url`, a video as `video_url`, with the `ms://` url of an
    upload or, for a small inline image, a `data:<mime>;base64,…` URL."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    source = block.source
    url = f"data:{source.media_type};base64,{source.data}" if isinstance(source, Base64Source) else source.url
    kind = "video_url" if isinstance(block, VideoBlock) else "image_url"
    return {"type": kind, kind: {"url": url}}


# -- the answer (docs/kimi-api.md §6, §8) --------------------------------------------------------------------------


class _Loose(BaseModel):
    # Kimi and OpenAI-compatible gateways add fields of their own: whatever is not named here is ignored.
    model_config = ConfigDict(extra="ignore")


class _PromptDetails(_Loose):
    cached_tokens: int | None = None


class _Usage(_Loose):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # Kimi's place for it
    prompt_tokens_details: _PromptDetails | None = None  # OpenAI's


class _Delta(_Loose):
    content: str | None = None
    reasoning_content: str | None = None


class _Choice(_Loose):
    delta: _Delta | None = None  # a streamed chunk
    message: _Delta | None = None  # a whole completion (a gateway that ignored `stream: true`)
    finish_reason: str | None = None
    usage: _Usage | None = None  # Kimi may put the usage here (§6)


class _Chunk(_Loose):
    """A `chat.completion.chunk`, or a whole `chat.completion`."""

    model: str | None = None
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: Any = None  # an error reported in the stream after a 200


async def read_reply(
    response: httpx2.Response,
    model: str,
    on_progress: ProgressCallback | None,
    *,
    idle_seconds: float = STREAM_IDLE_SECONDS,
) -> ChatResult:
    """Read one successful answer: SSE chunks (or one JSON completion) into a `ChatResult`; the text is cleaned of
    the placeholder as it arrives, and a stream that never gives a `finish_reason` is `IncompleteStream` (§8).

    An answer that is no stream, an event that is not a chunk, an error chunk, a stall longer than `idle_seconds`
    (KIMI_MCP_STREAM_IDLE_SECONDS) or a cut connection is an error, never retried (docs/reliability.md)."""
    state = _ReplyState(model, on_progress)
    if (wrong := not_a_stream(response, json_ok=True)) is not None:
        raise wrong
    kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    with reading_reply(idle_seconds):
        if kind == "text/event-stream":
            async for event in httpx2.EventSource(response):
                if event.data.strip() == DONE:
                    break
                await state.take(_chunk(event.data))
        else:
            await state.take(_chunk((await response.aread()).decode("utf-8", "replace")))
    await state.end_text()
    return state.result()


def _chunk(data: str) -> _Chunk:
    try:
        return _Chunk.model_validate_json(data)
    except ValidationError:
        raise errors.IncompleteStream(f"a malformed event: {redact(data[:80])!r}") from None


class _ReplyState(ReplyState):
    """OpenAI chunks fed into the wire-neutral `ReplyState`. The whole reply is one text block."""

    def __init__(self, model: str, on_progress: ProgressCallback | None) -> None:
        super().__init__(model, on_progress)
        self._prompt = self._cached = self._completion = 0

    async def take(self, chunk: _Chunk) -> None:
        self.events += 1
        if chunk.error is not None:
            _, message = error_details({"error": chunk.error})
            raise errors.IncompleteStream(f"Kimi reported an error mid-reply: {redact(message or str(chunk.error))}")
        self.model = chunk.model or self.model
        self._take_usage(chunk.usage)
        for choice in chunk.choices[:1]:
            delta = choice.delta or choice.message
            if delta is not None and delta.reasoning_content:
                await self.add_thinking(delta.reasoning_content)
            if delta is not None and delta.content:
                await self.add_text(delta.content)
            self._take_usage(choice.usage)
            if choice.finish_reason:
                self.stop_reason = STOP_REASONS.get(choice.finish_reason, choice.finish_reason)

    def _take_usage(self, usage: _Usage | None) -> None:
        """Counts from `usage` or `choices[0].usage`, the last value seen for each (§6, §8). `prompt_tokens`
        includes the cached ones here: ours keep them apart, as the Anthropic wire reports them, so that
        `cache_hit_ratio` means the same on both wires."""
        if usage is None:
            return
        cached = usage.cached_tokens
        if cached is None and usage.prompt_tokens_details is not None:
            cached = usage.prompt_tokens_details.cached_tokens
        self._prompt = usage.prompt_tokens if usage.prompt_tokens is not None else self._prompt
        self._cached = cached if cached is not None else self._cached
        self._completion = usage.completion_tokens if usage.completion_tokens is not None else self._completion
        cache_read = min(self._cached, self._prompt) if self._prompt else self._cached
        self.usage.cache_read_tokens = cache_read
        self.usage.input_tokens = max(self._prompt - cache_read, 0)
        self.usage.output_tokens = self._completion
