"""RFC 8628 device login against the Kimi OAuth host (kimi-wire.md §3).

`start_device_authorization()` asks for a device code; show its `url` and `user_code` to the user; then
`poll_for_token()` polls until the user approves, denies, or the code expires. Both are cancellable (anyio) and
every failure is a `LoginFailed` whose text says what to do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kimi_mcp.auth.oauth import (
    DEVICE_AUTHORIZATION_PATH,
    DEVICE_GRANT,
    TOKEN_PATH,
    MalformedAnswer,
    TokenResponse,
    error_code,
    parse_token_response,
    post_form,
)
from kimi_mcp.errors import LoginFailed
from kimi_mcp.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollTiming:
    """How fast to poll. The defaults follow kimi-wire.md §3; tests shrink them to run in milliseconds."""

    min_interval: float = 1.0  # poll every max(interval, 1) s
    slow_down_step: float = 5.0  # `slow_down` adds 5 s to the interval
    max_transient_failures: int = 5  # consecutive network/5xx/429 answers before giving up


class DeviceAuthorization(BaseModel):
    """The device-authorization answer. `device_code` is a secret (it can be exchanged for tokens)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    device_code: SecretStr = Field(min_length=1)
    user_code: str = Field(min_length=1)
    verification_uri: str = Field(min_length=1)
    verification_uri_complete: str | None = None
    expires_in: int = Field(1800, gt=0)
    interval: int = Field(5, ge=0)
    received_at: float = Field(default_factory=time.monotonic, exclude=True)

    @property
    def url(self) -> str:
        """The page to show: the complete URL (code pre-filled) when given, else the plain one (§3)."""
        return self.verification_uri_complete or self.verification_uri

    def remaining(self) -> float:
        """Seconds until the device code expires."""
        return max(0.0, self.received_at + self.expires_in - time.monotonic())


def _unreachable(settings: Settings, exc: Exception) -> LoginFailed:
    return LoginFailed(
        f"Could not reach Kimi's login service at {settings.oauth_host} ({type(exc).__name__}). "
        "Check the network (and KIMI_CODE_OAUTH_HOST if you set it), then try again."
    )


async def start_device_authorization(http: httpx2.AsyncClient, settings: Settings) -> DeviceAuthorization:
    """Ask the OAuth host for a device code and the page where the user approves it."""
    try:
        response = await post_form(http, settings, DEVICE_AUTHORIZATION_PATH, {})
    except httpx2.TransportError as exc:
        raise _unreachable(settings, exc) from None
    if response.status_code != 200:
        code = error_code(response)
        raise LoginFailed(
            f"Kimi's login service would not start a login ({response.status_code}"
            f"{': ' + code if code else ''}). Try again in a minute; if it persists, use KIMI_API_KEY instead."
        )
    try:
        authorization = DeviceAuthorization.model_validate_json(response.content)
    except ValidationError:
        raise LoginFailed("Kimi's login service sent an answer we cannot read. Try again later.") from None
    logger.debug("device login started; code valid for %s s", authorization.expires_in)
    return authorization


async def poll_for_token(
    http: httpx2.AsyncClient,
    settings: Settings,
    authorization: DeviceAuthorization,
    *,
    timing: PollTiming | None = None,
) -> TokenResponse:
    """Poll the token endpoint until the login is approved; raise `LoginFailed` when it cannot be (§3)."""
    timing = timing or PollTiming()
    interval = max(float(authorization.interval), timing.min_interval)
    form = {"device_code": authorization.device_code.get_secret_value(), "grant_type": DEVICE_GRANT}
    failures = 0
    while True:
        remaining = authorization.remaining()
        if remaining <= 0:
            raise _expired()
        await anyio.sleep(min(interval, remaining))
        try:
            response = await post_form(http, settings, TOKEN_PATH, form)
        except httpx2.TransportError as exc:
            failures = _transient(failures, timing, _unreachable(settings, exc))
            continue
        if response.status_code == 200:
            try:
                return parse_token_response(response)
            except MalformedAnswer as exc:
                raise LoginFailed(f"Kimi approved the login but {exc}. Try `kimi-mcp login` again.") from None
        code = error_code(response)
        if code == "authorization_pending":
            failures = 0
        elif code == "slow_down":
            failures = 0
            interval += timing.slow_down_step
            logger.debug("device login: slow_down, polling every %.2f s", interval)
        elif code == "expired_token":
            raise _expired()
        elif code == "access_denied":
            raise LoginFailed("The Kimi login was denied on the approval page. Nothing was stored.")
        elif response.status_code == 429 or response.status_code >= 500:
            failures = _transient(failures, timing, _service_failed(response.status_code))
        else:
            raise LoginFailed(
                f"Kimi's login service ended the login ({response.status_code}{': ' + code if code else ''}). "
                "Start the login again."
            )


def _expired() -> LoginFailed:
    return LoginFailed("The login code expired before it was approved. Start the login again to get a new code.")


def _service_failed(status: int) -> LoginFailed:
    return LoginFailed(f"Kimi's login service kept failing ({status}). Try the login again in a few minutes.")


def _transient(failures: int, timing: PollTiming, error: LoginFailed) -> int:
    """Count one transient poll failure; keep polling until too many come in a row, then raise `error`."""
    failures += 1
    if failures >= timing.max_transient_failures:
        raise error
    return failures
