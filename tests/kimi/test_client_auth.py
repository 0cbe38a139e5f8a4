"""401 recovery in KimiClient with a stored account login, against the fake (docs/kimi-api.md §3, §9)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import pytest

from kimi_mcp import errors
from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.auth.store import CredentialStore, StoredLogin
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault

pytestmark = pytest.mark.anyio


def logged_in(fake: FakeKimi, home: Path) -> Settings:
    answer = TokenResponse.model_validate(fake.oauth.issue_tokens(expires_in=900))
    store = CredentialStore(home)
    with store.locked_sync():
        store.write_sync(StoredLogin.from_token_response(answer, "device_flow"))
    return Settings(home=home, base_url=fake.base_url, oauth_host=fake.oauth_host)


def refreshes(fake: FakeKimi) -> int:
    return fake.count("/api/oauth/token", grant_type="refresh_token")


async def test_one_401_means_one_refresh_one_retry_and_success(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = logged_in(fake_kimi, tmp_path)
    fake_kimi.script(Fault(status=401, error_type="authentication_error", message="token expired"))
    async with KimiClient(settings) as kimi:
        reply = await kimi.ask("after a 401")
    assert reply == "Fake Kimi reply to: after a 401"
    first, second = fake_kimi.messages_requests()
    assert refreshes(fake_kimi) == 1
    assert first.headers["authorization"] != second.headers["authorization"]


async def test_persistent_401_is_one_refresh_one_retry_then_a_clear_error(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = logged_in(fake_kimi, tmp_path)
    fake_kimi.script(*[Fault(status=401, error_type="authentication_error")] * 5)
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.Unauthorized) as err:
            await kimi.ask("never works")
    assert len(fake_kimi.messages_requests()) == 2
    assert refreshes(fake_kimi) == 1
    assert "kimi-mcp login" in str(err.value)


async def test_401_on_a_side_api_recovers_the_same_way(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = logged_in(fake_kimi, tmp_path)
    fake_kimi.oauth.revoke_access()  # the stored access token is dead; its refresh token still works
    async with KimiClient(settings) as kimi:
        quota = await kimi.quota()
    assert quota.five_hour is not None
    assert refreshes(fake_kimi) == 1
    assert fake_kimi.count("/coding/v1/usages") == 2


async def test_401_with_an_api_key_is_not_refreshed(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = Settings(api_key="sk-kimi-test-key", home=tmp_path, base_url=fake_kimi.base_url)
    fake_kimi.script(Fault(status=401, error_type="authentication_error"))
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.Unauthorized):
            await kimi.ask("bad key")
    assert refreshes(fake_kimi) == 0
    assert len(fake_kimi.messages_requests()) == 1


async def test_persistent_401_with_thinking_on_still_recovers_only_once(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock

    settings = logged_in(fake_kimi, tmp_path)
    fake_kimi.oauth.revoke_access()
    fake_kimi.api_keys.clear()
    original = fake_kimi.oauth.is_valid_access_token
    fake_kimi.oauth.is_valid_access_token = lambda token: False  # type: ignore[method-assign]
    try:
        async with KimiClient(settings) as kimi:
            with pytest.raises(errors.Unauthorized):
                message = Message(role="user", content=[TextBlock(text="q")])
                await kimi.chat(ChatRequest(model="kimi-for-coding", messages=[message], thinking="high"))
    finally:
        fake_kimi.oauth.is_valid_access_token = original  # type: ignore[method-assign]
    assert refreshes(fake_kimi) == 1
    assert fake_kimi.count("/coding/v1/models") + len(fake_kimi.messages_requests()) == 2


@pytest.mark.parametrize("thinking", ["off", "high"])  # "high" looks up /v1/models first, with the same token
async def test_a_hanging_refresh_ends_the_call_at_kimi_mcp_timeout_and_the_login_stays_usable(
    fake_kimi: FakeKimi, tmp_path: Path, thinking: Literal["off", "high"]
) -> None:
    from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock

    answer = TokenResponse.model_validate(fake_kimi.oauth.issue_tokens(expires_in=0))  # expired: must refresh
    store = CredentialStore(tmp_path)
    with store.locked_sync():
        store.write_sync(StoredLogin.from_token_response(answer, "device_flow"))
    settings = Settings.from_env(
        {
            "KIMI_MCP_HOME": str(tmp_path),
            "KIMI_CODE_BASE_URL": fake_kimi.base_url,
            "KIMI_CODE_OAUTH_HOST": fake_kimi.oauth_host,
            "KIMI_MCP_TIMEOUT": "3",
        }
    )
    fake_kimi.oauth.refresh_faults.extend(["hang"] * 10)  # the token endpoint never answers
    request = ChatRequest(
        model="kimi-for-coding", messages=[Message(role="user", content=[TextBlock(text="q")])], thinking=thinking
    )
    async with KimiClient(settings) as kimi:
        started = time.monotonic()
        with pytest.raises(errors.ServiceUnavailable, match="KIMI_MCP_TIMEOUT") as caught:
            await kimi.chat(request)
        elapsed = time.monotonic() - started
        assert elapsed <= 8, f"a 3 s KIMI_MCP_TIMEOUT call took {elapsed:.2f} s"  # a hanging refresh: 30 s
        assert "3 s" in str(caught.value)
        assert refreshes(fake_kimi) == 1 and fake_kimi.messages_requests() == []

        stored = store.read_sync()
        assert stored is not None and not stored.refresh_rejected
        assert stored.refresh_token == answer.refresh_token  # left as it was

        fake_kimi.oauth.refresh_faults.clear()  # the login service answers again
        result = await kimi.chat(request)
    assert result.text == "Fake Kimi reply to: q"
    assert refreshes(fake_kimi) == 2  # the hung one, then exactly one refresh
    stored = store.read_sync()
    assert stored is not None and stored.obtained_by == "refresh"
