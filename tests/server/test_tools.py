"""kimi_chat and kimi_login_status through a real `mcp.Client` (in memory), in both protocol eras.

The chat, truncation and error tests run on both wires too (the `wire` fixture, tests/conftest.py)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import anyio
import pytest
from mcp import Client

from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, Reply
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, status_of, text_of
from kimi_mcp.testing.wire_views import chat_views

pytestmark = pytest.mark.anyio
MODES = pytest.mark.parametrize("mode", ["auto", "legacy"])
# The MCP era and the upstream wire are independent layers: each era on the default wire, the OpenAI wire once.
MODES_AND_WIRES = pytest.mark.parametrize(
    ("mode", "wire"), [("auto", "anthropic"), ("legacy", "anthropic"), ("auto", "openai")]
)


def server_for(env: dict[str, str], **extra: str) -> Any:
    return build_server(Settings.from_env({**env, **extra}))


@MODES_AND_WIRES
async def test_kimi_chat_returns_the_reply_as_text_and_its_fields_in_meta(
    mode: str, wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    async with Client(server_for(kimi_env), mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("kimi_chat", {"prompt": "Review this diff"})
    assert names == {"kimi_chat", "kimi_upload_media", "kimi_login_status"}
    assert not result.is_error
    out = chat_meta(result)
    assert result.structured_content is None
    assert [block.type for block in result.content] == ["text"]
    assert (
        text_of(result)
        == f"Fake Kimi reply to: Review this diff\n\n[conversation_id: {out['conversation_id']} · turn 1]"
    )
    assert out["model"] == "kimi-for-coding" and out["stop_reason"] == "end_turn"
    assert {k: type(v) for k, v in out["usage"].items()} == {
        "input_tokens": int,
        "output_tokens": int,
        "cache_read_tokens": int,
    }
    assert out["usage"]["output_tokens"] > 0
    assert out["turn"] == 1 and out["truncated"] is False and isinstance(out["cache_hit_ratio"], float)
    assert out["full_text_uri"] == f"kimi://conversations/{out['conversation_id']}"
    assert out["turn_uri"] == f"kimi://conversations/{out['conversation_id']}/turns/1"
    assert out["shown_chars"] == out["full_chars"] == len("Fake Kimi reply to: Review this diff")
    assert out["thinking"] is None and out["note"] is None
    [sent] = chat_views(fake_kimi)
    assert sent.cache_key == out["conversation_id"] and sent.last_user_text == "Review this diff"


async def test_tool_schema_and_annotations_tell_the_agent_what_it_gets(kimi_env: dict[str, str]) -> None:
    async with Client(server_for(kimi_env), mode="legacy") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    chat = tools["kimi_chat"]
    assert chat.annotations is not None and chat.annotations.read_only_hint and chat.annotations.open_world_hint
    assert "ONLY what you put" in (chat.description or "")
    assert set(chat.input_schema["properties"]) >= {"prompt", "system", "conversation_id", "thinking"}
    assert chat.input_schema["required"] == ["prompt"]
    assert chat.output_schema is None  # Gemini CLI errors on a declared schema without structuredContent
    assert chat.meta == {"anthropic/maxResultSizeChars": 50_000}  # the default cap plus footer is under 50,000
    assert tools["kimi_login_status"].output_schema is None


@MODES
async def test_without_credentials_kimi_chat_explains_how_to_log_in(
    mode: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"}
    async with Client(server_for(env), mode=mode) as client:
        result = await client.call_tool("kimi_chat", {"prompt": "hi"})
        status = await client.call_tool("kimi_login_status", {})
    assert result.is_error
    message = text_of(result)
    assert message.startswith("Error: No Kimi credentials are configured.")
    assert "KIMI_API_KEY" in message and "log" in message.lower()
    assert fake_kimi.oauth_host in message  # the device-login URL is in the text
    assert fake_kimi.messages_requests() == []
    assert status_of(status)["logged_in"] is False
    assert status_of(status)["method"] == "none"
    assert json.loads(text_of(status)) == status_of(status)


@MODES_AND_WIRES
async def test_upstream_500_is_a_readable_error_and_the_next_call_works(
    mode: str, wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fake_kimi.script(*[Fault(status=500, retry_after=0.01)] * 3)
    async with Client(server_for(kimi_env), mode=mode) as client:
        failed = await client.call_tool("kimi_chat", {"prompt": "first"})
        worked = await client.call_tool("kimi_chat", {"prompt": "second"})
    assert failed.is_error
    assert "Kimi could not answer" in text_of(failed) and "try again" in text_of(failed)
    assert not worked.is_error and reply_of(worked) == "Fake Kimi reply to: second"
    assert [r.status for r in fake_kimi.chat_requests()] == [500, 500, 500, 200]


async def test_bad_arguments_are_a_readable_error(kimi_env: dict[str, str]) -> None:
    async with Client(server_for(kimi_env), mode="legacy") as client:
        empty = await client.call_tool("kimi_chat", {"prompt": ""})
        wrong = await client.call_tool("kimi_chat", {"prompt": "x", "thinking": "extreme"})
        unknown = await client.call_tool("kimi_chat", {"prompt": "x", "conversation_id": "kc_0000000000000000"})
        boolean = await client.call_tool("kimi_chat", {"prompt": "x", "max_output_tokens": True})
        still = await client.call_tool("kimi_chat", {"prompt": "still serving"})
    assert empty.is_error and "prompt" in text_of(empty) and "at least 1 character" in text_of(empty)
    assert wrong.is_error and "thinking" in text_of(wrong) and "'off', 'low', 'high' or 'max'" in text_of(wrong)
    assert boolean.is_error and "max_output_tokens must be a whole number from 1 to 262144" in text_of(boolean)
    for refused in (empty, wrong, boolean):  # no pydantic report: no URL, no type codes
        assert "pydantic.dev" not in text_of(refused) and "input_value" not in text_of(refused)
    assert unknown.is_error and "kimi://conversations" in text_of(unknown)
    assert not still.is_error


@MODES_AND_WIRES
async def test_progress_arrives_during_a_slow_stream(
    mode: str, wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fake_kimi.script(Reply(text="slow " * 40, text_deltas=["slow "] * 40, delay=0.05))
    updates: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, message))

    async with Client(server_for(kimi_env), mode=mode) as client:
        result = await client.call_tool("kimi_chat", {"prompt": "go slowly"}, progress_callback=on_progress)
    assert not result.is_error
    assert len(updates) >= 2
    values = [value for value, _ in updates]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert any(message and "chars" in message for _, message in updates)


async def test_heartbeat_keeps_progress_coming_while_kimi_is_silent(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kimi_mcp.server.progress.HEARTBEAT_SECONDS", 0.1)
    fake_kimi.script(Reply(text="ok", delay=0.4))  # ~6 events, 0.4 s apart: silence the heartbeat must fill
    stamps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        stamps.append(anyio.current_time())

    async with Client(server_for(kimi_env), mode="legacy") as client:
        await client.call_tool("kimi_chat", {"prompt": "think"}, progress_callback=on_progress)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) >= 10 and max(gaps) < 0.3


async def test_login_status_never_shows_the_key(kimi_env: dict[str, str]) -> None:
    async with Client(server_for(kimi_env), mode="legacy") as client:
        result = await client.call_tool("kimi_login_status", {})
    status = status_of(result)
    assert json.loads(text_of(result)) == status
    assert status["method"] == "api_key" and status["logged_in"] is True
    assert status["base_url"] == kimi_env["KIMI_CODE_BASE_URL"]
    assert status["protocol"] == "anthropic"
    assert status["quota"]["five_hour"]["limit"] == 50
    assert kimi_env["KIMI_API_KEY"] not in str(result.model_dump())


async def test_a_failed_store_write_still_returns_the_reply_with_a_note(
    kimi_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kimi_mcp.store import ConversationStore

    original = ConversationStore.append_turn
    calls = {"n": 0}

    async def flaky_append(self: ConversationStore, *args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(ConversationStore, "append_turn", flaky_append)
    async with Client(server_for(kimi_env), mode="legacy") as client:
        unsaved = await client.call_tool("kimi_chat", {"prompt": "one"})
        saved = await client.call_tool("kimi_chat", {"prompt": "two"})
    assert not unsaved.is_error
    assert reply_of(unsaved) == "Fake Kimi reply to: one"
    assert "could not be saved (OSError)" in chat_meta(unsaved)["note"]
    assert "KIMI_MCP_HOME" in text_of(unsaved)
    assert not saved.is_error and chat_meta(saved)["note"] is None


async def test_an_unexpected_fault_is_reported_and_the_server_keeps_serving(
    kimi_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kimi_mcp.store import ConversationStore

    async def broken_load(self: ConversationStore, conversation_id: str) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(ConversationStore, "load", broken_load)
    async with Client(server_for(kimi_env), mode="legacy") as client:
        broken = await client.call_tool("kimi_chat", {"prompt": "x", "conversation_id": "kc_0123456789abcdef"})
        fine = await client.call_tool("kimi_chat", {"prompt": "new conversation"})
    assert broken.is_error and "RuntimeError" in text_of(broken) and "keeps running" in text_of(broken)
    assert "Error executing tool" not in text_of(broken)
    assert not fine.is_error


async def test_an_unusable_home_folder_is_named_in_the_error(kimi_env: dict[str, str], tmp_path: Any) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**kimi_env, "KIMI_MCP_HOME": str(blocker / "home")}
    async with Client(server_for(env), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "x"})
        with pytest.raises(Exception) as err:
            await client.read_resource("kimi://conversations")
    assert result.is_error
    assert str(blocker / "home") in text_of(result) and "KIMI_MCP_HOME" in text_of(result)
    assert "KIMI_MCP_HOME" in str(err.value)


async def test_a_credential_in_kimis_error_text_is_redacted(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    key = kimi_env["KIMI_API_KEY"]
    fake_kimi.script(Fault(status=400, error_type="invalid_request_error", message=f"header 'Bearer {key}' bad"))
    async with Client(server_for(kimi_env), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "x"})
    assert result.is_error and "Kimi rejected the request" in text_of(result)
    assert key not in text_of(result)


async def test_the_per_call_timeout_bounds_a_trickling_stream(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    async with Client(server_for(kimi_env, KIMI_MCP_TIMEOUT="120"), mode="legacy") as client:
        # A first call pays the one-off costs (the wire's SDK import blocks the event loop, so no limit can cut it).
        assert not (await client.call_tool("kimi_chat", {"prompt": "warm"})).is_error
    fake_kimi.script(Reply(text="slow " * 60, text_deltas=["slow "] * 60, delay=0.1))  # ~6.5 s in all
    async with Client(server_for(kimi_env, KIMI_MCP_TIMEOUT="0.8"), mode="legacy") as client:
        started = anyio.current_time()
        result = await client.call_tool("kimi_chat", {"prompt": "x"})
        elapsed = anyio.current_time() - started
    assert result.is_error and "KIMI_MCP_TIMEOUT" in text_of(result)
    assert elapsed < 4.0  # well before the stream's end; room for a loaded machine


async def test_errors_say_error_in_their_text(wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    # Codex does not show its model the isError flag: the text alone must read as an error.
    fake_kimi.script(Fault(status=400, error_type="invalid_request_error", message="prompt is too long"))
    async with Client(server_for(kimi_env), mode="legacy") as client:
        failed = await client.call_tool("kimi_chat", {"prompt": "x"})
    assert failed.is_error and failed.meta is None
    assert text_of(failed).startswith("Error: Kimi rejected the request (400: prompt is too long)")


@MODES
async def test_tools_list_stays_small_and_tells_an_agent_what_it_needs(mode: str, kimi_env: dict[str, str]) -> None:
    """P6: the whole tools/list answer, as JSON with non-ASCII escaped (the larger count), is at most 6,000
    characters (5,479 legacy, 5,605 auto, measured for issue 14), and the descriptions still say what a calling
    agent must know."""
    async with Client(server_for(kimi_env), mode=mode) as client:
        listed = await client.list_tools()
    size = len(json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True)))
    assert size <= 6000, size
    tools = {tool.name: tool.description or "" for tool in listed.tools}
    chat = tools["kimi_chat"]
    assert "ONLY what you put" in chat  # what Kimi sees
    assert "second opinion" in chat and "review" in chat  # when to use it
    assert "pass that id back to continue" in chat  # how to continue
    assert "kimi://conversations/{id}" in chat and "full text" in chat  # where a cut reply is whole
    assert "files: absolute files, folders or globs" in chat and "media: images/videos" in chat
    assert "ms:// id" in tools["kimi_upload_media"] and "data_base64" in tools["kimi_upload_media"]
    assert "quota" in tools["kimi_login_status"] and "Never shows a token" in tools["kimi_login_status"]


@pytest.mark.parametrize(("cap", "hint"), [("36000", 50_000), ("100000", 102_000), ("900000", 500_000)])
async def test_the_claude_code_size_hint_follows_the_output_cap(kimi_env: dict[str, str], cap: str, hint: int) -> None:
    async with Client(server_for(kimi_env, KIMI_MCP_MAX_OUTPUT_CHARS=cap), mode="legacy") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tools["kimi_chat"].meta == {"anthropic/maxResultSizeChars": hint}


async def test_a_reply_at_the_default_cap_comes_whole_and_one_more_char_is_cut(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    cap = Settings().max_output_chars
    at_cap = ("word " * cap)[: cap - 1] + "."
    fake_kimi.script(Reply(text=at_cap), Reply(text=at_cap + "x"), Reply(text=at_cap + "x"))
    async with Client(server_for(kimi_env), mode="legacy") as client:
        whole = await client.call_tool("kimi_chat", {"prompt": "long"})
        cut = await client.call_tool("kimi_chat", {"prompt": "longer"})
        # Per call the cut can be lowered, never raised past the server's cap (the size hint follows that cap).
        raised = await client.call_tool("kimi_chat", {"prompt": "longer", "max_output_chars": cap * 2})
    assert len(at_cap) == cap and reply_of(whole) == at_cap and chat_meta(whole)["truncated"] is False
    assert len(text_of(whole)) < 50_000  # Claude Code's default inline limit, with the footer
    assert chat_meta(cut)["truncated"] is True and chat_meta(cut)["full_chars"] == cap + 1
    assert f"full reply at {chat_meta(cut)['full_text_uri']}" in text_of(cut)
    assert chat_meta(raised)["truncated"] is True and len(reply_of(raised)) <= cap
