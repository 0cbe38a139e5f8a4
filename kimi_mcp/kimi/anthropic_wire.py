"""The Anthropic wire: `POST {base}/v1/messages` through the `anthropic` SDK (docs/kimi-api.md §1, §4, §5, §8).

The SDK is imported here, at first use, never at server start (it costs about a second). It is always built
explicitly: our httpx2 client, our base URL, a Bearer token; so nothing is read from `ANTHROPIC_*` variables
or Anthropic profile files, no `x-api-key` header is ever sent, and `anthropic-version` is the pinned one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx2

from kimi_mcp import errors
from kimi_mcp.http import ANTHROPIC_VERSION
from kimi_mcp.kimi.models import ChatRequest, ChatResult, ContentBlock, Message, TextBlock
from kimi_mcp.kimi.upstream import error_details
from kimi_mcp.kimi.wires import (
    EMPTY_REPLY_STAND_IN,
    ProgressCallback,
    ReplyState,
    body_bytes,
    chat_timeout,
    check_request_size,
    no_answer,
    not_a_stream,
    output_budget,
    prompt_bytes,
    read_timed_out,
    reading_reply,
)
from kimi_mcp.logs import redact
from kimi_mcp.settings import CONTEXT_WINDOW_TOKENS, STREAM_IDLE_SECONDS

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic


def build_sdk(
    *,
    token: str,
    base_url: str,
    http: httpx2.AsyncClient,
    max_retries: int,
    idle_seconds: float = STREAM_IDLE_SECONDS,
) -> AsyncAnthropic:
    """The SDK on our httpx2 client; its requests wait at most `idle_seconds` for each piece of the answer
    (KIMI_MCP_STREAM_IDLE_SECONDS, `wires.chat_timeout`), and a wait for the first that runs out is retried."""
    from anthropic import AsyncAnthropic

    # auth_token and base_url are passed explicitly: with them set, the SDK consults neither
    # ANTHROPIC_API_KEY/ANTHROPIC_AUTH_TOKEN/ANTHROPIC_BASE_URL nor any profile (docs/kimi-api.md §4).
    timeout = chat_timeout(http.timeout, idle_seconds)
    sdk = AsyncAnthropic(
        auth_token=token, base_url=base_url, http_client=http, max_retries=max_retries, timeout=timeout
    )
    # The constructor merges ANTHROPIC_CUSTOM_HEADERS from the environment into its custom headers, and those
    # would override even Authorization. Ours come from settings through the httpx2 client: drop the SDK's.
    # Custom headers override the SDK's defaults, so the pinned version goes here (the httpx2 guard pins it too).
    sdk._custom_headers = {"anthropic-version": ANTHROPIC_VERSION}
    return sdk


def _message_json(message: Message) -> dict[str, Any]:
    # Image and video blocks are already in this wire's shape (kimi/models.py): `source` is {type: url, url:
    # ms://…} or {type: base64, media_type, data} (docs/kimi-api.md §7).
    blocks = [block.model_dump(mode="json") for block in message.content if _kept(block)]
    return {"role": message.role, "content": blocks or [{"type": "text", "text": EMPTY_REPLY_STAND_IN}]}


def _kept(block: ContentBlock) -> bool:
    return not isinstance(block, TextBlock) or bool(block.text)


def thinking_fields(level: str, efforts: frozenset[str]) -> dict[str, Any]:
    """As Moonshot's own client sends it (docs/kimi-api.md §5): off is an explicit `disabled` (the service may
    think by default); on is `enabled`, with `output_config.effort` only for an effort the model lists."""
    if level == "off":
        return {"thinking": {"type": "disabled"}}
    if level in efforts:
        return {"thinking": {"type": "enabled"}, "output_config": {"effort": level}}
    return {"thinking": {"type": "enabled"}}


def build_body(
    request: ChatRequest, *, efforts: frozenset[str] = frozenset(), context_tokens: int = CONTEXT_WINDOW_TOKENS
) -> dict[str, Any]:
    """The JSON body (minus `stream`) for one turn. Deterministic: the same request gives the same bytes."""
    body: dict[str, Any] = {"model": request.model}
    if request.system:
        body["system"] = request.system
    body["messages"] = [_message_json(m) for m in request.messages]
    body["max_tokens"] = output_budget(prompt_bytes(body), request.max_output_tokens, context_tokens)
    body.update(thinking_fields(request.thinking, efforts))
    if request.cache_key:
        # docs/kimi-api.md §6: the top-level key, and on this wire the same key as `metadata.user_id`, which is
        # what Moonshot's own client routes cache affinity by.
        body["metadata"] = {"user_id": request.cache_key}
        body["prompt_cache_key"] = request.cache_key
    check_request_size(body_bytes(body) + len(',"stream":true'), request)
    return body


def _sdk_params(body: dict[str, Any]) -> dict[str, Any]:
    """Split our body into the SDK's typed parameters and `extra_body` (merged at the JSON top level)."""
    typed = {"model", "system", "messages", "max_tokens", "thinking", "metadata"}
    params = {key: value for key, value in body.items() if key in typed}
    extra = {key: value for key, value in body.items() if key not in typed}
    if extra:
        params["extra_body"] = extra
    return params


async def stream_chat(
    sdk: AsyncAnthropic,
    body: dict[str, Any],
    on_progress: ProgressCallback | None,
    *,
    idle_seconds: float = STREAM_IDLE_SECONDS,
) -> ChatResult:
    """Stream one reply; the text is cleaned of placeholder blocks as it arrives (docs/kimi-api.md §8).

    What can go wrong once the SDK's retries are over (docs/reliability.md): no answer began within
    `idle_seconds`; a success answer that is no event stream; an event that is not JSON, an `error` event, a
    stall longer than `idle_seconds` or a cut connection mid-reply (none of them retried: the reply had begun).
    """
    import anthropic

    state = _StreamState(model=body["model"], on_progress=on_progress)
    try:
        stream = await sdk.messages.create(stream=True, **_sdk_params(body))
    except anthropic.APITimeoutError as exc:
        if not read_timed_out(exc):
            raise
        raise no_answer(exc, str(exc.request.url), idle_seconds) from None
    async with stream:
        if (wrong := not_a_stream(stream.response)) is not None:
            raise wrong
        try:
            with reading_reply(idle_seconds):
                async for event in stream:
                    await state.handle(event)
        except json.JSONDecodeError as exc:  # the SDK parses each event's data as it comes
            raise errors.IncompleteStream(f"a malformed event: {redact(exc.doc[:80])!r}") from None
        except anthropic.APIStatusError as exc:  # an `error` event after the 200 (the SDK raises it as status 200)
            _, message = error_details(exc.body if exc.body is not None else b"")
            raise errors.IncompleteStream(f"Kimi reported an error mid-reply: {redact(message or str(exc))}") from None
    await state.end_text()
    return state.result()


_USAGE_FIELDS = (
    ("input_tokens", "input_tokens"),
    ("cache_read_tokens", "cache_read_input_tokens"),
    ("output_tokens", "output_tokens"),
)


class _StreamState(ReplyState):
    """The Anthropic events of one reply (docs/kimi-api.md §8), fed into the wire-neutral `ReplyState`."""

    async def handle(self, event: Any) -> None:
        self.events += 1
        kind = event.type
        if kind == "message_start":
            self.model = event.message.model or self.model
            self._take_usage(event.message.usage)
        elif kind == "content_block_start":
            await self.end_text()
            if event.content_block.type == "text":
                self.start_text()
                await self.add_text(getattr(event.content_block, "text", "") or "")
        elif kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                await self.add_text(delta.text)
            elif delta.type == "thinking_delta":
                await self.add_thinking(delta.thinking)
        elif kind == "content_block_stop":
            await self.end_text()
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self._take_usage(event.usage)

    def _take_usage(self, usage: Any) -> None:
        """docs/kimi-api.md §8: message_start and message_delta may both carry the counts; the last one seen wins
        (Kimi may send zeros at the start and the totals, cache hits included, only at the end)."""
        if usage is None:
            return
        for ours, theirs in _USAGE_FIELDS:
            value = getattr(usage, theirs, None)
            if value is not None:
                setattr(self.usage, ours, value)


def map_sdk_error(exc: Exception) -> Exception | None:
    """Our error for an SDK exception (`Rejected` for a 401), or None if it is not the SDK's."""
    import anthropic

    from kimi_mcp.kimi.upstream import error_for_response, request_size, transport_error

    if isinstance(exc, anthropic.APIStatusError):
        body = exc.body if exc.body is not None else b""
        sent = request_size(exc.response.request)
        return error_for_response(exc.status_code, body, exc.response.headers, request_bytes=sent)
    if isinstance(exc, anthropic.APIConnectionError):  # APITimeoutError included: the chain names the cause
        return transport_error(exc, str(exc.request.url))
    return None
