"""What we send and read on the Anthropic wire matches Moonshot's own client (docs/kimi-api.md §4, §5, §6, §8).

Bodies and headers are checked as the fake Kimi received them over real HTTP, so whatever the `anthropic` SDK
adds or reorders on the way is part of what is checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.client_setup import ask, settings_for
from kimi_mcp.testing.fake_kimi import FakeKimi, Reply
from kimi_mcp.testing.mcp_results import chat_meta, text_of

pytestmark = pytest.mark.anyio
KEY = "sk-kimi-test-key"


_THINKING = {
    "off": {"thinking": {"type": "disabled"}},
    "low": {"thinking": {"type": "enabled"}, "output_config": {"effort": "low"}},
    "high": {"thinking": {"type": "enabled"}, "output_config": {"effort": "high"}},
    "max": {"thinking": {"type": "enabled"}, "output_config": {"effort": "max"}},
}


@pytest.mark.parametrize("level", ["off", "low", "high", "max"])
async def test_thinking_levels_give_exactly_these_bodies(fake_kimi: FakeKimi, tmp_path: Path, level: str) -> None:
    request = ask("q", thinking=level, max_output_tokens=1000, cache_key="kc_0123456789abcdef")
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        await kimi.chat(request)
    [sent] = fake_kimi.messages_requests()
    assert sent.json() == {
        "model": "kimi-for-coding",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
        "max_tokens": 1000,
        "stream": True,
        **_THINKING[level],
        "metadata": {"user_id": "kc_0123456789abcdef"},
        "prompt_cache_key": "kc_0123456789abcdef",
    }


async def test_effort_needs_the_models_support_flag(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    fake_kimi.models[0]["think_efforts"]["support"] = False
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        await kimi.chat(ask(thinking="high"))
        assert (await kimi.models())[0].efforts == []
    body = fake_kimi.messages_requests()[0].json()
    assert body["thinking"] == {"type": "enabled"} and "output_config" not in body


async def test_anthropic_version_is_pinned_to_2023_06_01(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        await kimi.chat(ask())
        await kimi.chat(ask(thinking="high"))
    for sent in fake_kimi.messages_requests():
        assert sent.headers["anthropic-version"] == "2023-06-01"


async def test_cache_hits_counted_when_totals_come_only_in_message_delta(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    long_text = "x" * 20_000
    fake_kimi.script(Reply(text="one", usage_in_delta=True), Reply(text="two", usage_in_delta=True))
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        first = await kimi.chat(ask(long_text))
        second = await kimi.chat(ask(long_text))
    assert first.usage.cache_read_tokens == 0 and first.usage.input_tokens > 4000
    assert second.usage.cache_read_tokens >= 4096  # zero in message_start, the total in message_delta
    assert second.usage.prompt_tokens == first.usage.prompt_tokens
    assert second.usage.output_tokens > 0


async def test_conversation_key_is_metadata_user_id_and_absent_when_caching_is_off(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    async with Client(build_server(Settings.from_env(kimi_env)), mode="legacy") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "one"})
        assert not first.is_error, text_of(first)
        conversation_id = chat_meta(first)["conversation_id"]
        second = await client.call_tool("kimi_chat", {"prompt": "two", "conversation_id": conversation_id})
        assert not second.is_error, text_of(second)
    cached = [r.json() for r in fake_kimi.messages_requests()]
    assert len(cached) == 2
    for body in cached:
        assert body["metadata"] == {"user_id": conversation_id}
        assert body["prompt_cache_key"] == conversation_id

    off = Settings.from_env({**kimi_env, "KIMI_MCP_CACHE_RETENTION": "none"})
    async with Client(build_server(off), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "no cache"})
        assert not result.is_error, text_of(result)
    uncached = fake_kimi.messages_requests()[2].json()
    assert "metadata" not in uncached and "prompt_cache_key" not in uncached
