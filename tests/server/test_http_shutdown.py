"""SIGTERM/SIGINT on `kimi-mcp serve --transport http`: calls in flight finish within the grace period or end with
a readable error, the process exits 0, and the store holds every finished turn."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import MCPError
from mcp_types import CallToolResult

from kimi_mcp.errors import NotTakingRequests
from kimi_mcp.store import ConversationStore
from kimi_mcp.testing.fake_kimi import FakeKimi, Reply
from kimi_mcp.testing.http_child import HttpChild, http_child, http_client
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, text_of

pytestmark = pytest.mark.anyio

TOKEN = "test-token-0123456789abcdef"


async def recent(home: str) -> dict[str, int]:
    store = ConversationStore(Path(home), max_age_seconds=86_400)
    try:
        return {summary.id: summary.turns for summary in await store.recent()}
    finally:
        await store.aclose()


async def slow_call_then_signal(child: HttpChild, signum: int, prompt: str, *, times: int = 1) -> CallToolResult:
    """Start a kimi_chat, send `signum` (`times` times) once its reply is streaming, return the call's result."""
    streaming = anyio.Event()
    outcome: list[CallToolResult] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and "chars" in message:
            streaming.set()

    async with http_client(child.url, TOKEN) as client:
        # The client checks a result against the tool's output schema, listing the tools first if it has not:
        # list them now, while the server still takes requests.
        await client.list_tools()
        async with anyio.create_task_group() as group:

            async def call() -> None:
                outcome.append(await client.call_tool("kimi_chat", {"prompt": prompt}, progress_callback=on_progress))

            group.start_soon(call)
            with anyio.fail_after(60):
                await streaming.wait()
            for _ in range(times):
                child.process.send_signal(signum)
                await child.stopping.wait()
    return outcome[0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_call_in_flight_finishes_within_the_grace_period_and_the_process_exits_0(
    signum: int, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_MCP_SHUTDOWN_GRACE_SECONDS": "120"}
    fake_kimi.script(Reply(text="slow " * 20, text_deltas=["slow "] * 20, delay=0.1))
    async with http_child(env) as child:
        result = await slow_call_then_signal(child, signum, "finish me")
        status = await child.wait()
    assert not result.is_error and reply_of(result) == "slow " * 20
    assert status == 0
    assert "stopping; 1 call(s) in flight" in child.stderr
    stored = await recent(kimi_env["KIMI_MCP_HOME"])
    assert stored == {chat_meta(result)["conversation_id"]: 1}


async def test_past_the_grace_period_the_call_gets_a_readable_error_and_finished_turns_stay(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_MCP_SHUTDOWN_GRACE_SECONDS": "1"}
    fake_kimi.script(Reply(text="done"), Reply(text="never " * 200, text_deltas=["never "] * 200, delay=0.5))
    async with http_child(env) as child:
        async with http_client(child.url, TOKEN) as client:
            finished = await client.call_tool("kimi_chat", {"prompt": "quick one"})
        started = time.monotonic()
        result = await slow_call_then_signal(child, signal.SIGTERM, "too slow")
        status = await child.wait()
        took = time.monotonic() - started
    assert result.is_error and text_of(result).startswith("Error: kimi-mcp is shutting down")
    assert "KIMI_MCP_SHUTDOWN_GRACE_SECONDS" in text_of(result)
    assert status == 0
    assert took < 60  # the reply would take ~100 s: the grace period cut it short
    stored = await recent(kimi_env["KIMI_MCP_HOME"])
    assert stored == {chat_meta(finished)["conversation_id"]: 1}  # the finished turn, nothing of the stopped one


async def test_a_second_signal_stops_the_calls_at_once(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_MCP_SHUTDOWN_GRACE_SECONDS": "300"}
    fake_kimi.script(Reply(text="never " * 200, text_deltas=["never "] * 200, delay=0.5))
    async with http_child(env) as child:
        started = time.monotonic()
        result = await slow_call_then_signal(child, signal.SIGINT, "too slow", times=2)
        status = await child.wait()
        took = time.monotonic() - started
    assert result.is_error and "told a second time to stop" in text_of(result)
    assert status == 0 and took < 60
    assert await recent(kimi_env["KIMI_MCP_HOME"]) == {}


async def test_an_idle_client_does_not_hold_the_shutdown_for_the_grace_period(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_MCP_SHUTDOWN_GRACE_SECONDS": "300"}
    async with http_child(env) as child:
        async with http_client(child.url, TOKEN) as client:
            await client.list_tools()  # connected, with its standalone SSE stream open
            started = time.monotonic()
            child.process.send_signal(signal.SIGTERM)
            status = await child.wait()
            took = time.monotonic() - started
    assert status == 0
    assert took < 120, f"shutdown took {took:.0f} s with nothing in flight"


async def test_while_draining_a_new_request_gets_503_and_the_call_in_flight_still_finishes(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_MCP_SHUTDOWN_GRACE_SECONDS": "120"}
    # ~15 s of reply: the window in which the new requests below arrive while the call is still in flight.
    fake_kimi.script(Reply(text="slow " * 60, text_deltas=["slow "] * 60, delay=0.25))
    streamed: list[float] = []
    progressed = anyio.Event()
    wanted = [1]  # how many progress updates `progressed` waits for
    outcome: list[CallToolResult] = []
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {TOKEN}"}

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and "chars" in message:
            streamed.append(progress)
            if len(streamed) >= wanted[0]:
                progressed.set()

    async with http_child(env) as child, http_client(child.url, TOKEN) as client:
        await client.list_tools()
        async with anyio.create_task_group() as group, httpx2.AsyncClient(timeout=60) as http:

            async def call() -> None:
                outcome.append(await client.call_tool("kimi_chat", {"prompt": "p"}, progress_callback=on_progress))

            group.start_soon(call)
            with anyio.fail_after(60):
                await progressed.wait()
            child.process.send_signal(signal.SIGTERM)
            with anyio.fail_after(60):
                await child.stopping.wait()
            # Well into the drain, not in its first moments: two more progress updates (throttled to one per
            # 0.5 s) mean the call went on streaming for a while after the signal.
            wanted[0], progressed = len(streamed) + 2, anyio.Event()
            with anyio.fail_after(60):
                await progressed.wait()
            # A new connection: the port stays open while the call runs, and says why it takes nothing new.
            fresh = await http.post(child.url, json=init, headers=headers)
            health = await http.get(f"{child.base}/healthz")
            # A new request in the session whose call is still running: its client reads the same reason.
            with pytest.raises(MCPError) as refused:
                await client.call_tool("kimi_login_status", {})
            finished_meanwhile = bool(outcome)
        status = await child.wait()
    assert not finished_meanwhile  # the 503s came while the call was in flight
    reason = NotTakingRequests().message
    assert fresh.status_code == 503 and fresh.json()["error"]["message"] == reason
    assert health.status_code == 503
    assert str(refused.value) == reason
    result = outcome[0]
    assert not result.is_error and reply_of(result) == "slow " * 60
    assert status == 0
    assert await recent(kimi_env["KIMI_MCP_HOME"]) == {chat_meta(result)["conversation_id"]: 1}
