"""The fake Kimi's OpenAI surface: `POST {base}/v1/chat/completions` (docs/kimi-api.md §1, §2, §5, §6, §8, §9).

What lives here: the payload rules the service enforces (§5), the allow-list refusal (§2), the error envelope of
this surface, the model list of the pay-as-you-go platform profile, and how a scripted `Reply` looks as OpenAI
chat-completion chunks (SSE) or as one JSON completion, with Kimi's usage quirks:

- streamed: a first chunk `delta: {role: "assistant", content: ""}`, then `delta.reasoning_content` pieces (the
  Reply's thinking), then `delta.content` pieces, then a last chunk with `delta: {}` and `finish_reason`, then
  `data: [DONE]`. Usage is sent only when the request asked for it (`stream_options.include_usage: true`), on the
  last chunk: top-level `usage` by default, `choices[0].usage` with `Reply(usage_in_choice=True)` (Kimi's quirk,
  §6), or OpenAI's own shape, a further chunk with `choices: []`, with `Reply(usage_in_own_chunk=True)`.
- Cached tokens go in `usage.cached_tokens` (Kimi) or, with `Reply(cached_tokens_in_details=True)`, in
  `usage.prompt_tokens_details.cached_tokens` (OpenAI). `prompt_tokens` counts the cached ones too (OpenAI
  semantics, unlike Anthropic's `input_tokens`).
- `Reply(stop_reason=None)` sends no chunk with a `finish_reason` (and so no usage), then `[DONE]` (§8).
  Anthropic stop reasons map to finish reasons (`end_turn` → `stop`, `max_tokens` → `length`, …); an OpenAI
  finish reason (`stop`, `length`) passes as it is.
"""

from __future__ import annotations

import json
from typing import Any

from kimi_mcp.testing.fake_script import Reply, Usage, split_text

# docs/kimi-api.md §2: the surface admits clients whose User-Agent starts with one of these ("…": the full list is
# not public; these two are the ones reported), and answers others with this 403.
ALLOWED_USER_AGENT_PREFIXES: tuple[str, ...] = ("KimiCLI/", "claude-code/")
ALLOW_LIST_ERROR_TYPE = "access_terminated_error"
ALLOW_LIST_MESSAGE = (
    "Kimi For Coding is currently only available for Coding Agents such as Kimi CLI, Claude Code, Roo Code, "
    "Kilo Code, etc."
)
THINKING_TYPES = ("enabled", "disabled")
_MESSAGE_ROLES = ("system", "user", "assistant", "tool")

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """The error envelope of the OpenAI surface (and of the whole platform profile): no top-level `type`."""
    return {"error": {"type": error_type, "message": message}}


def finish_reason(stop_reason: str | None) -> str | None:
    return None if stop_reason is None else _FINISH_REASONS.get(stop_reason, stop_reason)


def payload_problem(payload: Any, efforts: frozenset[str]) -> str | None:
    """Why the service would answer 400 to this body (docs/kimi-api.md §5), or None if it is acceptable.

    `efforts` are the thinking efforts /v1/models lists for the requested model (§5: send only those).
    """
    if not isinstance(payload, dict):
        return "request body must be a JSON object"
    if "max_tokens" in payload:
        return "max_tokens is not supported on this endpoint; use max_completion_tokens"
    if "reasoning_effort" in payload:
        return "reasoning_effort is not supported; use the top-level thinking object"
    if "extra_body" in payload:
        return "unknown field extra_body (thinking and prompt_cache_key belong at the top level)"
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for number, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "developer":
            return f"messages[{number}]: role 'developer' is not supported; use 'system'"
        if role not in _MESSAGE_ROLES:
            return f"messages[{number}]: unknown role {role!r}"
    return _thinking_problem(payload.get("thinking", {"type": "enabled"}), efforts)


def _thinking_problem(thinking: Any, efforts: frozenset[str]) -> str | None:
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
        return f"thinking.type must be one of {', '.join(THINKING_TYPES)}"
    effort = thinking.get("effort")
    if effort is not None and effort not in efforts:
        return f"thinking.effort {effort!r} is not supported by this model"
    return None


def usage_json(reply: Reply, usage: Usage) -> dict[str, Any]:
    """OpenAI-style counts: `prompt_tokens` includes the cached ones; where the cached count goes is an option."""
    cached = usage.cache_read_input_tokens
    prompt = usage.input_tokens + cached
    completion = reply.usage_output_tokens()
    body: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reply.cached_tokens_in_details:
        body["prompt_tokens_details"] = {"cached_tokens": cached}
    else:
        body["cached_tokens"] = cached
    return body


def completion_json(reply: Reply, *, completion_id: str, created: int, model: str, usage: Usage) -> dict[str, Any]:
    """The non-streamed answer: one `chat.completion` object (usage always present, as OpenAI sends it)."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.full_text()}
    if reply.thinking is not None:
        message["reasoning_content"] = reply.thinking
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish_reason(reply.stop_reason)}
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }
    if reply.usage_in_choice:
        choice["usage"] = usage_json(reply, usage)
    else:
        body["usage"] = usage_json(reply, usage)
    return body


def completion_chunks(
    reply: Reply, *, completion_id: str, created: int, model: str, usage: Usage, include_usage: bool
) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a streamed answer, in order (`[DONE]` not included)."""

    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [choice]}  # fmt: skip

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"reasoning_content": piece}) for piece in split_text(reply.thinking or "")]
    chunks += [chunk({"content": piece}) for piece in reply.deltas() if piece]
    if reply.stop_reason is None:
        return chunks  # docs/kimi-api.md §8: a stream may end without any finish_reason
    last = chunk({}, finish_reason(reply.stop_reason))
    chunks.append(last)
    if include_usage:
        counts = usage_json(reply, usage)
        if reply.usage_in_choice:
            last["choices"][0]["usage"] = counts
        elif reply.usage_in_own_chunk:
            chunks.append({**chunk({}), "choices": [], "usage": counts})
        else:
            last["usage"] = counts
    return chunks


DONE_FRAME = b"data: [DONE]\n\n"
PLATFORM_MODEL = "kimi-k2-0905-preview"


def chunk_frames(chunks: list[dict[str, Any]]) -> list[bytes]:
    """`data: <json>\\n\\n` per chunk, then `data: [DONE]` (no `event:` lines on this surface)."""
    frames = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n".encode() for c in chunks]
    return [*frames, DONE_FRAME]


def wants_usage(payload: dict[str, Any]) -> bool:
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def platform_models() -> list[dict[str, Any]]:
    """Models of Moonshot's pay-as-you-go platform (OpenAI-compatible), as its `GET /v1/models` lists them.

    Not the plan's `kimi-for-coding`: other ids, other context lengths, no thinking efforts; the last one lists
    no `context_length` at all, so a client's documented default is what applies to it.
    """

    def model(model_id: str, created: int, context_length: int | None, **extra: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": model_id, "object": "model", "created": created, "owned_by": "moonshot"}
        if context_length is not None:
            entry["context_length"] = context_length
        return entry | extra

    return [
        model(PLATFORM_MODEL, 1757030400, 262144, supports_image_in=False, supports_reasoning=False),
        model("kimi-k2-thinking", 1762214400, 262144, supports_image_in=False, supports_reasoning=True),
        model("moonshot-v1-128k", 1712102400, 131072, supports_image_in=False, supports_reasoning=False),
        model("moonshot-v1-8k", 1712102400, 8192, supports_image_in=False, supports_reasoning=False),
        model("moonshot-v1-auto", 1712102400, None),
    ]
