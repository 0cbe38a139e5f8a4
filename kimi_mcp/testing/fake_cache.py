"""The fake's prompt cache: content-prefix hits in 256-token chunks, whatever the cache key (docs/kimi-api.md §6).

The service's cache is shared by its two surfaces (§6): a conversation sent on /v1/messages and continued on
/v1/chat/completions hits the cache as long as its content is the same. So the cache works on a wire-neutral
canonical form of the prompt, and an Anthropic request and the equivalent OpenAI request give the same bytes.

Tokens are counted crudely (4 bytes ≈ 1 token) over a serialisation built so that appending a message to the
history only appends bytes: a header line `{"system": [texts] | null, "tools": [tools] | null}`, then one line per
message `{"role": …, "content": [parts]}` (plus `"tool_call_id"` for a tool result), all canonical JSON (sorted
keys, no spaces). A change to the system text or the tools changes the first bytes and invalidates everything.

The mapping, canonical ← Anthropic /v1/messages | OpenAI /v1/chat/completions:

- header `system` ← `system` (a string, or the texts of its text blocks)
  | the texts of every `system` message before the first message of another role;
- header `tools`, each `{name, description, parameters}` ← `{name, description, input_schema}`
  | `{type: function, function: {name, description, parameters}}`;
- part `{"text": t}` ← a string content, or a `text` block | a string content, or a `text` part;
- part `{"image": url}` ← an `image` block whose source is `url` (`ms://…`) or `base64` (written as the data URL
  `data:<media_type>;base64,<data>`) | an `image_url` part's `image_url.url` (or `image_url` as a bare string);
- part `{"video": url}` ← a `video` block (same sources) | a `video_url` part;
- part `{"thinking": t}`, only when t is not empty ← an assistant turn's `thinking` block
  | an assistant message's `reasoning_content`, placed first;
- part `{"tool_call": {id, name, arguments}}` ← a `tool_use` block (`input`)
  | a `tool_calls[]` entry (`function.arguments`, parsed when it is JSON);
- message `{"role": "tool", "tool_call_id": id, "content": [parts]}` ← a `tool_result` block, split out of its
  user message in place | a `tool` message;
- any other part ← kept whole under `{"other": …}` | the same.

Keys the cache cannot see (`cache_control`, a thinking block's `signature`, a tool_result's `is_error`) are left out.
A `system` message after the first non-system message stays a message (role `system`): Anthropic has no such thing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Literal

from kimi_mcp.testing.fake_script import Usage

BYTES_PER_TOKEN = 4
CHUNK_TOKENS = 256
CHUNK_BYTES = CHUNK_TOKENS * BYTES_PER_TOKEN

Surface = Literal["anthropic", "openai"]
Part = dict[str, Any]


def prompt_bytes(request: dict[str, Any], surface: Surface = "anthropic") -> bytes:
    """The byte-stable, wire-neutral serialisation of a request's prompt: header line, then one line per message."""
    system, tools, messages = _canonical_openai(request) if surface == "openai" else _canonical_anthropic(request)
    lines = [_canonical({"system": system or None, "tools": tools or None})]
    lines += [_canonical(message) for message in messages]
    return b"".join(line + b"\n" for line in lines)


def token_count(data: bytes) -> int:
    return -(-len(data) // BYTES_PER_TOKEN)


class PromptCache:
    """A global, thread-safe store of chunk-aligned prompt prefixes (no TTL: tests are shorter than 5 min)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefixes: set[bytes] = set()

    def use(self, request: dict[str, Any], surface: Surface = "anthropic") -> Usage:
        """Report the longest cached prefix of this prompt, then cache all of its chunk-aligned prefixes."""
        data = prompt_bytes(request, surface)
        digests = _prefix_digests(data)
        with self._lock:
            hit_chunks = next((n for n in range(len(digests), 0, -1) if digests[n - 1] in self._prefixes), 0)
            self._prefixes.update(digests)
        cached = hit_chunks * CHUNK_TOKENS
        # Anthropic semantics: input_tokens excludes what was read from the cache (fake_openai.py adds it back).
        return Usage(input_tokens=token_count(data) - cached, cache_read_input_tokens=cached)

    def reset(self) -> None:
        with self._lock:
            self._prefixes.clear()


# -- Anthropic ------------------------------------------------------------------------------------------------


def _canonical_anthropic(request: dict[str, Any]) -> tuple[list[str], list[Any], list[dict[str, Any]]]:
    system = request.get("system")
    texts = [system] if isinstance(system, str) and system else _texts(system)
    tools = [_anthropic_tool(tool) for tool in _list(request.get("tools"))]
    messages: list[dict[str, Any]] = []
    for message in _list(request.get("messages")):
        messages += _anthropic_message(message) if isinstance(message, dict) else [{"other": message}]
    return texts, tools, messages


def _anthropic_tool(tool: Any) -> Any:
    if not isinstance(tool, dict) or "name" not in tool:
        return tool
    return {"name": tool["name"], "description": tool.get("description"), "parameters": tool.get("input_schema")}


def _anthropic_message(message: dict[str, Any]) -> list[dict[str, Any]]:
    """One message, or several: each tool_result block becomes a `tool` message of its own, in place."""
    role, content = message.get("role"), message.get("content")
    if not isinstance(content, list):
        return [{"role": role, "content": _string_parts(content)}]
    out: list[dict[str, Any]] = []
    parts: list[Part] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            if parts:
                out.append({"role": role, "content": parts})
                parts = []
            result = block.get("content")
            result_parts = [p for b in _list(result) for p in _anthropic_part(b)] if isinstance(result, list) else None
            tool_content = result_parts if result_parts is not None else _string_parts(result)
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": tool_content})
        else:
            parts += _anthropic_part(block)
    if parts or not out:
        out.append({"role": role, "content": parts})
    return out


def _anthropic_part(block: Any) -> list[Part]:
    if not isinstance(block, dict):
        return [{"other": block}]
    kind = block.get("type")
    if kind == "text":
        return [{"text": block.get("text")}]
    if kind in ("image", "video"):
        return [{kind: _source_url(block.get("source"))}]
    if kind == "thinking":
        return [{"thinking": block["thinking"]}] if block.get("thinking") else []
    if kind == "redacted_thinking":
        return []
    if kind == "tool_use":
        return [{"tool_call": {"id": block.get("id"), "name": block.get("name"), "arguments": block.get("input")}}]
    return [{"other": {k: v for k, v in block.items() if k != "cache_control"}}]


def _source_url(source: Any) -> Any:
    if isinstance(source, dict) and source.get("type") == "url":
        return source.get("url")
    if isinstance(source, dict) and source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    return {"other": source}


# -- OpenAI ---------------------------------------------------------------------------------------------------


def _canonical_openai(request: dict[str, Any]) -> tuple[list[str], list[Any], list[dict[str, Any]]]:
    messages = _list(request.get("messages"))
    leading = 0
    while leading < len(messages) and isinstance(messages[leading], dict) and messages[leading].get("role") == "system":
        leading += 1
    system = [text for message in messages[:leading] for text in _openai_texts(message.get("content"))]
    tools = [_openai_tool(tool) for tool in _list(request.get("tools"))]
    rest = [_openai_message(m) if isinstance(m, dict) else {"other": m} for m in messages[leading:]]
    return system, tools, rest


def _openai_texts(content: Any) -> list[str]:
    return [content] if isinstance(content, str) and content else _texts(content)


def _openai_tool(tool: Any) -> Any:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or "name" not in function:
        return tool
    return {
        "name": function["name"],
        "description": function.get("description"),
        "parameters": function.get("parameters"),
    }


def _openai_message(message: dict[str, Any]) -> dict[str, Any]:
    role, content = message.get("role"), message.get("content")
    parts: list[Part] = []
    if reasoning := message.get("reasoning_content"):
        parts.append({"thinking": reasoning})
    if isinstance(content, list):
        parts += [_openai_part(part) for part in content]
    elif content is not None:
        parts += _string_parts(content)
    parts += [_openai_tool_call(call) for call in _list(message.get("tool_calls"))]
    out: dict[str, Any] = {"role": role, "content": parts}
    if role == "tool":
        out["tool_call_id"] = message.get("tool_call_id")
    return out


def _openai_part(part: Any) -> Part:
    if not isinstance(part, dict):
        return {"other": part}
    kind = part.get("type")
    if kind == "text":
        return {"text": part.get("text")}
    if kind in ("image_url", "video_url"):
        value = part.get(kind)
        url = value.get("url") if isinstance(value, dict) else value
        return {kind.removesuffix("_url"): url}
    return {"other": part}


def _openai_tool_call(call: Any) -> Part:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return {"other": call}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # not JSON: kept as the string it is
    return {"tool_call": {"id": call.get("id"), "name": function.get("name"), "arguments": arguments}}


# -- shared ---------------------------------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _texts(blocks: Any) -> list[str]:
    """The texts of a list of `{type: text, text}` blocks or parts."""
    return [str(b.get("text", "")) for b in _list(blocks) if isinstance(b, dict) and b.get("type") == "text"]


def _string_parts(content: Any) -> list[Part]:
    return [{"text": content}] if isinstance(content, str) else [{"other": content}] if content is not None else []


def _prefix_digests(data: bytes) -> list[bytes]:
    """Digests of data[:1024], data[:2048], … — hashed incrementally, so linear in the prompt size."""
    hasher = hashlib.blake2b(digest_size=16)
    digests = []
    for end in range(CHUNK_BYTES, len(data) + 1, CHUNK_BYTES):
        hasher.update(data[end - CHUNK_BYTES : end])
        digests.append(hasher.copy().digest())
    return digests


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
