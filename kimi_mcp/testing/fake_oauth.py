"""The fake Kimi OAuth host: device login and refresh with rotation, exactly as docs/kimi-api.md §3 describes.

Mounted at the root of `fake_kimi.FakeKimi` (which relies only on `routes()` and `is_valid_access_token()`).
Tests steer it with hooks: `script_polls()`, `approve()`, `deny()`, `expire_code()`, `access_ttl`, `interval`,
`omit_device_fields`, `refresh_faults`, `refresh_delay`, `issue_tokens()`, `revoke_access()`, `revoke_all()`.
All state sits behind one lock: the server runs in its own thread and several processes may hit it at once.

Refresh faults model what a real network does to a refresh (docs/kimi-api.md §3, §9): an HTTP error, `invalid_grant`,
an answer that never comes (`"hang"`: the request never reached the service, nothing rotated), and an answer lost
after the service already rotated the token (`"rotate_then_drop"`: socket closed; `"rotate_then_hang"`: never
answered). After a lost rotation the old refresh token is spent, exactly as on the real service.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from kimi_mcp.settings import DEFAULT_OAUTH_CLIENT_ID
from kimi_mcp.testing.fake_answer import DroppedConnection, Exchange

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels, no look-alikes

Decision = Literal["pending", "approved", "denied", "expired"]
LostAnswer = Literal["hang", "rotate_then_drop", "rotate_then_hang"]
# An HTTP status (with `server_error`), `(status, OAuth error code)`, `invalid_grant` (400) or a lost answer.
RefreshFault = int | tuple[int, str] | Literal["invalid_grant"] | LostAnswer


@dataclass
class _DeviceCode:
    user_code: str
    expires_at: float  # monotonic
    decision: Decision = "pending"
    consumed: bool = False


@dataclass
class PollRecord:
    """One poll of the token endpoint as the fake saw it (for interval checks)."""

    at: float  # monotonic
    answer: str  # "issued" or the OAuth error code


@dataclass
class _RefreshToken:
    used: bool = False
    revoked: bool = False


@dataclass
class _State:
    devices: dict[str, _DeviceCode] = field(default_factory=dict)
    access: dict[str, float] = field(default_factory=dict)  # token -> expires_at (unix)
    refresh: dict[str, _RefreshToken] = field(default_factory=dict)
    scripted: deque[tuple[str, int]] = field(default_factory=deque)  # (OAuth error code, HTTP status)
    held_decision: Decision | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt_like(expires_at: float) -> str:
    """An `eyJ…` token of three base64url parts, shaped like Kimi's JWT access tokens (docs/kimi-api.md §4)."""
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = {"iss": "fake-kimi", "sub": "fake-user", "exp": int(expires_at), "jti": secrets.token_hex(8)}
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(32))}"


class _NeverAnswer:
    """Reads the request and answers nothing until the client gives up (or the fake stops)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass


def _exchange_of(request: Request) -> Exchange:
    """The exchange `FakeKimi` put in the scope (found by type: this module must not import fake_kimi)."""
    for value in request.scope.values():
        if isinstance(value, Exchange):
            return value
    raise RuntimeError("the fake OAuth host can drop connections only when mounted in FakeKimi")


def _oauth_error(error: str, status: int = 400, description: str = "") -> JSONResponse:
    body = {"error": error, "error_description": description or error.replace("_", " ")}
    return JSONResponse(body, status_code=status)


class FakeOAuth:
    """An in-memory OAuth host. Thread-safe; every public attribute may be changed by a test at any time."""

    def __init__(self, *, client_id: str = DEFAULT_OAUTH_CLIENT_ID, require_identity: bool = True) -> None:
        self.client_id = client_id
        self.require_identity = require_identity
        self.interval = 5  # seconds the device flow asks the client to wait between polls
        self.omit_device_fields: set[str] = set()  # fields left out of the device-authorization answer
        self.code_ttl = 1800  # lifetime of a device code
        self.access_ttl = 900  # access-token lifetime (900 s seen on the real service)
        self.refresh_delay = 0.0  # seconds each refresh takes (to widen races in tests)
        self.refresh_faults: deque[RefreshFault] = deque()  # consumed one per refresh request
        self.poll_log: list[PollRecord] = []
        self.refresh_requests = 0
        self.device_authorizations = 0
        self._state = _State()
        self._issued: list[str] = []  # every secret ever handed out, for leak checks
        self._lock = threading.Lock()

    # ---- routes ------------------------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """Starlette routes served at the OAuth host root (`/api/oauth/...`)."""
        return [
            Route("/api/oauth/device_authorization", self._device_authorization, methods=["POST"]),
            Route("/api/oauth/token", self._token, methods=["POST"]),
        ]

    async def _device_authorization(self, request: Request) -> Response:
        form = await request.form()
        if (refused := self._refuse(request, form.get("client_id"))) is not None:
            return refused
        device_code = secrets.token_urlsafe(24)
        user_code = "-".join("".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(4)) for _ in range(2))
        with self._lock:
            self.device_authorizations += 1
            device = _DeviceCode(user_code, time.monotonic() + self.code_ttl)
            if self._state.held_decision is not None:
                device.decision, self._state.held_decision = self._state.held_decision, None
            self._state.devices[device_code] = device
            self._issued.append(device_code)
            interval, expires_in = self.interval, self.code_ttl
        verification_uri = f"{str(request.base_url).rstrip('/')}/device"
        answer = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
            "expires_in": expires_in,
            "interval": interval,
        }
        return JSONResponse({k: v for k, v in answer.items() if k not in self.omit_device_fields})

    async def _token(self, request: Request) -> Response | _NeverAnswer | DroppedConnection:
        form = await request.form()
        if (refused := self._refuse(request, form.get("client_id"))) is not None:
            return refused
        grant_type = form.get("grant_type")
        if grant_type == DEVICE_GRANT:
            return self._poll(str(form.get("device_code", "")))
        if grant_type == "refresh_token":
            if self.refresh_delay:
                await anyio.sleep(self.refresh_delay)
            answer = self._refresh(str(form.get("refresh_token", "")))
            return DroppedConnection(_exchange_of(request)) if answer == "drop" else answer
        return _oauth_error("unsupported_grant_type")

    def _refuse(self, request: Request, client_id: object) -> Response | None:
        """The OAuth backend requires our device headers (docs/kimi-api.md §2) and a known public client id (§3)."""
        if self.require_identity:
            agent = request.headers.get("user-agent", "")
            if not agent.startswith("kimi-mcp/") or not request.headers.get("x-msh-device-id"):
                return _oauth_error("invalid_request", description="missing device headers")
        if client_id != self.client_id:
            return _oauth_error("invalid_client", status=401)
        return None

    def _poll(self, device_code: str) -> Response:
        with self._lock:
            answer, status, tokens = self._poll_answer(device_code)
            self.poll_log.append(PollRecord(time.monotonic(), answer))
        return JSONResponse(tokens) if tokens is not None else _oauth_error(answer, status)

    def _poll_answer(self, device_code: str) -> tuple[str, int, dict[str, Any] | None]:
        device = self._state.devices.get(device_code)
        if device is None or device.consumed:
            return "invalid_grant", 400, None
        if self._state.scripted:
            return *self._state.scripted.popleft(), None
        if device.decision == "expired" or time.monotonic() >= device.expires_at:
            return "expired_token", 400, None
        if device.decision == "denied":
            return "access_denied", 400, None
        if device.decision == "approved":
            device.consumed = True
            return "issued", 200, self._issue_locked(None)
        return "authorization_pending", 400, None

    def _refresh(self, refresh_token: str) -> Response | _NeverAnswer | Literal["drop"]:
        with self._lock:
            self.refresh_requests += 1
            fault = self.refresh_faults.popleft() if self.refresh_faults else None
            if fault == "hang":
                return _NeverAnswer()  # lost before the service acted: nothing rotated
            if fault == "invalid_grant":
                return _oauth_error("invalid_grant")
            if isinstance(fault, tuple):
                return _oauth_error(fault[1], status=fault[0])
            if isinstance(fault, int):
                headers = {"Retry-After": "0"} if fault == 429 else None
                return JSONResponse({"error": "server_error"}, status_code=fault, headers=headers)
            state = self._state.refresh.get(refresh_token)
            if state is None or state.used or state.revoked:
                # Rotation (docs/kimi-api.md §3): a refresh token works exactly once.
                return _oauth_error("invalid_grant", description="refresh token already used or unknown")
            state.used = True
            issued = self._issue_locked(None)
        if fault == "rotate_then_drop":
            return "drop"  # rotated on the service's side; the answer is lost on the way back
        if fault == "rotate_then_hang":
            return _NeverAnswer()
        return JSONResponse(issued)

    def _issue_locked(self, expires_in: float | None) -> dict[str, Any]:
        ttl = self.access_ttl if expires_in is None else expires_in
        access = _jwt_like(time.time() + ttl)
        refresh = f"rt-{secrets.token_urlsafe(24)}"
        self._state.access[access] = time.time() + ttl
        self._state.refresh[refresh] = _RefreshToken()
        self._issued += [access, refresh]
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": int(ttl),
            "scope": "kimi-code",
            "token_type": "Bearer",
        }

    # ---- what the fake API side asks ---------------------------------------------------------------------------

    def is_valid_access_token(self, token: str) -> bool:
        """True while `token` is a current (issued, not expired, not revoked) access token."""
        with self._lock:
            expires_at = self._state.access.get(token)
        return expires_at is not None and time.time() < expires_at

    # ---- test hooks --------------------------------------------------------------------------------------------

    def script_polls(self, *answers: str, status: int = 400) -> None:
        """Answer the next polls with these OAuth errors (e.g. `authorization_pending`, `slow_down`), in order.

        `status` is the HTTP status they come with: RFC 8628 says 400, but a 200 carrying `error` is read the same.
        """
        with self._lock:
            self._state.scripted.extend((answer, status) for answer in answers)

    def approve(self, user_code: str | None = None) -> None:
        """Approve one code, or every pending one (or, if none is pending yet, the next one)."""
        self._decide("approved", user_code)

    def deny(self, user_code: str | None = None) -> None:
        self._decide("denied", user_code)

    def expire_code(self, user_code: str | None = None) -> None:
        self._decide("expired", user_code)

    def _decide(self, decision: Decision, user_code: str | None) -> None:
        with self._lock:
            pending = [
                d
                for d in self._state.devices.values()
                if d.decision == "pending" and not d.consumed and user_code in (None, d.user_code)
            ]
            if user_code is not None and not pending:
                raise KeyError(f"no pending device code {user_code!r}")
            for device in pending:
                device.decision = decision
            if not pending:
                self._state.held_decision = decision

    def issue_tokens(self, expires_in: float | None = None) -> dict[str, Any]:
        """Issue a token pair directly (a login without the device flow); `expires_in` may be 0 or negative."""
        with self._lock:
            return self._issue_locked(expires_in)

    def revoke_access(self, token: str | None = None) -> None:
        """Invalidate one access token or all of them; refresh tokens keep working (the API then answers 401)."""
        with self._lock:
            for known in [token] if token is not None else list(self._state.access):
                self._state.access.pop(known, None)

    def revoke_all(self) -> None:
        """Invalidate every access and refresh token: the user must log in again."""
        with self._lock:
            self._state.access.clear()
            for state in self._state.refresh.values():
                state.revoked = True

    def issued_secrets(self) -> list[str]:
        """Every device code, access token and refresh token issued so far (for secret-leak checks)."""
        with self._lock:
            return list(self._issued)

    @property
    def poll_count(self) -> int:
        with self._lock:
            return len(self.poll_log)
