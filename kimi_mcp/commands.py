"""The account commands of the CLI: `kimi-mcp login | logout | status`."""

from __future__ import annotations

import sys
from typing import TextIO

from kimi_mcp import errors
from kimi_mcp.kimi.quota import QuotaWindow
from kimi_mcp.settings import Settings

_BAR_WIDTH = 30


def login(settings: Settings) -> None:
    from kimi_mcp.auth.terminal import login_command

    status = login_command(settings)
    if status:
        raise SystemExit(status)


async def logout(settings: Settings, out: TextIO = sys.stdout) -> None:
    from kimi_mcp.auth.tokens import TokenSource
    from kimi_mcp.http import build_http_client

    async with build_http_client(settings) as http:
        removed = await TokenSource(settings, http).logout()
    print("Logged out: the stored Kimi login was deleted." if removed else "No stored Kimi login to delete.", file=out)
    if settings.api_key is not None:
        print("Note: KIMI_API_KEY is still set, so kimi-mcp keeps using that key.", file=out)


def quota_bar(label: str, window: QuotaWindow) -> str:
    share = min(max(window.used_share, 0.0), 1.0)
    filled = round(share * _BAR_WIDTH)
    bar = "█" * filled + "░" * (_BAR_WIDTH - filled)
    reset = f", resets {window.reset_at}" if window.reset_at else ""
    return f"{label:<8} [{bar}] {share:>4.0%} ({window.used:g} of {window.limit:g}{reset})"


async def status(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Print the login state and the quota. The exit status is 0 only when a credential is set up and Kimi
    answered with it, so scripts and health checks can rely on it; otherwise the printed lines say why."""
    from kimi_mcp.kimi.client import KimiClient

    async with KimiClient(settings) as kimi:
        auth = await kimi.tokens.state()  # type: ignore[attr-defined]
        print(f"Kimi API:  {settings.base_url} ({settings.protocol} wire, model {settings.model})", file=out)
        if not auth.logged_in:
            print(f"Login:     not logged in. {auth.problem or errors.LoginRequired().message}", file=out)
            return 1
        login = {"api_key": "API key (KIMI_API_KEY)", "oauth": "Kimi account (device login)"}[auth.method]
        expiry = f", access token valid until {auth.expires_at}" if auth.expires_at else ""
        print(f"Login:     {login}{expiry}", file=out)
        try:
            quota = await kimi.quota()
        except errors.KimiMcpError as exc:
            print(f"Quota:     unavailable: {exc.message}", file=out)
            return 1
        for label, window in (("5-hour", quota.five_hour), ("weekly", quota.weekly)):
            if window is not None:
                print(quota_bar(label, window), file=out)
    return 0
