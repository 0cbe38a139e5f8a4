"""Where a request's Bearer token comes from: `KIMI_API_KEY`, else the stored OAuth login (kimi-wire.md §3, §4).

`TokenSource.token()` refreshes a stored login early, under the store's cross-process lock, after re-reading the
file: if another process refreshed meanwhile its token is used and nothing is sent. Refresh tokens rotate, so
one is never sent after a success; a refusal (`invalid_grant`/401/403) is final until a new login, and is
written to the file so other processes stop too. `recover()` is the one-shot answer to an API 401 (§9).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import anyio
import httpx2
from pydantic import BaseModel

from kimi_mcp.auth.oauth import TOKEN_PATH, MalformedAnswer, TokenResponse, error_code, parse_token_response, post_form
from kimi_mcp.auth.oauth import retry_after as retry_after_of
from kimi_mcp.auth.store import CredentialStore, LockedCredentials, StoredLogin
from kimi_mcp.errors import CredentialsCorrupt, LoginRequired, ServiceUnavailable, Unauthorized
from kimi_mcp.settings import Settings

logger = logging.getLogger(__name__)

EXPIRED = "Your Kimi login has expired."
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.5, 4.0)  # refresh retries on 429/5xx/network (§3)
_RETRY_AFTER_CAP = 10.0


class AuthState(BaseModel):
    """What the user may know about the credentials. Never a token."""

    logged_in: bool
    method: Literal["api_key", "oauth", "none"]
    expires_at: str | None = None  # ISO 8601 (UTC) expiry of the current OAuth access token
    problem: str | None = None  # why a (new) login is needed, when one is


def refresh_margin(lifetime: float) -> float:
    """Refresh when less than this many seconds remain: max(300 s, expires_in/2) (kimi-wire.md §3).

    Decision: never within the first quarter of a token's life, so a token shorter-lived than 400 s is not
    refreshed on every call (the §3 rule alone would refresh a 300 s token forever).
    """
    return min(max(300.0, lifetime / 2), 0.75 * max(lifetime, 0.0))


def needs_refresh(login: StoredLogin, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return login.expires_at - now <= refresh_margin(login.expires_in)


def _fingerprint(login: StoredLogin) -> str:
    return hashlib.sha256(login.refresh_token.get_secret_value().encode()).hexdigest()


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).isoformat(timespec="seconds")


class TokenSource:
    """The token source `KimiClient` uses: `token()` before a request, `recover()` once after a 401."""

    def __init__(
        self,
        settings: Settings,
        http: httpx2.AsyncClient,
        *,
        store: CredentialStore | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    ) -> None:
        self._settings = settings
        self._http = http
        self.store = store or CredentialStore(settings.home)
        self._retry_delays = tuple(retry_delays)
        self._refused: str | None = None  # fingerprint of a refresh token Kimi refused (kept in memory too)

    async def state(self) -> AuthState:
        if self._settings.api_key is not None:
            return AuthState(logged_in=True, method="api_key")
        try:
            login = await self.store.load()
        except CredentialsCorrupt as exc:
            return AuthState(logged_in=False, method="none", problem=str(exc))
        if login is None:
            return AuthState(logged_in=False, method="none")
        if self._is_refused(login):
            problem = LoginRequired(EXPIRED).message
            return AuthState(logged_in=False, method="oauth", expires_at=_iso(login.expires_at), problem=problem)
        return AuthState(logged_in=True, method="oauth", expires_at=_iso(login.expires_at))

    async def token(self) -> str:
        """The token for the next request: the API key, or the stored access token, refreshed early if due."""
        if self._settings.api_key is not None:
            return self._settings.api_key.get_secret_value()
        login = self._usable(await self.store.load())
        if not needs_refresh(login):
            return login.access_token.get_secret_value()
        return await self._refresh(rejected=None)

    async def recover(self, rejected: str) -> str:
        """After the API answered 401 to `rejected`: a token another process stored, else one fresh refresh."""
        if self._settings.api_key is not None:
            raise Unauthorized(api_key=True)  # an API key cannot be refreshed
        return await self._refresh(rejected=rejected)

    async def save_login(self, answer: TokenResponse) -> StoredLogin:
        """Store a new login from the device flow; it replaces whatever was stored (even a corrupt file)."""
        login = StoredLogin.from_token_response(answer, "device_flow")
        await self.store.save(login)
        self._refused = None
        logger.info("Kimi login stored at %s", self.store.path)
        return login

    async def logout(self) -> bool:
        """Delete the stored login. True if there was one."""
        self._refused = None
        return await self.store.delete()

    # ---- refresh -----------------------------------------------------------------------------------------------

    def _is_refused(self, login: StoredLogin) -> bool:
        return login.refresh_rejected or self._refused == _fingerprint(login)

    def _usable(self, login: StoredLogin | None) -> StoredLogin:
        if login is None:
            raise LoginRequired()
        if self._is_refused(login):
            raise LoginRequired(EXPIRED)
        return login

    async def _refresh(self, *, rejected: str | None) -> str:
        async with self.store.locked() as locked:
            # Re-read under the lock: another process may have refreshed while we waited (§3).
            current = self._usable(await locked.load())
            stale = rejected is not None and current.access_token.get_secret_value() == rejected
            if not stale and not needs_refresh(current):
                logger.debug("using the Kimi token another task or process refreshed")
                return current.access_token.get_secret_value()
            # Shielded: a refresh token rotates on use (§3). Cancelled between the request and the save, we
            # would keep the spent token on disk and the next refresh would fail with invalid_grant. The OAuth
            # calls' own timeouts bound how long this can take.
            with anyio.CancelScope(shield=True):
                answer = await self._request_refresh(current, locked)
                fresh = StoredLogin.from_token_response(answer, "refresh")
                await locked.save(fresh)
            logger.info("Kimi login refreshed; the new token is valid for %d s", answer.expires_in)
            return fresh.access_token.get_secret_value()

    async def _request_refresh(self, current: StoredLogin, locked: LockedCredentials) -> TokenResponse:
        """One refresh; 429/5xx/network answers are retried a few times with backoff (§3), nothing else is.

        If the service rotated the token but its answer was lost, the retry gets `invalid_grant`: a new login is
        then the only way out, which is the price of rotation, not a loop.
        """
        form = {"grant_type": "refresh_token", "refresh_token": current.refresh_token.get_secret_value()}
        status: int | None = None
        for attempt, delay in enumerate((*self._retry_delays, None)):
            try:
                response = await post_form(self._http, self._settings, TOKEN_PATH, form)
            except httpx2.TransportError as exc:
                status, detail, wait = None, f"token refresh: {type(exc).__name__}", delay
            else:
                status, code = response.status_code, error_code(response)
                if status == 200:
                    try:
                        return parse_token_response(response)
                    except MalformedAnswer as exc:
                        # Not retried: the refresh token may already be spent (§3 rotation).
                        raise ServiceUnavailable(f"token refresh: {exc}", status) from None
                if status in (401, 403) or code == "invalid_grant":
                    await self._mark_refused(current, locked)
                    raise LoginRequired(EXPIRED)
                if status != 429 and status < 500:
                    await self._mark_refused(current, locked)  # any other refusal: never resend it either
                    raise LoginRequired(
                        f"Kimi's login service would not refresh the login ({status}{': ' + code if code else ''})."
                    )
                detail = f"token refresh: HTTP {status}"
                wait = retry_after_of(response, _RETRY_AFTER_CAP) if delay is not None else None
                wait = delay if wait is None else wait
            if wait is None:
                break
            logger.warning("%s; retry %d in %.1f s", detail, attempt + 1, wait)
            await anyio.sleep(wait)
        raise ServiceUnavailable(detail, status)

    async def _mark_refused(self, current: StoredLogin, locked: LockedCredentials) -> None:
        """Remember the refusal here and in the file, so no process sends this refresh token again (§3)."""
        self._refused = _fingerprint(current)
        logger.warning("Kimi refused the stored refresh token; a new login is needed")
        await locked.save(current.model_copy(update={"refresh_rejected": True}))
