"""The one httpx2 client every call to Kimi and its OAuth host goes through.

It carries our identity headers and a last guard on every outgoing request: whatever an SDK or the
environment added, the request leaves with our User-Agent and X-Msh-* values, no `x-api-key`, none of the
headers an `ANTHROPIC_CUSTOM_HEADERS` variable would smuggle in, and the pinned `anthropic-version` on every
Anthropic Messages request (docs/kimi-api.md §2, §4).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx2

from kimi_mcp import errors
from kimi_mcp.identity import is_protected_header, request_headers
from kimi_mcp.settings import Settings

_CONNECT_TIMEOUT = 15.0
# The version Kimi is known to accept (Moonshot's own client and the seed's live tests send it). The `anthropic`
# SDK sends its own newer default, which nobody has shown Kimi accepts (docs/kimi-api.md §4).
ANTHROPIC_VERSION = "2023-06-01"
_VERSION_HEADER = "anthropic-version"


def _foreign_header_names(environ: Mapping[str, str]) -> frozenset[str]:
    """Header names an SDK would read from the environment; they must never reach Kimi."""
    names = set()
    for line in environ.get("ANTHROPIC_CUSTOM_HEADERS", "").splitlines():
        name, sep, _ = line.partition(":")
        if sep and name.strip():
            names.add(name.strip().lower())
    return frozenset(names)


def build_http_client(settings: Settings, *, timeout: float | None = None) -> httpx2.AsyncClient:
    identity = request_headers(settings.home, settings.custom_headers)
    ours = {name.lower() for name in identity}
    foreign = {name for name in _foreign_header_names(os.environ) - ours if not is_protected_header(name)}

    async def guard(request: httpx2.Request) -> None:
        for name in foreign:
            request.headers.pop(name, None)
        request.headers.pop("x-api-key", None)
        request.headers.update(identity)
        if _VERSION_HEADER in request.headers or request.url.path.endswith("/v1/messages"):
            request.headers[_VERSION_HEADER] = ANTHROPIC_VERSION

    read_timeout = timeout if timeout is not None else settings.timeout_seconds
    try:
        return httpx2.AsyncClient(
            headers=identity,
            timeout=httpx2.Timeout(read_timeout, connect=_CONNECT_TIMEOUT),
            event_hooks={"request": [guard]},
            follow_redirects=False,
        )
    except ImportError:  # httpx2 builds a SOCKS proxy's transport only with socksio installed
        raise errors.SocksProxyUnsupported(_socks_proxy_variable(os.environ)) from None


def _socks_proxy_variable(environ: Mapping[str, str]) -> str:
    """The proxy variable (any case) that names a SOCKS proxy, for the error that says what to change."""
    for name in ("ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"):
        for variable in (name, name.lower()):
            if environ.get(variable, "").strip().lower().startswith("socks"):
                return variable
    return "A proxy variable"
