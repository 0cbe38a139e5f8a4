"""Where a request's Bearer token comes from: `KIMI_API_KEY`, else the stored OAuth login (docs/kimi-api.md §3, §4).

`TokenSource.token()` refreshes a stored login early, under the store's cross-process lock, after re-reading the
file: if another process refreshed meanwhile its token is used and nothing is sent. Refresh tokens rotate, so
one is never sent after a success; a refusal (`invalid_grant`/401/403) is final until a new login, and is
written to the file so other processes stop too. Any other failure (429/5xx/network after retries, another 4xx)
is a failed refresh: the stored login is kept as it was and tried again on the next call. `recover()` is the
one-shot answer to an API 401 (§9).

Time: each refresh attempt is bounded by `ATTEMPT_SECONDS` and by the time left to the caller's deadline (the
chat's `KIMI_MCP_TIMEOUT`), and retries start only while time is left. Each attempt and the save of its answer are
shielded from cancellation, so an answer that arrived is always stored; an attempt cut by the deadline leaves
the stored login untouched, and the caller's own timeout is what the user sees.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import anyio
import anyio.lowlevel
import httpx2
from pydantic import BaseModel

from kimi_mcp.auth.oauth import (
    TOKEN_PATH,
    MalformedAnswer,
    TokenResponse,
    carries_access_token,
    error_code,
    parse_token_response,
    post_form,
)
from kimi_mcp.auth.oauth import retry_after as retry_after_of
from kimi_mcp.auth.store import CredentialStore, LockedCredentials, StoredLogin
from kimi_mcp.errors import CredentialsCorrupt, LoginRequired, ServiceUnavailable, Unauthorized
from kimi_mcp.netcause import describe_transport_error
from kimi_mcp.settings import Settings

logger = logging.getLogger(__name__)

EXPIRED = "Your Kimi login has expired."
LOST_ROTATION = (
    "Your Kimi login has expired: a token refresh reached Kimi, which replaced the token, but its answer was lost "
    "on the way back, so you need to log in again."
)
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.5, 4.0)  # refresh retries on 429/5xx/network (§3)
ATTEMPT_SECONDS = 30.0  # one refresh attempt, whatever the caller's deadline (the OAuth host answers in < 1 s)
STILL_VALID_SECONDS = 30.0  # a failed early refresh falls back to the current token if it lives this much longer
_RETRY_AFTER_CAP = 10.0
# Failures where the request cannot have reached the service: nothing can have rotated.
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)


@dataclass(frozen=True)
class _Transient:
    """A refresh attempt that may succeed if tried again (429/5xx/network/no answer within `ATTEMPT_SECONDS`)."""

    detail: str
    status: int | None = None
    retry_after: float | None = None


class _CutByDeadline:
    """A refresh attempt the caller's deadline ended before any answer came."""


class AuthState(BaseModel):
    """What the user may know about the credentials. Never a token."""

    logged_in: bool
    method: Literal["api_key", "oauth", "none"]
    expires_at: str | None = None  # ISO 8601 (UTC) expiry of the current OAuth access token
    problem: str | None = None  # why a (new) login is needed, when one is


def refresh_margin(lifetime: float) -> float:
    """Refresh when less than this many seconds remain: max(300 s, expires_in/2) (docs/kimi-api.md §3).

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
        self.attempt_seconds = ATTEMPT_SECONDS
        self._refused: str | None = None  # fingerprint of a refresh token Kimi refused (kept in memory too)
        self._lost: str | None = None  # fingerprint of a refresh token sent in a refresh whose answer was lost

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
        # Read the caller's deadline here: inside the shields below it reads as infinite.
        deadline = anyio.current_effective_deadline()
        async with self.store.locked() as locked:
            # Re-read under the lock: another process may have refreshed while we waited (§3).
            current = self._usable(await locked.load())
            stale = rejected is not None and current.access_token.get_secret_value() == rejected
            if not stale and not needs_refresh(current):
                logger.debug("using the Kimi token another task or process refreshed")
                return current.access_token.get_secret_value()
            try:
                fresh = await self._request_refresh(current, locked, deadline)
            except ServiceUnavailable:
                left = current.expires_at - time.time()
                if stale or left < STILL_VALID_SECONDS:
                    raise
                # The refresh was early (§3): the current token still works, so this call need not fail.
                logger.warning("Kimi token refresh failed; using the current token (valid %.0f s more)", left)
                return current.access_token.get_secret_value()
            return fresh.access_token.get_secret_value()

    async def _request_refresh(self, current: StoredLogin, locked: LockedCredentials, deadline: float) -> StoredLogin:
        """Refresh and store; 429/5xx/network answers are retried a few times with backoff (§3), nothing else is.

        If the service rotated the token but its answer was lost, the retry gets `invalid_grant`: a new login is
        then the only way out, which is the price of rotation, not a loop.
        """
        form = {"grant_type": "refresh_token", "refresh_token": current.refresh_token.get_secret_value()}
        for attempt, delay in enumerate((*self._retry_delays, None)):
            outcome = await self._attempt(current, locked, form, deadline)
            if isinstance(outcome, StoredLogin):
                return outcome
            if isinstance(outcome, _CutByDeadline):
                await anyio.lowlevel.checkpoint()  # the caller's scope is due: its cancellation surfaces here
                raise ServiceUnavailable("token refresh: no answer in the time the call had left")
            last = outcome
            wait = delay if last.retry_after is None or delay is None else last.retry_after
            if wait is None or anyio.current_time() + wait >= deadline:
                break  # out of retries, or of the caller's time: report the last failure
            logger.warning("%s; retry %d in %.1f s", last.detail, attempt + 1, wait)
            await anyio.sleep(wait)  # not shielded: a cancelled call stops retrying here
        raise ServiceUnavailable(last.detail, last.status)

    async def _attempt(
        self, current: StoredLogin, locked: LockedCredentials, form: dict[str, str], deadline: float
    ) -> StoredLogin | _Transient | _CutByDeadline:
        """One refresh request and, if it brings tokens, their save.

        Shielded: a refresh token rotates on use (§3). Cancelled between the answer and the save, we would keep
        the spent token on disk and the next refresh would fail with invalid_grant. The bound keeps the shield
        from outliving the caller's deadline.
        """
        left = deadline - anyio.current_time()
        by_deadline = left <= self.attempt_seconds
        with anyio.CancelScope(shield=True):
            response: httpx2.Response | None = None
            try:
                with anyio.move_on_after(min(self.attempt_seconds, max(left, 0.0))):
                    response = await post_form(self._http, self._settings, TOKEN_PATH, form)
            except httpx2.TransportError as exc:
                if not isinstance(exc, _NOT_SENT):
                    self._lost = _fingerprint(current)  # it may have reached Kimi and rotated the token
                return _Transient(f"token refresh: {describe_transport_error(exc, self._settings.oauth_host)}")
            if response is None:
                self._lost = _fingerprint(current)
                if by_deadline:
                    logger.warning("Kimi token refresh cut by the call's time limit; the stored login is unchanged")
                    return _CutByDeadline()
                return _Transient(f"token refresh: no answer within {self.attempt_seconds:g} s")
            return await self._settle(response, current, locked)

    async def _settle(
        self, response: httpx2.Response, current: StoredLogin, locked: LockedCredentials
    ) -> StoredLogin | _Transient:
        """Store the tokens of an answer, or say what the answer means for the login (§3)."""
        status, code = response.status_code, error_code(response)
        if carries_access_token(response) or (status == 200 and code is None):
            try:
                answer = parse_token_response(response)
            except MalformedAnswer as exc:
                # Not retried: the refresh token may already be spent (§3 rotation).
                raise ServiceUnavailable(f"token refresh: {exc}", status) from None
            fresh = StoredLogin.from_token_response(answer, "refresh")
            await locked.save(fresh)
            self._lost = None
            logger.info("Kimi login refreshed; the new token is valid for %d s", answer.expires_in)
            return fresh
        if status in (401, 403) or code == "invalid_grant":
            lost = self._lost == _fingerprint(current)
            await self._mark_refused(current, locked)
            raise LoginRequired(LOST_ROTATION if lost else EXPIRED)
        if status == 429 or status >= 500:
            return _Transient(f"token refresh: HTTP {status}", status, retry_after_of(response, _RETRY_AFTER_CAP))
        # Any other answer is a failed refresh, not a dead login (§3): nothing is marked, the next call tries again.
        raise ServiceUnavailable(f"token refresh: HTTP {status}{': ' + code if code else ''}", status)

    async def _mark_refused(self, current: StoredLogin, locked: LockedCredentials) -> None:
        """Remember the refusal here and in the file, so no process sends this refresh token again (§3)."""
        self._refused = _fingerprint(current)
        logger.warning("Kimi refused the stored refresh token; a new login is needed")
        await locked.save(current.model_copy(update={"refresh_rejected": True}))
