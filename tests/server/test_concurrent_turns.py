"""Concurrent turns on one conversation: what is stored is exactly what Kimi saw (issue 7, item 3).

Inside a server, continuations of one conversation take turns; across processes, a conversation that grew
between a call's load and its append gets that call's turn as a branch under a new id.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from kimi_mcp.kimi.models import TextBlock, Usage
from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.store import Conversation, ConversationStore, Turn
from kimi_mcp.testing.fake_kimi import FakeKimi, Reply
from kimi_mcp.testing.fake_record import RecordedRequest
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, text_of

pytestmark = pytest.mark.anyio

KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
CALL_TIMEOUT = 60.0


def server_for(env: dict[str, str], **extra: str) -> Any:
    return build_server(Settings.from_env({**env, **extra}))


async def stored(env: dict[str, str], conversation_id: str) -> Conversation:
    store = ConversationStore(Path(env["KIMI_MCP_HOME"]), max_age_seconds=3600)
    try:
        return await store.load(conversation_id)
    finally:
        await store.aclose()


def user_message(prompt: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": prompt}]}


def assert_each_turn_is_what_kimi_saw(conversation: Conversation, requests: list[RecordedRequest]) -> None:
    """For every stored turn n, the request that produced it carried exactly turns 1..n-1 and turn n's prompt."""
    by_prompt = {request.json()["messages"][-1]["content"][0]["text"]: request.json() for request in requests}
    assert len(by_prompt) == len(requests) == len(conversation.turns)
    history = [message.model_dump(mode="json") for message in conversation.messages()]
    for n, turn in enumerate(conversation.turns, start=1):
        prompt = turn.user[0].text
        sent = by_prompt[prompt]["messages"]
        assert sent == [*history[: 2 * (n - 1)], user_message(prompt)], f"turn {n} is not what Kimi was sent"
        assert by_prompt[prompt].get("system") == conversation.system


async def test_twenty_concurrent_continuations_each_store_exactly_what_kimi_saw(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    progress: dict[int, list[str]] = {n: [] for n in range(20)}
    async with Client(server_for(kimi_env), mode="legacy") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "turn one", "system": "be brief"})
        cid = chat_meta(first)["conversation_id"]
        results: dict[int, Any] = {}

        async def continue_(n: int) -> None:
            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress[n].append(message or "")

            results[n] = await client.call_tool(
                "kimi_chat", {"prompt": f"parallel {n}", "conversation_id": cid}, progress_callback=on_progress
            )

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(continue_, n)

    for n, result in results.items():
        assert not result.is_error, text_of(result)
        assert chat_meta(result)["conversation_id"] == cid and chat_meta(result)["note"] is None
        assert reply_of(result) == f"Fake Kimi reply to: parallel {n}"
    assert sorted(chat_meta(r)["turn"] for r in results.values()) == list(range(2, 22))
    conversation = await stored(kimi_env, cid)
    assert len(conversation.turns) == 21
    assert_each_turn_is_what_kimi_saw(conversation, fake_kimi.messages_requests())
    # Each call's turn number is where its prompt was stored.
    for n, result in results.items():
        assert conversation.turns[chat_meta(result)["turn"] - 1].user[0].text == f"parallel {n}"
    queued = [
        n for n, messages in progress.items() if any(f"previous turn of conversation {cid}" in m for m in messages)
    ]
    assert len(queued) >= 10, progress  # all but the first few had to wait, and were told why


async def test_a_queued_call_keeps_its_heartbeat_while_it_waits(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kimi_mcp.server.progress.HEARTBEAT_SECONDS", 0.1)
    async with Client(server_for(kimi_env), mode="legacy") as client:
        cid = chat_meta(await client.call_tool("kimi_chat", {"prompt": "one"}))["conversation_id"]
        fake_kimi.script(Reply(text="slow reply", delay=0.3))  # ~2 s: the second call waits behind it
        waiting: list[str] = []

        async def second() -> None:
            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                waiting.append(message or "")

            await client.call_tool(
                "kimi_chat", {"prompt": "three", "conversation_id": cid}, progress_callback=on_progress
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "kimi_chat", {"prompt": "two", "conversation_id": cid})
            with anyio.fail_after(CALL_TIMEOUT):
                while len(fake_kimi.messages_requests()) < 2:  # noqa: ASYNC110 - the fake records from its thread
                    await anyio.sleep(0.01)
            tg.start_soon(second)
    queued = [m for m in waiting if m.startswith(f"Queued: waiting for the previous turn of conversation {cid}")]
    assert len(queued) >= 5, waiting  # the heartbeat kept repeating it while the first call streamed
    conversation = await stored(kimi_env, cid)
    assert [t.user[0].text for t in conversation.turns] == ["one", "two", "three"]
    assert_each_turn_is_what_kimi_saw(conversation, fake_kimi.messages_requests())


@asynccontextmanager
async def stdio_server(env: dict[str, str], errlog_path: Path) -> AsyncIterator[Client]:
    """A real `kimi-mcp serve` process: the other writer is this test process, a separate SQLite connection."""
    params = StdioServerParameters(
        command=str(KIMI_MCP), args=["serve"], env={"PATH": os.environ.get("PATH", ""), **env}
    )
    with errlog_path.open("a+", encoding="utf-8") as errlog:
        try:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=CALL_TIMEOUT) as client:
                yield client
        finally:
            errlog.seek(0)
            print(f"--- kimi-mcp serve stderr ---\n{errlog.read()}")


async def test_a_conversation_that_grew_in_another_process_gets_the_turn_as_a_branch(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    home = Path(kimi_env["KIMI_MCP_HOME"])
    async with stdio_server(kimi_env, tmp_path / "serve.log") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "one", "system": "be brief"})
        cid = chat_meta(first)["conversation_id"]
        # Kimi streams the next reply for ~4 s; meanwhile another process appends a turn to the conversation.
        fake_kimi.script(Reply(text="mine " * 20, text_deltas=["mine "] * 20, delay=0.2))
        async with anyio.create_task_group() as tg:
            results: list[Any] = []

            async def call() -> None:
                results.append(await client.call_tool("kimi_chat", {"prompt": "two", "conversation_id": cid}))

            tg.start_soon(call)
            with anyio.fail_after(CALL_TIMEOUT):
                while len(fake_kimi.messages_requests()) < 2:  # noqa: ASYNC110 - the fake records from its thread
                    await anyio.sleep(0.01)
            in_flight = fake_kimi.messages_requests()[1]
            other = ConversationStore(home, max_age_seconds=3600)
            elsewhere = Turn(
                user=[TextBlock(text="from another process")],
                assistant_text="its reply",
                stop_reason="end_turn",
                usage=Usage(),
            )
            loaded = await other.load(cid)
            assert (await other.continue_conversation(loaded, elsewhere)).conversation_id == cid
            await other.aclose()
            assert not in_flight.completed, "the outside append must land while the call is in flight"
        (result,) = results
        out = chat_meta(result)
        branch = out["conversation_id"]
        assert not result.is_error and branch != cid and out["turn"] == 2
        note = f"conversation {cid} grew meanwhile (another process); this turn was stored as {branch}"
        assert note in out["note"] and note in text_of(result)
        assert f"[conversation_id: {branch} · turn 2]" in text_of(result)

        # The branch continues, with the cache key the turn was sent with (so its prefix still hits).
        third = await client.call_tool("kimi_chat", {"prompt": "three", "conversation_id": branch})
        assert chat_meta(third)["conversation_id"] == branch and chat_meta(third)["turn"] == 3
        transcript = await client.read_resource(f"kimi://conversations/{branch}")

    original, branched = await stored(kimi_env, cid), await stored(kimi_env, branch)
    assert [t.user[0].text for t in original.turns] == ["one", "from another process"]
    assert [t.user[0].text for t in branched.turns] == ["one", "two", "three"]
    assert branched.cache_key == cid and branched.system == "be brief"
    assert_each_turn_is_what_kimi_saw(branched, fake_kimi.messages_requests())
    assert {request.json()["prompt_cache_key"] for request in fake_kimi.messages_requests()} == {cid}
    assert "from another process" not in transcript.contents[0].text and "three" in transcript.contents[0].text
