"""Which backend KIMI_CODE_BASE_URL points at, and what it supports (docs/backends.md).

Three kinds answer kimi-mcp: a Kimi Code plan (`https://api.kimi.com/coding`, both wires, `/v1/usages` with the
plan's quota), Moonshot's pay-as-you-go platform (`https://api.moonshot.ai/v1`, or `.cn`; OpenAI wire only, its
own model ids and context lengths, no `/v1/usages`), and OpenAI-compatible gateways in front of either. The kind
is inferred, never configured: from the base URL's host when it is one of Moonshot's, else from whether
`GET /v1/usages` exists (only a plan has it), else from a base URL ending in `/coding` (as Kimi Code's does).

The model's context window decides the output budget (kimi/wires.py `output_budget`): KIMI_MCP_CONTEXT_TOKENS when
set, else the `context_length` `GET /v1/models` lists for the model, else `CONTEXT_WINDOW_TOKENS` (262,144, the
window of Kimi Code's model and of the Kimi K2 models) for a model listed without one or a backend without a list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel

from kimi_mcp import errors
from kimi_mcp.kimi.quota import ModelInfo, Quota
from kimi_mcp.settings import CONTEXT_WINDOW_TOKENS, WireProtocol

if TYPE_CHECKING:
    from kimi_mcp.kimi.client import KimiClient

BackendKind = Literal["kimi_code", "moonshot_platform", "openai_compatible", "unknown"]
ContextSource = Literal["KIMI_MCP_CONTEXT_TOKENS", "/v1/models", "default"]

# docs/kimi-api.md §1: Kimi Code's hosts (China and global); Moonshot's platform hosts (global and China).
KIMI_CODE_HOSTS = frozenset({"api.kimi.com", "api.kimi.ai"})
PLATFORM_HOSTS = frozenset({"api.moonshot.ai", "api.moonshot.cn"})

DESCRIPTIONS: dict[BackendKind, str] = {
    "kimi_code": "Kimi Code plan",
    "moonshot_platform": "Moonshot's pay-as-you-go platform (OpenAI-compatible)",
    "openai_compatible": "OpenAI-compatible backend without plan usage (Moonshot's platform or a gateway)",
    "unknown": "unknown (neither the base URL nor GET /v1/usages told)",
}
_CHAT_PATHS: dict[WireProtocol, str] = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


@dataclass(frozen=True)
class ContextWindow:
    """The context window the output budget is computed from, and where that number came from."""

    tokens: int
    source: ContextSource


def context_window(info: ModelInfo | None, override: int | None) -> ContextWindow:
    if override is not None:
        return ContextWindow(override, "KIMI_MCP_CONTEXT_TOKENS")
    if info is not None and info.context_length:
        return ContextWindow(info.context_length, "/v1/models")
    return ContextWindow(CONTEXT_WINDOW_TOKENS, "default")


def kind_of_url(base_url: str) -> BackendKind | None:
    """The kind a base URL names for certain (Moonshot's own hosts), or None."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host in KIMI_CODE_HOSTS:
        return "kimi_code"
    if host in PLATFORM_HOSTS:
        return "moonshot_platform"
    return None


def infer_kind(base_url: str, usages_served: bool | None) -> tuple[BackendKind, str]:
    """(kind, how it was inferred). `usages_served`: GET /v1/usages answered (True), 404 (False), or unknown."""
    by_url = kind_of_url(base_url)
    if by_url is not None:
        return by_url, f"the base URL's host ({urlsplit(base_url).hostname})"
    if usages_served is True:
        return "kimi_code", "GET /v1/usages answered: only a Kimi Code plan (or a gateway in front of one) has it"
    if usages_served is False:
        return "openai_compatible", "GET /v1/usages answered 404: a Kimi Code plan always has it"
    if urlsplit(base_url).path.rstrip("/").endswith("/coding"):
        return "kimi_code", "the base URL ends in /coding, as Kimi Code's does"
    return "unknown", "neither the base URL nor GET /v1/usages (which did not answer) told"


class BackendReport(BaseModel):
    """What `kimi_login_status` and `kimi-mcp status` show about the backend; never a token."""

    kind: BackendKind
    description: str
    inferred_from: str
    wire: WireProtocol
    chat_url: str
    model: str
    model_listed: bool | None  # None: the backend gave no model list
    listed_models: list[str] | None = None  # shown when the model is not among them
    models_problem: str | None = None
    context_tokens: int
    context_source: ContextSource
    thinking_efforts: list[str] = []
    quota: Quota | None = None
    quota_available: bool | None = None  # None: unknown (the lookup failed for another reason)
    quota_problem: str | None = None
    credential_works: bool  # an authenticated side API answered with it
    credential_problem: str | None = None
    advice: list[str] = []


async def probe(kimi: KimiClient) -> BackendReport:
    """Ask the backend what it supports: `GET /v1/models` (cached by the client) and `GET /v1/usages`.

    A 404 from either means "not available here", never a failure. A rejected credential stops the probe (the
    second lookup would only be rejected again, after another token recovery).
    """
    settings = kimi.settings
    models: list[ModelInfo] | None = None
    models_problem = quota_problem = credential_problem = None
    quota: Quota | None = None
    usages: bool | None = None
    try:
        models = await kimi.models()
    except errors.Unauthorized as exc:
        credential_problem = exc.message
    except errors.KimiMcpError as exc:
        models_problem = exc.message
    if credential_problem is None:
        try:
            quota, usages = await kimi.quota(), True
        except errors.UsageNotAvailable as exc:
            usages, quota_problem = False, exc.message
        except errors.Unauthorized as exc:
            credential_problem = exc.message
        except errors.KimiMcpError as exc:
            quota_problem = exc.message
    kind, inferred_from = infer_kind(settings.base_url, usages)
    info = next((m for m in models or [] if m.id == settings.model), None)
    window = context_window(info, settings.context_tokens)
    ids = [m.id for m in models] if models is not None else None
    report = BackendReport(
        kind=kind,
        description=DESCRIPTIONS[kind],
        inferred_from=inferred_from,
        wire=settings.protocol,
        chat_url=f"{settings.base_url}{_CHAT_PATHS[settings.protocol]}",
        model=settings.model,
        model_listed=None if ids is None else info is not None,
        listed_models=ids if ids is not None and info is None else None,
        models_problem=models_problem,
        context_tokens=window.tokens,
        context_source=window.source,
        thinking_efforts=info.efforts if info is not None else [],
        quota=quota,
        quota_available=usages,
        quota_problem=quota_problem if credential_problem is None else credential_problem,
        # A 404 from /v1/usages proves nothing (a route that does not exist may answer before any key check).
        credential_works=credential_problem is None and (models is not None or usages is True),
        credential_problem=credential_problem,
    )
    report.advice = advice(report)
    return report


def advice(report: BackendReport) -> list[str]:
    """What to change, when the settings and the backend do not fit together."""
    notes = []
    if not report.credential_works and report.credential_problem is None:
        notes.append(
            "The credential could not be checked: neither GET /v1/models nor GET /v1/usages answered with it. "
            "Check KIMI_CODE_BASE_URL, then try a chat (`kimi-mcp chat hello`)."
        )
    if report.wire == "anthropic" and report.kind == "moonshot_platform":
        notes.append("Moonshot's platform speaks the OpenAI wire here: set KIMI_CODE_PROTOCOL=openai.")
    elif report.wire == "anthropic" and report.kind == "openai_compatible":
        notes.append(
            "Backends without /v1/usages are usually OpenAI-compatible only: if chats answer 404, set "
            "KIMI_CODE_PROTOCOL=openai."
        )
    if report.wire == "openai" and report.kind == "kimi_code":
        notes.append(
            "Kimi Code's OpenAI-style endpoint admits only allow-listed clients (403 for kimi-mcp); "
            "KIMI_CODE_PROTOCOL=anthropic (the default) works with the same key."
        )
    if report.model_listed is False and report.listed_models:
        shown = ", ".join(report.listed_models[:20])
        notes.append(f"The model {report.model} is not listed by /v1/models: set KIMI_MCP_MODEL to one of {shown}.")
    if report.model_listed and report.context_source == "default":
        notes.append(
            f"/v1/models lists {report.model} without a context length: kimi-mcp assumes {CONTEXT_WINDOW_TOKENS:,} "
            "tokens; set KIMI_MCP_CONTEXT_TOKENS to the model's real window if it is smaller."
        )
    return notes
