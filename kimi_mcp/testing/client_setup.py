"""Settings and requests for a `KimiClient` pointed at a `FakeKimi`, shared by the client tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import DEFAULT_API_KEY, DEFAULT_MODEL, FakeKimi


def settings_for(fake: FakeKimi, home: Path, **extra: str) -> Settings:
    """Settings with the fake's API key and base URL, `home` as KIMI_MCP_HOME, and `extra` env values."""
    env = {"KIMI_API_KEY": DEFAULT_API_KEY, "KIMI_CODE_BASE_URL": fake.base_url, "KIMI_MCP_HOME": str(home), **extra}
    return Settings.from_env(env)


def ask(text: str = "What is 2+2?", **fields: Any) -> ChatRequest:
    """A one-question request for the fake's model; `fields` set other `ChatRequest` fields."""
    message = Message(role="user", content=[TextBlock(text=text)])
    return ChatRequest(model=DEFAULT_MODEL, messages=[message], **fields)
