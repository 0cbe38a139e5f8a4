"""What `kimi_login_status` and `kimi://login` report: credential kind, login in progress, the backend and the quota.

Never a token: `TokenSource.state()` and `LoginManager.status()` hold none. The backend part (kimi/backend.py,
docs/backends.md) says what the backend at KIMI_CODE_BASE_URL supports: a backend without `/v1/usages` (Moonshot's
pay-as-you-go platform, a gateway) reports `quota_available: false` with a note, not an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kimi_mcp import errors
from kimi_mcp.server.state import AppState

if TYPE_CHECKING:
    from kimi_mcp.kimi.backend import BackendReport

# The backend's fields that the status document shows at its top level instead (as before there was a backend part).
_TOP_LEVEL = {"quota", "quota_available", "quota_problem", "credential_problem", "models_problem"}


async def login_document(state: AppState) -> dict[str, Any]:
    """The login state both the tool and the resource show."""
    auth = await state.kimi.tokens.state()  # type: ignore[attr-defined]
    login = state.login.status()
    document: dict[str, Any] = {
        "logged_in": auth.logged_in,
        "method": auth.method,
        "expires_at": auth.expires_at,
        "login_in_progress": login.login_in_progress,
        "verification_uri_complete": login.verification_uri_complete,
        "user_code": login.user_code,
        "expires_in": login.expires_in,
    }
    if login.last_error:
        document["last_error"] = login.last_error
    if auth.problem:
        document["problem"] = auth.problem
    return document


async def login_status(state: AppState) -> dict[str, Any]:
    report = await login_document(state)
    report.update(base_url=state.settings.base_url, protocol=state.settings.protocol, model=state.settings.model)
    if not report["logged_in"]:
        report["next_step"] = errors.LoginRequired().message
        return report
    from kimi_mcp.kimi.backend import probe  # on first use: the server starts without the side-API models

    backend = await probe(state.kimi)
    report["backend"] = backend.model_dump(mode="json", exclude=_TOP_LEVEL, exclude_none=True)
    report.update(quota_fields(backend))
    return report


def quota_fields(backend: BackendReport) -> dict[str, Any]:
    """`quota` when the backend has one; `quota_available: false` and a note when it has none (404); `quota_error`
    when the lookup failed (a rejected credential included)."""
    if backend.quota is not None:
        return {"quota_available": True, "quota": backend.quota.model_dump(mode="json")}
    if backend.quota_available is False:
        return {"quota_available": False, "quota_note": backend.quota_problem}
    fields: dict[str, Any] = {"quota_error": backend.quota_problem or "the quota could not be read"}
    if backend.models_problem and not backend.credential_problem:
        fields["models_error"] = backend.models_problem
    return fields
