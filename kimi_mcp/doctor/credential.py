"""Which credential kimi-mcp would use (API key, stored Kimi login, none) and, for a login, when its access token
expires. Read through `TokenSource.state()`, the same answer `kimi-mcp status` gives; never the token itself."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx2

from kimi_mcp.auth.tokens import TokenSource
from kimi_mcp.settings import Settings

from .model import Check, fail, ok
from .settings_check import masked

NAME = "credential"
_LOGIN_FIX = "run `kimi-mcp login` in a terminal, or set KIMI_API_KEY to a Kimi Code API key"


async def credential_check(settings: Settings, http: httpx2.AsyncClient) -> Check:
    state = await TokenSource(settings, http).state()
    if state.method == "api_key":
        return ok(NAME, f"API key from KIMI_API_KEY, {masked(settings.api_key)}")
    if not state.logged_in:
        problem = state.problem or "no credential: KIMI_API_KEY is not set and there is no stored Kimi login"
        return fail(NAME, problem, _LOGIN_FIX)
    return ok(NAME, f"Kimi account login (device login); {_expiry(state.expires_at)}")


def _expiry(expires_at: str | None) -> str:
    if expires_at is None:
        return "expiry unknown"
    if datetime.fromisoformat(expires_at) <= datetime.now(UTC):
        return f"the access token expired at {expires_at}; it is refreshed on the next call"
    return f"the access token is valid until {expires_at}"
