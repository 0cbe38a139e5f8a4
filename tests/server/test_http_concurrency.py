"""Many callers at once over streamable HTTP: one `kimi-mcp serve --transport http` process, several MCP sessions.

The server runs as a real process (the command users run, kimi_mcp/testing/http_child.py); each session is an
`mcp.Client` with its own HTTP connection pool and the bearer token. What must hold across sessions: every call
succeeds, each reaches Kimi exactly once, and a stale login is refreshed once for all of them
(docs/architecture.md: one KimiClient, one token source per server).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from kimi_mcp.store import ConversationStore
from kimi_mcp.testing.client_setup import store_issued_login
from kimi_mcp.testing.fake_kimi import FakeKimi, Reply
from kimi_mcp.testing.fake_script import last_user_text
from kimi_mcp.testing.http_child import http_child, http_client
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, text_of

pytestmark = pytest.mark.anyio

TOKEN = "http-test-token-0123456789abcdef"
SESSIONS = 5
CALLS = 50


async def chat_concurrently(url: str, prompts: list[str]) -> dict[str, Any]:
    """Spread `prompts` over SESSIONS sessions, all calls in flight at once; return each prompt's result."""
    results: dict[str, Any] = {}

    async def one_session(mine: list[str]) -> None:
        async with http_client(url, TOKEN, mode="legacy") as client, anyio.create_task_group() as calls:
            for prompt in mine:
                calls.start_soon(call, client, prompt)

    async def call(client: Client, prompt: str) -> None:
        results[prompt] = await client.call_tool("kimi_chat", {"prompt": prompt})

    async with anyio.create_task_group() as sessions:
        for index in range(SESSIONS):
            sessions.start_soon(one_session, prompts[index::SESSIONS])
    return results


def refreshes(fake: FakeKimi) -> int:
    return fake.count("/api/oauth/token", grant_type="refresh_token")


def oauth_log(fake: FakeKimi) -> list[tuple[str, int | None, float]]:
    """What reached the OAuth host (path, status, arrival), for a failure message."""
    return [(r.path, r.status, round(r.received_at, 3)) for r in list(fake.requests) if "/oauth/" in r.path]


@pytest.fixture
def account_env(kimi_env: dict[str, str]) -> dict[str, str]:
    """No API key: the stored account login is the only credential."""
    return {key: value for key, value in kimi_env.items() if key != "KIMI_API_KEY"}


async def test_fifty_concurrent_calls_over_several_sessions_all_succeed(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    # Each answer takes about a second, so calls that were really served at once overlap at the fake.
    fake_kimi.script(*[Reply(text="Concurrent answer.", delay=0.2) for _ in range(CALLS)])
    prompts = [f"<question {n}>" for n in range(CALLS)]
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_MCP_MAX_CONCURRENCY": "50"}
    async with http_child(env) as server:
        results = await chat_concurrently(server.url, prompts)

    assert sorted(results) == sorted(prompts)
    assert not {prompt: text_of(result) for prompt, result in results.items() if result.is_error}
    assert {reply_of(result) for result in results.values()} == {"Concurrent answer."}
    sent = fake_kimi.messages_requests()
    # Each call reached Kimi exactly once: no retries, nothing lost or doubled, no prompt crossed sessions.
    assert sorted(last_user_text(json.loads(request.body)) for request in sent) == sorted(prompts)
    assert {request.headers["authorization"] for request in sent} == {f"Bearer {kimi_env['KIMI_API_KEY']}"}
    assert fake_kimi.max_messages_in_flight > SESSIONS  # calls overlapped within sessions, not one at a time


async def test_an_expired_stored_login_is_refreshed_once_for_all_sessions(
    account_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    old = store_issued_login(fake_kimi, Path(account_env["KIMI_MCP_HOME"]), expires_in=0)
    prompts = [f"after expiry {n}" for n in range(20)]
    async with http_child({**account_env, "KIMI_MCP_HTTP_TOKEN": TOKEN}) as server:
        results = await chat_concurrently(server.url, prompts)

    assert not {prompt: text_of(result) for prompt, result in results.items() if result.is_error}
    assert refreshes(fake_kimi) == 1, oauth_log(fake_kimi)
    sent = fake_kimi.messages_requests()
    assert len(sent) == len(prompts)
    [bearer] = {request.headers["authorization"] for request in sent}
    assert bearer != f"Bearer {old.access_token.get_secret_value()}"  # every call used the one refreshed token


async def test_concurrent_401s_across_sessions_cause_one_refresh(
    account_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    # The store says the token is good for 15 minutes, but Kimi starts rejecting it while the server runs: every
    # call in flight gets a 401 with the same stale token, and the server must refresh once and retry each with the
    # new one. A first call reads /v1/models (cached per server), so the later 401s come from the chats themselves.
    old = store_issued_login(fake_kimi, Path(account_env["KIMI_MCP_HOME"]), stored_ttl=900)
    prompts = [f"after revocation {n}" for n in range(20)]
    async with http_child({**account_env, "KIMI_MCP_HTTP_TOKEN": TOKEN}) as server:
        warm = await chat_concurrently(server.url, ["before revocation"])
        assert not warm["before revocation"].is_error
        fake_kimi.oauth.revoke_access(old.access_token.get_secret_value())
        fake_kimi.oauth.refresh_delay = 2.0  # the calls that start meanwhile meet the stale token too
        results = await chat_concurrently(server.url, prompts)

    assert not {prompt: text_of(result) for prompt, result in results.items() if result.is_error}
    assert refreshes(fake_kimi) == 1, oauth_log(fake_kimi)
    stale = f"Bearer {old.access_token.get_secret_value()}"
    sent = fake_kimi.messages_requests()[1:]
    rejected = [request for request in sent if request.headers["authorization"] == stale]
    accepted = [request for request in sent if request.headers["authorization"] != stale]
    assert len(rejected) >= 2 and {request.status for request in rejected} == {401}, len(rejected)
    assert len(accepted) == len(prompts) and len({r.headers["authorization"] for r in accepted}) == 1


async def test_the_concurrency_limit_is_one_for_the_whole_server_not_per_session(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    # Per-session limits would let 5 x 4 = 20 calls reach Kimi at once; one shared limit lets 4.
    fake_kimi.script(*[Reply(text="Limited answer.", delay=0.1) for _ in range(20)])
    prompts = [f"<limited {n}>" for n in range(20)]
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_MCP_MAX_CONCURRENCY": "4"}
    async with http_child(env) as server:
        results = await chat_concurrently(server.url, prompts)

    assert not {prompt: text_of(result) for prompt, result in results.items() if result.is_error}
    assert len(fake_kimi.messages_requests()) == len(prompts)
    assert 1 < fake_kimi.max_messages_in_flight <= 4


async def test_continuations_of_one_conversation_from_several_sessions_take_turns(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN}
    async with http_child(env) as server:
        async with http_client(server.url, TOKEN, mode="legacy") as first_host:
            cid = chat_meta(await first_host.call_tool("kimi_chat", {"prompt": "turn one"}))["conversation_id"]
        results: dict[str, Any] = {}

        async def continue_in(client: Client, prompt: str) -> None:
            results[prompt] = await client.call_tool("kimi_chat", {"prompt": prompt, "conversation_id": cid})

        async def one_session(mine: list[str]) -> None:
            async with http_client(server.url, TOKEN, mode="legacy") as client, anyio.create_task_group() as calls:
                for prompt in mine:
                    calls.start_soon(continue_in, client, prompt)

        prompts = [f"<parallel {n}>" for n in range(10)]
        async with anyio.create_task_group() as sessions:
            for index in range(SESSIONS):
                sessions.start_soon(one_session, prompts[index::SESSIONS])

    assert not {prompt: text_of(result) for prompt, result in results.items() if result.is_error}
    assert sorted(chat_meta(result)["turn"] for result in results.values()) == list(range(2, 12))
    assert {chat_meta(result)["conversation_id"] for result in results.values()} == {cid}
    store = ConversationStore(Path(kimi_env["KIMI_MCP_HOME"]), max_age_seconds=3600)
    try:
        conversation = await store.load(cid)
    finally:
        await store.aclose()
    history = [message.model_dump(mode="json") for message in conversation.messages()]
    sent = {last_user_text(request.json()): request.json()["messages"] for request in fake_kimi.messages_requests()}
    assert len(conversation.turns) == len(sent) == 11
    for n, turn in enumerate(conversation.turns, start=1):
        # Each turn was sent with exactly the turns before it: the calls took turns across sessions.
        expected = [*history[: 2 * (n - 1)], {"role": "user", "content": [{"type": "text", "text": turn.user[0].text}]}]
        assert sent[turn.user[0].text] == expected, f"turn {n} is not what Kimi was sent"
