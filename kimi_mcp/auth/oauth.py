"""The OAuth host's wire (docs/kimi-api.md §3): form-encoded POSTs and the token answer, shared by login and refresh.

Requests go through the one httpx2 client of `kimi_mcp.http.build_http_client`, so each carries our identity
headers (docs/kimi-api.md §2). Nothing here logs or formats a response body: token answers hold secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kimi_mcp.settings import Settings

DEVICE_AUTHORIZATION_PATH = "/api/oauth/device_authorization"
TOKEN_PATH = "/api/oauth/token"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# OAuth answers are small and quick; a hung one must not stall a login or a refresh for the chat timeout.
_TIMEOUT = httpx2.Timeout(30.0, connect=15.0)
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class TokenResponse(BaseModel):
    """A 200 from the token endpoint (docs/kimi-api.md §3). Secrets are `SecretStr`: reprs and dumps mask them."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    access_token: SecretStr = Field(min_length=1)
    refresh_token: SecretStr = Field(min_length=1)
    expires_in: int = 900
    scope: str = ""
    token_type: str = "Bearer"


class MalformedAnswer(Exception):
    """The OAuth host answered 200 with a body we cannot use. The message names fields, never values."""


async def post_form(
    http: httpx2.AsyncClient, settings: Settings, path: str, form: Mapping[str, str]
) -> httpx2.Response:
    """POST `form` (urlencoded, plus our client id) to the OAuth host. Transport errors propagate."""
    data = {"client_id": settings.oauth_client_id, **form}
    return await http.post(
        f"{settings.oauth_host}{path}", data=data, headers={"Accept": "application/json"}, timeout=_TIMEOUT
    )


def error_code(response: httpx2.Response) -> str | None:
    """The OAuth `error` code of an answer, if it has a well-formed one (only the code: descriptions may echo input)."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else None


def carries_access_token(response: httpx2.Response) -> bool:
    """True when the answer is a JSON object with an `access_token` key: the one sign of tokens (docs/kimi-api.md §3).

    Moonshot's client reads `error` from any answer without one, whatever the HTTP status; so do we.
    """
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "access_token" in body


def parse_token_response(response: httpx2.Response) -> TokenResponse:
    try:
        return TokenResponse.model_validate_json(response.content)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()})
        raise MalformedAnswer(f"the token answer is missing or has bad fields: {', '.join(fields)}") from None


def retry_after(response: httpx2.Response, cap: float) -> float | None:
    """`Retry-After` in seconds (numeric form only), capped; None when absent or unreadable."""
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), cap)
    except ValueError:
        return None
