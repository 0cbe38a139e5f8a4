"""Conversations through a real `mcp.Client`: continuation, the prompt cache, output sizing, cancellation,
stream cleaning and thinking (issue: conversations that continue and stay cached).

The behaviour tests run on both wires (the `wire` fixture, tests/conftest.py) and read what was sent through
kimi_mcp/testing/wire_views.py; the thinking bodies are the Anthropic wire's exact shapes (the OpenAI wire's are
in tests/kimi/test_openai_wire.py)."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import anyio
import pytest
from mcp import Client

from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi, Reply
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, text_of
from kimi_mcp.testing.wire_views import chat_views

pytestmark = pytest.mark.anyio
PLACEHOLDER = "(Empty response: {'content': [{'type': 'thinking'}]})"


def server_for(env: dict[str, str], **extra: str) -> Any:
    return build_server(Settings.from_env({**env, **extra}))


async def test_ten_turns_read_almost_all_of_the_previous_prompt_from_the_cache(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    system = "You review Python code carefully. " * 400  # ~14 KB: a realistic long system prompt
    outputs = []
    async with Client(server_for(kimi_env), mode="legacy") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "Turn 1: " + "context " * 300, "system": system})
        outputs.append(chat_meta(first))
        conversation_id = chat_meta(first)["conversation_id"]
        for turn in range(2, 11):
            result = await client.call_tool(
                "kimi_chat", {"prompt": f"Turn {turn}: and now?", "conversation_id": conversation_id}
            )
            assert not result.is_error, text_of(result)
            outputs.append(chat_meta(result))
    shares = []
    for previous, current in itertools.pairwise(outputs):
        previous_prompt = previous["usage"]["input_tokens"] + previous["usage"]["cache_read_tokens"]
        shares.append(current["usage"]["cache_read_tokens"] / previous_prompt)
    print("cache-read share of the previous prompt, turns 2-10:", [round(x, 3) for x in shares])
    assert min(shares) >= 0.9, shares
    assert [o["turn"] for o in outputs] == list(range(1, 11))
    assert outputs[-1]["cache_hit_ratio"] > 0.9
    views = chat_views(fake_kimi)
    assert len(views) == 10 and {view.cache_key for view in views} == {conversation_id}


async def test_cache_retention_none_sends_no_cache_key(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    for variable in ("KIMI_MCP_CACHE_RETENTION", "PI_CACHE_RETENTION"):
        async with Client(server_for(kimi_env, **{variable: "none"}), mode="legacy") as client:
            result = await client.call_tool("kimi_chat", {"prompt": "no cache"})
        assert not result.is_error and chat_meta(result)["conversation_id"]
    sent = [r.json() for r in fake_kimi.chat_requests()]
    assert len(sent) == 2 and all("prompt_cache_key" not in body and "metadata" not in body for body in sent)


async def test_history_is_replayed_byte_identically(wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    async with Client(server_for(kimi_env), mode="auto") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "one", "system": "be brief"})
        cid = chat_meta(first)["conversation_id"]
        await client.call_tool("kimi_chat", {"prompt": "two", "conversation_id": cid, "system": "ignored"})
        await client.call_tool("kimi_chat", {"prompt": "three", "conversation_id": cid})
    second, third = (r.json()["messages"] for r in fake_kimi.chat_requests()[1:])
    # Byte for byte as sent: turn 3 carries turn 1 (and, on the OpenAI wire, the system message) as turn 2 did.
    replayed = 2 if wire == "anthropic" else 3
    assert json.dumps(third[:replayed]) == json.dumps(second[:replayed])
    views = chat_views(fake_kimi)
    assert [view.system for view in views] == ["be brief"] * 3
    assert views[1].prompt.startswith(views[0].prompt) and views[2].prompt.startswith(views[1].prompt)
    assert views[2].texts("user") == ["one", "two", "three"]
    assert views[2].texts("assistant") == ["Fake Kimi reply to: one", "Fake Kimi reply to: two"]


async def test_long_reply_is_cut_and_stays_whole_in_the_resource(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    paragraphs = [f"Paragraph {i}: " + "é word " * 60 for i in range(40)]
    full = "\n\n".join(paragraphs) + "\n"
    fake_kimi.script(Reply(text=full))
    async with Client(server_for(kimi_env), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "long please", "max_output_chars": 2000})
        out = chat_meta(result)
        shown = reply_of(result)
        links = [block for block in result.content if block.type == "resource_link"]
        turn = await client.read_resource(f"{out['full_text_uri']}/turns/1")
        transcript = await client.read_resource(out["full_text_uri"])
        listing = json.loads((await client.read_resource("kimi://conversations")).contents[0].text)
    assert out["truncated"] is True and len(shown) <= 2000 and out["shown_chars"] == len(shown)
    assert out["full_chars"] == len(full)
    assert full.startswith(shown) and shown.endswith(("word", "é"))
    assert "truncated" in text_of(result) and out["full_text_uri"] in text_of(result)
    assert [str(link.uri) for link in links] == [out["full_text_uri"]]
    assert turn.contents[0].text.encode() == full.encode()
    assert full in transcript.contents[0].text
    assert listing["conversations"][0]["id"] == out["conversation_id"]
    assert listing["conversations"][0]["first_prompt_line"] == "long please"


@pytest.mark.parametrize("split", ["whole", "every-position"])
async def test_placeholder_never_shows_in_progress_or_result(
    split: str, wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    cuts = [[PLACEHOLDER]] if split == "whole" else [[PLACEHOLDER[:i], PLACEHOLDER[i:]] for i in range(1, 54)]
    async with Client(server_for(kimi_env), mode="legacy") as client:
        for deltas in cuts:
            fake_kimi.script(Reply(thinking="thinking hard", text=PLACEHOLDER, text_deltas=deltas))
            result = await client.call_tool("kimi_chat", {"prompt": "q"})
            assert not result.is_error
            assert "Empty response" not in json.dumps(result.model_dump())
            assert chat_meta(result)["shown_chars"] == 0
            assert chat_meta(result)["note"] and reply_of(result) == f"({chat_meta(result)['note']})"


async def test_text_that_merely_starts_like_the_placeholder_is_kept(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fake_kimi.script(Reply(text="(Empty set) is the answer.", text_deltas=["(Emp", "ty set) is", " the answer."]))
    async with Client(server_for(kimi_env), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "q"})
    assert reply_of(result) == "(Empty set) is the answer."


# The MCP era and the upstream wire are independent layers: each era on the default wire, the OpenAI wire once.
@pytest.mark.parametrize(("mode", "wire"), [("auto", "anthropic"), ("legacy", "anthropic"), ("auto", "openai")])
async def test_cancelling_a_call_closes_the_upstream_stream_fast(
    mode: str, wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fake_kimi.script(Reply(text="x" * 400, delay=0.2))  # ~4 s of stream
    async with Client(server_for(kimi_env), mode=mode) as client:
        cancelled_at = 0.0
        with anyio.move_on_after(1.0):
            await client.call_tool("kimi_chat", {"prompt": "slow"})
        cancelled_at = time.monotonic()
        with anyio.fail_after(5):
            while fake_kimi.chat_requests()[0].disconnected_at is None:  # noqa: ASYNC110 - set by the fake's thread
                await anyio.sleep(0.01)
        after = await client.call_tool("kimi_chat", {"prompt": "next"})
        listing = json.loads((await client.read_resource("kimi://conversations")).contents[0].text)
    upstream = fake_kimi.chat_requests()[0]
    assert upstream.disconnected_at is not None and not upstream.completed
    # Well before the ~3 s the stream had left: the cancellation closed it, the stream did not just end (and
    # `completed` is False). Not tighter: a loaded CI machine delays the fake's thread noticing the close.
    assert upstream.disconnected_at - cancelled_at < 2.0
    assert not after.is_error and reply_of(after) == "Fake Kimi reply to: next"
    assert [c["first_prompt_line"] for c in listing["conversations"]] == ["next"]  # the cancelled turn is not stored


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("off", {"thinking": {"type": "disabled"}}),  # explicit: the service may think by default (issue 7)
        ("low", {"thinking": {"type": "enabled"}, "output_config": {"effort": "low"}}),
        ("high", {"thinking": {"type": "enabled"}, "output_config": {"effort": "high"}}),
        ("max", {"thinking": {"type": "enabled"}, "output_config": {"effort": "max"}}),
    ],
)
async def test_thinking_levels_give_the_exact_bodies(
    level: str, expected: dict[str, Any], kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    async with Client(server_for(kimi_env), mode="legacy") as client:
        await client.call_tool("kimi_chat", {"prompt": "q", "thinking": level})
    body = fake_kimi.messages_requests()[0].json()
    assert {k: body[k] for k in ("thinking", "output_config") if k in body} == expected
    assert "reasoning_effort" not in body


async def test_efforts_not_listed_by_the_model_fall_back_to_enabled(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fake_kimi.models[0]["think_efforts"] = {"valid_efforts": [], "default_effort": None}
    async with Client(server_for(kimi_env), mode="legacy") as client:
        await client.call_tool("kimi_chat", {"prompt": "q", "thinking": "high"})
    body = fake_kimi.messages_requests()[0].json()
    assert body["thinking"] == {"type": "enabled"} and "output_config" not in body


async def test_include_thinking_returns_it_in_meta_only(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fake_kimi.script(Reply(thinking="secret reasoning", text="answer"), Reply(thinking="more reasoning", text="b"))
    async with Client(server_for(kimi_env), mode="legacy") as client:
        shown = await client.call_tool("kimi_chat", {"prompt": "q", "thinking": "high", "include_thinking": True})
        hidden = await client.call_tool("kimi_chat", {"prompt": "q", "thinking": "high"})
    assert chat_meta(shown)["thinking"] == "secret reasoning"
    assert "secret reasoning" not in text_of(shown)
    assert chat_meta(hidden)["thinking"] is None


async def test_bad_resource_addresses_get_readable_errors(kimi_env: dict[str, str]) -> None:
    async with Client(server_for(kimi_env), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "q"})
        uri = chat_meta(result)["full_text_uri"]
        messages = []
        for address in (f"{uri}/turns/abc", f"{uri}/turns/2", "kimi://conversations/kc_ffffffffffffffff"):
            with pytest.raises(Exception) as err:
                await client.read_resource(address)
            messages.append(str(err.value))
    assert "no turn 'abc'" in messages[0] and "no turn '2'" in messages[1]
    assert "No conversation with id" in messages[2] and "kimi://conversations resource" in messages[2]
