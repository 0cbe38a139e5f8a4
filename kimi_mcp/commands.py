"""The account commands of the CLI: `kimi-mcp login | logout | status`."""

from __future__ import annotations

import sys
from typing import TextIO

from kimi_mcp import errors
from kimi_mcp.kimi.backend import BackendReport
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
    """Print the login state, the backend (docs/backends.md), the quota and the conversation store. The exit status
    is 0 only when a credential is set up and Kimi answered with it, so scripts and health checks can rely on it;
    otherwise the printed lines say why. A backend without plan usage (no /v1/usages) says so and is not a failure;
    nor is the store, which only adds its line (logged in or not)."""
    from kimi_mcp.conversations_command import store_line

    code = await _account_status(settings, out)
    print(await store_line(settings), file=out)
    return code


async def _account_status(settings: Settings, out: TextIO) -> int:
    from kimi_mcp.kimi.backend import probe
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
        backend = await probe(kimi)
    for line in backend_lines(backend):
        print(line, file=out)
    return 0 if backend.credential_works and backend.quota_available is not None else 1


def backend_lines(backend: BackendReport) -> list[str]:
    lines = [f"Backend:   {backend.description}; inferred from {backend.inferred_from}"]
    window = f"context {backend.context_tokens:,} tokens ({_context_source(backend)})"
    if backend.model_listed:
        efforts = f", thinking efforts {', '.join(backend.thinking_efforts)}" if backend.thinking_efforts else ""
        lines.append(f"Model:     {backend.model}, listed by /v1/models; {window}{efforts}")
    elif backend.model_listed is False:
        listed = ", ".join((backend.listed_models or [])[:20]) or "none"
        lines.append(f"Model:     {backend.model}, NOT listed by /v1/models (it lists {listed}); {window}")
    else:
        problem = backend.models_problem or "not read"
        lines.append(f"Model:     {backend.model} (model list unavailable: {problem}); {window}")
    if backend.quota is not None:
        windows = (("5-hour", backend.quota.five_hour), ("weekly", backend.quota.weekly))
        lines += [quota_bar(label, w) for label, w in windows if w is not None]
    elif backend.quota_available is False:
        lines.append("Quota:     not available on this backend (no /v1/usages; only a Kimi Code plan reports usage)")
    else:
        lines.append(f"Quota:     unavailable: {backend.quota_problem}")
    lines += [f"Note:      {note}" for note in backend.advice]
    return lines


def _context_source(backend: BackendReport) -> str:
    return {
        "/v1/models": "listed",
        "KIMI_MCP_CONTEXT_TOKENS": "from KIMI_MCP_CONTEXT_TOKENS",
        "default": "the default: no length listed for this model",
    }[backend.context_source]
