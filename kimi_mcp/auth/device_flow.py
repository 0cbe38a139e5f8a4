"""RFC 8628 device login against the Kimi OAuth host (docs/kimi-api.md §3).

`start_device_authorization()` asks for a device code; show its `url` and `user_code` to the user; then
`poll_for_token()` polls until the user approves, denies, or the code expires. Both are cancellable (anyio) and
every failure is a `LoginFailed` whose text says what to do.

We read answers as Moonshot's own client does (docs/kimi-api.md §3): only `device_code`, `user_code` and
`verification_uri_complete` are required of the device answer; the first poll goes out at once and the wait comes
after it; and any poll answer without `access_token` is read for its OAuth `error`, whatever its HTTP status.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from kimi_mcp.auth.oauth import (
    DEVICE_AUTHORIZATION_PATH,
    DEVICE_GRANT,
    TOKEN_PATH,
    MalformedAnswer,
    TokenResponse,
    carries_access_token,
    error_code,
    parse_token_response,
    post_form,
)
from kimi_mcp.errors import LoginFailed
from kimi_mcp.netcause import describe_transport_error
from kimi_mcp.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollTiming:
    """How fast to poll. The defaults follow docs/kimi-api.md §3; tests shrink them to run in milliseconds."""

    min_interval: float = 1.0  # poll every max(interval, 1) s
    slow_down_step: float = 5.0  # `slow_down` adds 5 s to the interval
    max_transient_failures: int = 5  # consecutive network/5xx/429 answers before giving up


class DeviceAuthorization(BaseModel):
    """The device-authorization answer. `device_code` is a secret (it can be exchanged for tokens)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    device_code: SecretStr = Field(min_length=1)
    user_code: str = Field(min_length=1)
    verification_uri_complete: str  # required, as Moonshot's client requires it (§3)
    verification_uri: str | None = None  # optional (§3)
    expires_in: int = Field(1800, gt=0)
    interval: int = Field(5, ge=0)
    received_at: float = Field(default_factory=time.monotonic, exclude=True)

    @model_validator(mode="after")
    def _has_a_page(self) -> DeviceAuthorization:
        if not self.url:
            raise ValueError("no verification URI")
        return self

    @property
    def url(self) -> str:
        """The page to show: the complete URL (code pre-filled), else the plain one (§3)."""
        return self.verification_uri_complete or self.verification_uri or ""

    def remaining(self) -> float:
        """Seconds until the device code expires."""
        return max(0.0, self.received_at + self.expires_in - time.monotonic())


def _unreachable(settings: Settings, exc: Exception) -> LoginFailed:
    cause = describe_transport_error(exc, settings.oauth_host)
    return LoginFailed(
        f"Could not reach Kimi's login service at {settings.oauth_host} ({cause}). "
        "Check the network (and KIMI_CODE_OAUTH_HOST if you set it), then try again."
    )


async def start_device_authorization(http: httpx2.AsyncClient, settings: Settings) -> DeviceAuthorization:
    """Ask the OAuth host for a device code and the page where the user approves it."""
    try:
        response = await post_form(http, settings, DEVICE_AUTHORIZATION_PATH, {})
    except httpx2.TransportError as exc:
        raise _unreachable(settings, exc) from None
    code = error_code(response)
    if response.status_code != 200 or code is not None:
        raise LoginFailed(
            f"Kimi's login service would not start a login ({response.status_code}"
            f"{': ' + code if code else ''}). Try again in a minute; if it persists, use KIMI_API_KEY instead."
        )
    try:
        authorization = DeviceAuthorization.model_validate_json(response.content)
    except ValidationError as exc:
        # Name the fields only: the values include the device code, a secret.
        fields = sorted({".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()})
        raise LoginFailed(
            f"Kimi's login service sent an answer we cannot read (missing or bad: {', '.join(fields)}). "
            "Try again later."
        ) from None
    logger.debug("device login started; code valid for %s s", authorization.expires_in)
    return authorization


async def poll_for_token(
    http: httpx2.AsyncClient,
    settings: Settings,
    authorization: DeviceAuthorization,
    *,
    timing: PollTiming | None = None,
) -> TokenResponse:
    """Poll the token endpoint until the login is approved; raise `LoginFailed` when it cannot be (§3).

    Poll first, then wait: the user may have approved while the code was shown, and the official client does so.
    """
    timing = timing or PollTiming()
    interval = max(float(authorization.interval), timing.min_interval)
    form = {"device_code": authorization.device_code.get_secret_value(), "grant_type": DEVICE_GRANT}
    failures = 0
    while True:
        if authorization.remaining() <= 0:
            raise _expired()
        answer, failures, interval = await _poll_once(http, settings, form, failures, interval, timing)
        if answer is not None:
            return answer
        remaining = authorization.remaining()
        if remaining <= 0:
            raise _expired()
        await anyio.sleep(min(interval, remaining))


async def _poll_once(
    http: httpx2.AsyncClient,
    settings: Settings,
    form: dict[str, str],
    failures: int,
    interval: float,
    timing: PollTiming,
) -> tuple[TokenResponse | None, int, float]:
    """One poll: (the tokens if approved, the transient-failure count, the interval) or `LoginFailed`."""
    try:
        response = await post_form(http, settings, TOKEN_PATH, form)
    except httpx2.TransportError as exc:
        return None, _transient(failures, timing, _unreachable(settings, exc)), interval
    if carries_access_token(response):
        try:
            return parse_token_response(response), 0, interval
        except MalformedAnswer as exc:
            raise LoginFailed(f"Kimi approved the login but {exc}. Try `kimi-mcp login` again.") from None
    # Any answer without `access_token` is read for `error`, even a 200 (§3).
    code = error_code(response)
    if code == "authorization_pending":
        return None, 0, interval
    if code == "slow_down":
        logger.debug("device login: slow_down, polling every %.2f s", interval + timing.slow_down_step)
        return None, 0, interval + timing.slow_down_step
    if code == "expired_token":
        raise _expired()
    if code == "access_denied":
        raise LoginFailed("The Kimi login was denied on the approval page. Nothing was stored.")
    if response.status_code == 429 or response.status_code >= 500:
        return None, _transient(failures, timing, _service_failed(response.status_code)), interval
    if response.status_code == 200:
        raise LoginFailed("Kimi's login service answered the login without a token or an error. Try again later.")
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
