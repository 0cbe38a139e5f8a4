"""What `kimi_login_status` reports: credential kind, endpoints, login in progress, and the plan's quota."""

from __future__ import annotations

from typing import Any

from kimi_mcp import errors
from kimi_mcp.server.app import AppState


async def login_status(state: AppState) -> dict[str, Any]:
    auth = await state.kimi.tokens.state()  # type: ignore[attr-defined]
    login = state.login.status()
    report: dict[str, Any] = {
        "logged_in": auth.logged_in,
        "method": auth.method,
        "expires_at": auth.expires_at,
        "base_url": state.settings.base_url,
        "protocol": state.settings.protocol,
        "model": state.settings.model,
        "login_in_progress": login.login_in_progress,
    }
    if login.login_in_progress:
        report.update(
            verification_uri_complete=login.verification_uri_complete,
            user_code=login.user_code,
            expires_in=login.expires_in,
        )
    if login.last_error:
        report["last_login_error"] = login.last_error
    if auth.problem:
        report["problem"] = auth.problem
    if not auth.logged_in:
        report["next_step"] = errors.LoginRequired().message
        return report
    try:
        quota = await state.kimi.quota()
    except errors.KimiMcpError as exc:
        report["quota_error"] = exc.message
    else:
        report["quota"] = quota.model_dump(mode="json")
    return report
