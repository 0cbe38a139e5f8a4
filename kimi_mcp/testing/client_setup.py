"""Settings, requests and stored logins for a `KimiClient` pointed at a `FakeKimi`, shared by tests and benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.auth.store import CredentialStore, StoredLogin
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


def store_issued_login(
    fake: FakeKimi, home: Path, *, expires_in: float = 900, stored_ttl: float | None = None
) -> StoredLogin:
    """Store a login the fake issued, as `kimi-mcp login` would; `stored_ttl` overrides its stored expiry."""

    login = StoredLogin.from_token_response(
        TokenResponse.model_validate(fake.oauth.issue_tokens(expires_in=expires_in)), "device_flow"
    )
    if stored_ttl is not None:
        login = login.model_copy(update={"expires_at": login.saved_at + stored_ttl})
    store = CredentialStore(home)
    with store.locked_sync():
        store.write_sync(login)
    return login
