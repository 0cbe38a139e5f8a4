"""The fake's prompt cache: content-prefix hits in 256-token chunks, whatever the cache key (docs/kimi-api.md §6).

Tokens are counted crudely (4 bytes ≈ 1 token) over a serialisation built so that appending a message to the
history only appends bytes: the canonical JSON of `{system, tools}`, then of each message, each on its own line.
A change to `system` or `tools` therefore changes the first bytes and invalidates everything, as on the service.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from kimi_mcp.testing.fake_script import Usage

BYTES_PER_TOKEN = 4
CHUNK_TOKENS = 256
CHUNK_BYTES = CHUNK_TOKENS * BYTES_PER_TOKEN


def prompt_bytes(request: dict[str, Any]) -> bytes:
    """The byte-stable serialisation of a request's prompt: header line, then one line per message."""
    lines = [_canonical({"system": request.get("system"), "tools": request.get("tools")})]
    lines += [_canonical(message) for message in request.get("messages") or []]
    return b"".join(line + b"\n" for line in lines)


def token_count(data: bytes) -> int:
    return -(-len(data) // BYTES_PER_TOKEN)


class PromptCache:
    """A global, thread-safe store of chunk-aligned prompt prefixes (no TTL: tests are shorter than 5 min)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefixes: set[bytes] = set()

    def use(self, request: dict[str, Any]) -> Usage:
        """Report the longest cached prefix of this prompt, then cache all of its chunk-aligned prefixes."""
        data = prompt_bytes(request)
        digests = _prefix_digests(data)
        with self._lock:
            hit_chunks = next((n for n in range(len(digests), 0, -1) if digests[n - 1] in self._prefixes), 0)
            self._prefixes.update(digests)
        cached = hit_chunks * CHUNK_TOKENS
        # Anthropic semantics: input_tokens excludes what was read from the cache.
        return Usage(input_tokens=token_count(data) - cached, cache_read_input_tokens=cached)

    def reset(self) -> None:
        with self._lock:
            self._prefixes.clear()


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
