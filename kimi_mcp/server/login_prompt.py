"""Logging in from inside a host: the device code and URL come back as text (every host can show that), and,
where the host declares URL-mode elicitation, it is also asked to open the URL (a bonus: most hosts lack it)."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent

from kimi_mcp import errors
from kimi_mcp.server.progress import ProgressReporter
from kimi_mcp.server.state import AppState
from kimi_mcp.server.status import login_document

if TYPE_CHECKING:
    from kimi_mcp.auth.login import LoginPrompt  # the login machinery loads on first use, not at server start

logger = logging.getLogger(__name__)
_ELICITATION_WAIT_SECONDS = 30.0
# A call made right after the user approved may arrive before the background poll (every `interval` s, 5 s
# by default, docs/kimi-api.md §3) has fetched the token: wait one poll for it rather than show the code again.
LOGIN_GRACE_SECONDS = 6.0


def _instructions(prompt: LoginPrompt) -> str:
    minutes = max(1, prompt.expires_in // 60)
    return (
        f"Open {prompt.verification_uri_complete} and approve the login (code {prompt.user_code}, valid for "
        f"about {minutes} min). Then call the tool again: no restart is needed."
    )


async def _begin(state: AppState) -> LoginPrompt:
    return await state.login.begin(state.task_group)


async def finished_login_meanwhile(state: AppState, ctx: Context) -> bool:
    """With a device login in progress, wait up to one poll for it; True if we are logged in now."""
    if not state.login.status().login_in_progress:
        return False

    async def wait() -> None:
        with anyio.move_on_after(LOGIN_GRACE_SECONDS):
            await state.login.wait()

    await ProgressReporter(ctx).run(wait)
    return bool((await state.kimi.tokens.state()).logged_in)  # type: ignore[attr-defined]


async def login_required_result(state: AppState, ctx: Context, reason: errors.LoginRequired) -> CallToolResult:
    """The isError result of a call made without usable credentials: start (or reuse) the device login."""
    try:
        prompt = await _begin(state)
    except errors.KimiMcpError as exc:
        # "Error:" like every kimi-mcp error: Codex does not show its model the isError flag (docs/hosts.md).
        text = f"Error: {reason.message} Starting a device login failed too: {exc.message}"
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
    await _ask_host_to_open(ctx, prompt)
    earlier = f" The previous login did not complete: {prompt.previous_error}" if prompt.previous_error else ""
    text = f"Error: {reason.reason}{earlier} Kimi needs a login. {_instructions(prompt)} "
    text += "Alternatively set KIMI_API_KEY to a Kimi Code API key."
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


async def _ask_host_to_open(ctx: Context, prompt: LoginPrompt) -> None:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities else None
    if elicitation is None or elicitation.url is None:
        return
    try:
        with anyio.move_on_after(_ELICITATION_WAIT_SECONDS):
            await ctx.elicit_url(
                message=f"Log in to Kimi for kimi-mcp (code {prompt.user_code}).",
                url=prompt.verification_uri_complete,
                elicitation_id=secrets.token_hex(8),
            )
    except Exception:  # the text path alone must work; a host that fails the elicitation changes nothing
        logger.debug("URL elicitation failed", exc_info=True)


async def login_resource_state(state: AppState) -> dict[str, Any]:
    """The `kimi://login` document. Reading it while logged out starts a device login (one at a time)."""
    extra: dict[str, Any] = {}
    if not (await state.kimi.tokens.state()).logged_in:  # type: ignore[attr-defined]
        try:
            prompt = await _begin(state)
        except errors.KimiMcpError as exc:
            extra["error"] = exc.message
        else:
            if prompt.previous_error:
                extra["previous_login_error"] = prompt.previous_error
    return {**await login_document(state), **extra}
