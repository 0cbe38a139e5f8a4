"""`GET /v1/models` with the current credential, and the allow-list situation of the chosen wire.

The models check goes through `KimiClient.models()`, so it sends exactly what a chat's side lookup sends (identity
headers, Bearer token, a refreshed login). The wire check reuses `kimi.backend.probe()` to learn which backend
answers, and on Kimi Code's OpenAI wire, the one with an allow-list (docs/kimi-api.md §2), sends a chat request
with no messages: the allow-list answers it with 403 before the payload is looked at, and an admitted client gets
a 400 for the empty list, so no model ever runs (and no quota is spent).
"""

from __future__ import annotations

import anyio
import httpx2

from kimi_mcp import errors
from kimi_mcp.kimi.backend import probe
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.upstream import error_for_response
from kimi_mcp.netcause import describe_transport_error
from kimi_mcp.settings import DEFAULT_BASE_URL

from .model import STEP_SECONDS, Check, fail, ok, skipped

MODELS, WIRE = "models", "wire"
_BOUND = 2 * STEP_SECONDS  # a login refresh may come first
_ANTHROPIC_FIX = "set KIMI_CODE_PROTOCOL=anthropic (the default): the same key works there"


async def models_check(kimi: KimiClient) -> Check:
    settings = kimi.settings
    try:
        with anyio.fail_after(_BOUND):
            models = await kimi.models()
    except TimeoutError:
        return fail(
            MODELS,
            f"GET {settings.base_url}/v1/models: no answer within {_BOUND:g} s",
            "try again; if it persists, check KIMI_CODE_BASE_URL and any proxy",
        )
    except errors.KimiMcpError as exc:
        return _models_failure(exc, kimi)
    ids = [m.id for m in models]
    if settings.model not in ids:
        listed = ", ".join(ids[:20]) or "no models"
        return fail(
            MODELS, f"GET /v1/models lists {listed}, not {settings.model}", f"set KIMI_MCP_MODEL to one of: {listed}"
        )
    return ok(
        MODELS,
        f"GET {settings.base_url}/v1/models answered: {len(ids)} model(s), {settings.model} listed",
    )


def _models_failure(exc: errors.KimiMcpError, kimi: KimiClient) -> Check:
    base = kimi.settings.base_url
    if isinstance(exc, errors.Unauthorized):
        if kimi.settings.api_key is not None:
            return fail(
                MODELS,
                "the API key was refused (401)",
                "set KIMI_API_KEY to a current Kimi Code API key (kimi.com console)",
            )
        return fail(
            MODELS,
            "the stored login was refused (401), even after a refresh",
            "run `kimi-mcp login`, or set KIMI_API_KEY",
        )
    if isinstance(exc, errors.LoginRequired):
        return skipped(MODELS, "not tried: no usable credential (see credential)")
    if isinstance(exc, errors.BadRequest) and exc.status == 404:
        return fail(
            MODELS,
            f"GET {base}/v1/models answered 404: no Kimi API at this base URL",
            f"set KIMI_CODE_BASE_URL to the API base ({DEFAULT_BASE_URL}, the default) or unset it",
        )
    if isinstance(exc, errors.NetworkError):
        return fail(
            MODELS,
            f"GET {base}/v1/models: {exc.cause}",
            "check the network checks above, KIMI_CODE_BASE_URL and any proxy",
        )
    if isinstance(exc, errors.MembershipExpired):
        return fail(MODELS, exc.message, "renew the Kimi Code plan, or set KIMI_API_KEY to a key of a current one")
    if isinstance(exc, errors.ClientRefused):
        return fail(MODELS, exc.message, "use a Kimi Code API key (KIMI_API_KEY); " + _ANTHROPIC_FIX)
    if isinstance(exc, errors.UpstreamError) and exc.retryable:
        return fail(MODELS, exc.message, "try again in a minute")
    return fail(MODELS, exc.message, "see the detail; `kimi-mcp status` shows the backend as kimi-mcp sees it")


async def wire_check(kimi: KimiClient) -> Check:
    settings = kimi.settings
    with anyio.move_on_after(_BOUND):
        report = await probe(kimi)  # /v1/models is cached by now; /v1/usages tells which backend this is
        if settings.protocol == "anthropic":
            if report.kind == "moonshot_platform":
                return fail(WIRE, f"{report.description} has no Anthropic wire", "set KIMI_CODE_PROTOCOL=openai")
            note = "" if report.kind != "openai_compatible" else "; if chats answer 404, set KIMI_CODE_PROTOCOL=openai"
            return ok(WIRE, f"anthropic wire ({report.chat_url}): no client allow-list there{note}")
        if report.kind != "kimi_code":
            return ok(WIRE, f"openai wire on {report.description}: no client allow-list")
        try:
            return await _allow_list(kimi, report.chat_url)
        except httpx2.TransportError as exc:
            return fail(WIRE, f"POST {report.chat_url}: {describe_transport_error(exc, report.chat_url)}", "try again")
        except errors.KimiMcpError as exc:
            return fail(WIRE, exc.message, "see the detail and the credential check")
    return fail(
        WIRE, f"the backend did not answer within {_BOUND:g} s", "try again; if it persists, check KIMI_CODE_BASE_URL"
    )


async def _allow_list(kimi: KimiClient, chat_url: str) -> Check:
    """Kimi Code's OpenAI wire admits only allow-listed clients (docs/kimi-api.md §2): ask it with an empty chat."""
    token = await kimi.tokens.token()
    response = await kimi.http.post(
        chat_url, json={"model": kimi.settings.model, "messages": []}, headers={"Authorization": f"Bearer {token}"}
    )
    status = response.status_code
    if status == 403:
        error = error_for_response(status, response.content, response.headers, allow_listed=True)
        fix = _ANTHROPIC_FIX if isinstance(error, errors.AllowListRefused) else "see the detail"
        return fail(WIRE, str(error), fix)
    if status == 401:
        return skipped(WIRE, "not tried: the credential was refused (see models)")
    if status == 404:
        return fail(WIRE, f"POST {chat_url} answered 404: this backend has no OpenAI wire", _ANTHROPIC_FIX)
    if status >= 500:
        return fail(WIRE, f"POST {chat_url} answered {status}", "try again in a minute")
    return ok(
        WIRE,
        f"openai wire ({chat_url}): the client allow-list admits kimi-mcp (a request with no messages got {status})",
    )
