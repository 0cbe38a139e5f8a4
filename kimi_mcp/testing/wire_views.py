"""Wire-neutral views of the chat requests the fake Kimi recorded, so that one test reads either wire.

A test that runs on both wires (tests/conftest.py's `wire` fixture) asks what a request carried: the system text,
the replayed history, the last user message's text and media, the cache key, without caring whether it went to
`/v1/messages` or `/v1/chat/completions`. The view is the fake's own canonical prompt (fake_cache.py), the form
its emulated prompt cache compares: two requests whose views are equal read the same cached prefix, whichever
wire carried each, and `ChatView.prompt` of an earlier turn is a byte prefix of a later one's when the history was
replayed unchanged.

In a view a message is `{"role": …, "content": [parts]}` and a part is `{"text": t}`, `{"image": url}` or
`{"video": url}` (an inline image as its `data:<mime>;base64,…` URL, an upload as `ms://<id>`), `{"thinking": t}`
or `{"tool_call": …}`; the system text is the header's. What the two wires write differently on purpose (an
`image` block against an `image_url` part, `max_tokens` against `max_completion_tokens`) is not hidden: a test that
checks exact shapes reads `ChatView.body` and says what it expects per wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kimi_mcp.testing.fake_cache import Surface, prompt_bytes
from kimi_mcp.testing.fake_record import RecordedRequest

if TYPE_CHECKING:
    from kimi_mcp.testing.fake_kimi import FakeKimi

Part = dict[str, Any]
_OPENAI_PATH = "/v1/chat/completions"
_MEDIA_KINDS = ("image", "video")


def surface_of(recorded: RecordedRequest) -> Surface:
    """Which chat surface a recorded chat request went to."""
    if recorded.path.endswith(_OPENAI_PATH):
        return "openai"
    if recorded.path.endswith("/v1/messages"):
        return "anthropic"
    raise ValueError(f"{recorded.method} {recorded.path} is not a chat request")


@dataclass(frozen=True)
class ChatView:
    """One chat request as the fake received it, read wire-neutrally."""

    surface: Surface
    body: dict[str, Any]  # the JSON body exactly as sent
    status: int | None  # what the fake answered

    @cached_property
    def prompt(self) -> bytes:
        """The canonical prompt bytes (fake_cache.prompt_bytes): header line, then one line per message."""
        return prompt_bytes(self.body, self.surface)

    @cached_property
    def _lines(self) -> list[Any]:
        return [json.loads(line) for line in self.prompt.split(b"\n")[:-1]]

    @property
    def system(self) -> str | None:
        """The system text, its pieces joined (None when there is none)."""
        texts = self._lines[0]["system"]
        return "".join(texts) if texts else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message after the system text, in order: the history, then the new user turn."""
        return self._lines[1:]

    @property
    def history(self) -> list[dict[str, Any]]:
        """The messages before the last one: the earlier turns this request replayed."""
        return self.messages[:-1]

    @property
    def last_user(self) -> list[Part]:
        """The parts of the last user message."""
        users = [message for message in self.messages if message["role"] == "user"]
        return users[-1]["content"] if users else []

    @property
    def last_user_text(self) -> str:
        return "".join(part["text"] for part in self.last_user if "text" in part)

    @property
    def last_user_media(self) -> list[Part]:
        """The image and video parts of the last user message, in order."""
        return [part for part in self.last_user if _is_media(part)]

    @property
    def media_urls(self) -> list[str]:
        """The URL of every image and video part of the whole request, history included, in order."""
        return [url for message in self.messages for part in message["content"] for url in _media_url(part)]

    def texts(self, role: str) -> list[str]:
        """The text of each message of `role`, its text parts joined."""
        return ["".join(p["text"] for p in m["content"] if "text" in p) for m in self.messages if m["role"] == role]

    @property
    def cache_key(self) -> str | None:
        """The top-level `prompt_cache_key`, which both wires send (docs/kimi-api.md §6)."""
        return self.body.get("prompt_cache_key")


def chat_view(recorded: RecordedRequest) -> ChatView:
    return ChatView(surface_of(recorded), recorded.json(), recorded.status)


def chat_views(fake: FakeKimi) -> list[ChatView]:
    """Every chat request of both surfaces, in arrival order."""
    return [chat_view(recorded) for recorded in fake.chat_requests()]


def answered_views(fake: FakeKimi) -> list[ChatView]:
    """The chat requests the fake answered with 200, in arrival order."""
    return [view for view in chat_views(fake) if view.status == 200]


def _is_media(part: Part) -> bool:
    return any(kind in part for kind in _MEDIA_KINDS)


def _media_url(part: Part) -> list[str]:
    return [part[kind] for kind in _MEDIA_KINDS if kind in part]
