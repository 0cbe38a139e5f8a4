"""Logging in from inside a host, and what a refused login looks like, through a real `mcp.Client`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import ElicitResult

from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.auth.store import CredentialStore, StoredLogin
from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.mcp_results import reply_of, status_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def account_env(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> dict[str, str]:
    """No API key: the account login is the only way in. The fake asks for no wait between polls."""
    fake_kimi.oauth.interval = 0
    return {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"}


def text_of(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


def refreshes(fake: FakeKimi) -> int:
    return fake.count("/api/oauth/token", grant_type="refresh_token")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_login_from_inside_the_host_then_the_next_call_just_works(
    mode: str, account_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    async with Client(build_server(Settings.from_env(account_env)), mode=mode) as client:
        first = await client.call_tool("kimi_chat", {"prompt": "hello"})
        assert first.is_error
        message = text_of(first)
        [authorization] = [r for r in fake_kimi.requests if r.path.endswith("/device_authorization")]
        assert "/device?" in message or fake_kimi.oauth_host in message
        login = json.loads((await client.read_resource("kimi://login")).contents[0].text)
        assert login["login_in_progress"] is True and login["user_code"] in message
        assert login["verification_uri_complete"] in message
        assert authorization.headers["user-agent"].startswith("kimi-mcp/")

        fake_kimi.oauth.approve()
        second = await client.call_tool("kimi_chat", {"prompt": "after approval"})
        status = await client.call_tool("kimi_login_status", {})
    assert not second.is_error, text_of(second)
    assert reply_of(second) == "Fake Kimi reply to: after approval"
    assert status_of(status)["method"] == "oauth" and status_of(status)["logged_in"]
    assert len([r for r in fake_kimi.requests if r.path.endswith("/device_authorization")]) == 1


async def test_one_login_at_a_time_per_server(account_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    async with Client(build_server(Settings.from_env(account_env)), mode="legacy") as client:
        a = json.loads((await client.read_resource("kimi://login")).contents[0].text)
        b = json.loads((await client.read_resource("kimi://login")).contents[0].text)
    assert a["user_code"] == b["user_code"]
    assert fake_kimi.count("/api/oauth/device_authorization") == 1


async def test_a_host_with_url_elicitation_is_asked_to_open_the_url(
    account_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    asked: list[Any] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params)
        return ElicitResult(action="accept")

    server = build_server(Settings.from_env(account_env))
    async with Client(server, mode="legacy", elicitation_callback=on_elicit) as client:
        result = await client.call_tool("kimi_chat", {"prompt": "hello"})
    assert result.is_error
    [params] = asked
    assert params.mode == "url"
    assert params.url in text_of(result)  # the text path carries the same URL


async def test_a_refused_refresh_says_log_in_and_never_loops(
    account_env: dict[str, str], fake_kimi: FakeKimi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kimi_mcp.server.login_prompt.LOGIN_GRACE_SECONDS", 0.2)
    home = Path(account_env["KIMI_MCP_HOME"])
    answer = TokenResponse.model_validate(fake_kimi.oauth.issue_tokens(expires_in=0))
    store = CredentialStore(home)
    with store.locked_sync():
        store.write_sync(StoredLogin.from_token_response(answer, "device_flow"))
    fake_kimi.oauth.refresh_faults.append("invalid_grant")
    async with Client(build_server(Settings.from_env(account_env)), mode="legacy") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "one"})
        second = await client.call_tool("kimi_chat", {"prompt": "two"})
    assert first.is_error and second.is_error
    assert "log" in text_of(first).lower() and "expired" in text_of(first).lower()
    assert refreshes(fake_kimi) == 1
    assert fake_kimi.messages_requests() == []


async def test_a_refresh_answer_lost_after_rotation_says_log_in_again_once(
    account_env: dict[str, str], fake_kimi: FakeKimi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kimi_mcp.server.login_prompt.LOGIN_GRACE_SECONDS", 0.2)
    home = Path(account_env["KIMI_MCP_HOME"])
    answer = TokenResponse.model_validate(fake_kimi.oauth.issue_tokens(expires_in=0))
    store = CredentialStore(home)
    with store.locked_sync():
        store.write_sync(StoredLogin.from_token_response(answer, "device_flow"))
    fake_kimi.oauth.refresh_faults.append("rotate_then_drop")  # Kimi rotated; the answer never came back
    async with Client(build_server(Settings.from_env(account_env)), mode="legacy") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "one"})
        second = await client.call_tool("kimi_chat", {"prompt": "two"})
    assert first.is_error and second.is_error
    assert "log in again" in text_of(first) and "/device?user_code=" in text_of(first)  # with the way to do it
    assert refreshes(fake_kimi) == 2  # the lost one and its single retry; the second call sends nothing
    assert fake_kimi.messages_requests() == []


async def test_sentinel_tokens_never_reach_results_resources_or_logs(
    account_env: dict[str, str], fake_kimi: FakeKimi, caplog: pytest.LogCaptureFixture
) -> None:
    access, refresh = "SENTINEL-ACCESS-0123456789", "SENTINEL-REFRESH-0123456789"
    home = Path(account_env["KIMI_MCP_HOME"])
    store = CredentialStore(home)
    login = StoredLogin.from_token_response(
        TokenResponse.model_validate({"access_token": access, "refresh_token": refresh, "expires_in": 900}),
        "device_flow",
    ).model_copy(update={"expires_at": time.time() - 10})
    with store.locked_sync():
        store.write_sync(login)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with Client(build_server(Settings.from_env({**account_env, "KIMI_CODE_DEBUG": "1"})), mode="legacy") as c:
        for call in ("kimi_chat", "kimi_login_status"):
            seen.append(
                json.dumps((await c.call_tool(call, {"prompt": "x"} if call == "kimi_chat" else {})).model_dump())
            )
        seen.append((await c.read_resource("kimi://login")).contents[0].text)
        await anyio.sleep(0.05)
    wire = [r.body.decode(errors="replace") for r in fake_kimi.requests if r.path.endswith("/token")]
    assert any(refresh in body for body in wire)  # the sentinel really was used on the wire
    for text in [*seen, caplog.text]:
        assert access not in text and refresh not in text


async def test_a_denied_login_is_reported_with_the_next_code(account_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    async with Client(build_server(Settings.from_env(account_env)), mode="legacy") as client:
        await client.call_tool("kimi_chat", {"prompt": "hello"})
        fake_kimi.oauth.deny()
        with anyio.fail_after(10):
            while True:
                status = status_of(await client.call_tool("kimi_login_status", {}))
                if not status["login_in_progress"]:
                    break
                await anyio.sleep(0.1)
        assert "denied" in status["last_error"]
        again = await client.call_tool("kimi_chat", {"prompt": "hello again"})
    assert again.is_error
    assert "previous login did not complete" in text_of(again) and "denied" in text_of(again)
    assert fake_kimi.count("/api/oauth/device_authorization") == 2


async def test_cancelling_a_call_during_a_token_refresh_keeps_the_login(
    account_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    home = Path(account_env["KIMI_MCP_HOME"])
    answer = TokenResponse.model_validate(fake_kimi.oauth.issue_tokens(expires_in=0))
    store = CredentialStore(home)
    with store.locked_sync():
        store.write_sync(StoredLogin.from_token_response(answer, "device_flow"))
    fake_kimi.oauth.refresh_delay = 0.6
    async with Client(build_server(Settings.from_env(account_env)), mode="legacy") as client:
        with anyio.move_on_after(0.2):
            await client.call_tool("kimi_chat", {"prompt": "cancelled while refreshing"})
        await anyio.sleep(0.8)  # the shielded refresh finishes and is stored
        after = await client.call_tool("kimi_chat", {"prompt": "next"})
    assert not after.is_error, text_of(after)
    assert refreshes(fake_kimi) == 1
