"""What `kimi_login_status` and `kimi://login` report: credential kind, login in progress, and the quota.

Never a token: `TokenSource.state()` and `LoginManager.status()` hold none.
"""

from __future__ import annotations

from typing import Any

from kimi_mcp import errors
from kimi_mcp.server.state import AppState


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
    try:
        quota = await state.kimi.quota()
    except errors.KimiMcpError as exc:
        report["quota_error"] = exc.message
    else:
        report["quota"] = quota.model_dump(mode="json")
    return report
