"""Device login from inside a running server: one at a time, polled in the background (docs/kimi-api.md §3).

`LoginManager.begin()` starts a device login (or returns the one in progress) and hands back what the user
needs: the URL and the code. A task in the caller's task group polls and stores the login on approval; the
`TokenSource` reads it on the next `token()`, so no restart is needed. Failures land in `status().last_error`;
they never escape the task group.
"""

from __future__ import annotations

import logging

import anyio
import httpx2
from anyio.abc import TaskGroup
from pydantic import BaseModel

from kimi_mcp.auth.device_flow import DeviceAuthorization, PollTiming, poll_for_token, start_device_authorization
from kimi_mcp.auth.tokens import TokenSource
from kimi_mcp.errors import KimiMcpError
from kimi_mcp.settings import Settings

logger = logging.getLogger(__name__)


class LoginPrompt(BaseModel):
    """What to show the user: open `verification_uri_complete` (or the plain URI and type `user_code`)."""

    verification_uri: str | None
    verification_uri_complete: str
    user_code: str
    expires_in: int  # seconds left to approve
    previous_error: str | None = None  # why the login before this one did not complete, if it did not


class LoginStatus(BaseModel):
    login_in_progress: bool
    verification_uri_complete: str | None = None
    user_code: str | None = None
    expires_in: int | None = None
    last_error: str | None = None


def _prompt(authorization: DeviceAuthorization) -> LoginPrompt:
    return LoginPrompt(
        verification_uri=authorization.verification_uri,
        verification_uri_complete=authorization.url,
        user_code=authorization.user_code,
        expires_in=int(authorization.remaining()),
    )


class LoginManager:
    """At most one device login per server process."""

    def __init__(
        self, settings: Settings, http: httpx2.AsyncClient, tokens: TokenSource, *, timing: PollTiming | None = None
    ) -> None:
        self._settings = settings
        self._http = http
        self._tokens = tokens
        self.timing = timing  # None: the docs/kimi-api.md §3 defaults; tests set a fast PollTiming
        self._starting = anyio.Lock()
        self._current: DeviceAuthorization | None = None
        self._finished = anyio.Event()
        self._finished.set()
        self.last_error: str | None = None

    async def begin(self, task_group: TaskGroup) -> LoginPrompt:
        """Start a device login in `task_group`, or return the one in progress. Raises `LoginFailed` if it cannot."""
        async with self._starting:
            current = self._current
            if current is not None and current.remaining() > 0:
                return _prompt(current)
            authorization = await start_device_authorization(self._http, self._settings)
            previous_error, self.last_error = self.last_error, None
            self._current, self._finished = authorization, anyio.Event()
            task_group.start_soon(self._run, authorization, self._finished, name="kimi-mcp device login")
            return _prompt(authorization).model_copy(update={"previous_error": previous_error})

    def status(self) -> LoginStatus:
        current = self._current
        if current is None or current.remaining() <= 0:
            return LoginStatus(login_in_progress=False, last_error=self.last_error)
        return LoginStatus(
            login_in_progress=True,
            verification_uri_complete=current.url,
            user_code=current.user_code,
            expires_in=int(current.remaining()),
            last_error=self.last_error,
        )

    async def wait(self) -> None:
        """Wait until the login in progress (if any) has ended, approved or not."""
        await self._finished.wait()

    async def _run(self, authorization: DeviceAuthorization, finished: anyio.Event) -> None:
        error: str | None = None
        try:
            answer = await poll_for_token(self._http, self._settings, authorization, timing=self.timing)
            await self._tokens.save_login(answer)
            logger.info("Kimi login approved and stored")
        except KimiMcpError as exc:
            error = exc.message
            logger.warning("Kimi login did not complete: %s", exc.message)
        except Exception as exc:  # never let a login crash the server's task group
            error = f"The Kimi login failed unexpectedly ({type(exc).__name__}). Try again."
            logger.error("Kimi login failed unexpectedly: %s", type(exc).__name__)
        finally:
            if self._current is authorization or self._current is None:
                self.last_error = error
            if self._current is authorization:
                self._current = None
            finished.set()
