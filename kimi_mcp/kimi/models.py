"""Wire-neutral chat data: what a conversation holds and what a chat call takes and returns.

A user turn holds content blocks: text, and images or videos (an `ms://` reference or, for a small image, inline
base64). Each wire module turns these into its own JSON.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from kimi_mcp.settings import ThinkingLevel


class TextBlock(BaseModel):
    model_config = ConfigDict(frozen=True)
    type: Literal["text"] = "text"
    text: str


class UrlSource(BaseModel):
    """A file Kimi holds: `ms://<id>` from the Files API (docs/kimi-api.md §7)."""

    model_config = ConfigDict(frozen=True)
    type: Literal["url"] = "url"
    url: str


class Base64Source(BaseModel):
    """A small image sent inline (under KIMI_CODE_UPLOAD_THRESHOLD_BYTES)."""

    model_config = ConfigDict(frozen=True)
    type: Literal["base64"] = "base64"
    media_type: str
    data: str


MediaSource = Annotated[UrlSource | Base64Source, Field(discriminator="type")]


class ImageBlock(BaseModel):
    model_config = ConfigDict(frozen=True)
    type: Literal["image"] = "image"
    source: MediaSource


class VideoBlock(BaseModel):
    """Videos always travel as uploads: the source is an `ms://` url (docs/kimi-api.md §7)."""

    model_config = ConfigDict(frozen=True)
    type: Literal["video"] = "video"
    source: MediaSource


# Field order and names are the Anthropic wire's own, so `model_dump` gives its JSON; other wires map them.
ContentBlock = Annotated[TextBlock | ImageBlock | VideoBlock, Field(discriminator="type")]
MediaBlock = ImageBlock | VideoBlock


class Message(BaseModel):
    """One message of the history sent to Kimi."""

    model_config = ConfigDict(frozen=True)
    role: Literal["user", "assistant"]
    content: list[ContentBlock]


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """All tokens of the prompt: the fresh ones plus those read from the cache."""
        return self.input_tokens + self.cache_read_tokens

    @property
    def cache_hit_ratio(self) -> float:
        total = self.prompt_tokens
        return round(self.cache_read_tokens / total, 4) if total else 0.0


class ChatRequest(BaseModel):
    model_config = ConfigDict(frozen=True)
    model: str
    messages: list[Message]
    system: str | None = None
    thinking: ThinkingLevel = "off"
    max_output_tokens: int | None = None
    cache_key: str | None = None


class ChatResult(BaseModel):
    text: str
    model: str
    stop_reason: str
    usage: Usage
    thinking: str | None = None
    note: str | None = None


class StreamProgress(BaseModel):
    """What a streaming call has produced so far; handed to the caller's progress callback."""

    # "queued": waiting for one of the KIMI_MCP_MAX_CONCURRENCY slots before anything is sent.
    phase: Literal["queued", "waiting", "thinking", "answering"]
    new_text: str = ""  # the answer text shown since the previous callback (for printing as it streams)
    text_chars: int = 0
    thinking_chars: int = 0
    output_tokens: int = 0
