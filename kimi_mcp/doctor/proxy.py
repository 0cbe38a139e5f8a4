"""Which proxy the HTTP client will use for each host, whether that proxy answers, and the CA settings it trusts.

The routing is httpx2's own: its environment reading (`get_environment_proxies`: HTTP_PROXY, HTTPS_PROXY,
ALL_PROXY and NO_PROXY, either case) and its URL patterns, tried in the order the client sorts them, so what this
reports is what `kimi_mcp.http.build_http_client` (which trusts the environment) does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx2

from kimi_mcp.proxies import ProxyRoute, route_for

from .model import Check, fail, ok, skipped
from .network import Endpoint, cause, connect, refuses

PROXY = "proxy"
TRUST = "tls.trust"


@dataclass(frozen=True)
class Route:
    """How the client reaches one endpoint (`kimi_mcp.proxies.ProxyRoute`), with the endpoint it is for."""

    endpoint: Endpoint
    proxy: str | None
    variable: str | None  # the environment variable naming the proxy, or NO_PROXY when it exempts the host

    @property
    def proxy_place(self) -> tuple[str, int]:
        return ProxyRoute(self.proxy, self.variable).place


def route(endpoint: Endpoint, environ: Mapping[str, str] | None = None) -> Route:
    found = route_for(endpoint.url, environ)
    return Route(endpoint, found.proxy, found.variable)


async def proxy_check(routes: Sequence[Route], offline: bool) -> Check:
    """Where each host's requests go; when a proxy is used, whether it accepts a TCP connection."""
    used = [r for r in routes if r.proxy is not None]
    where = "; ".join(_where(r) for r in routes)
    if not used:
        return ok(PROXY, where)
    if offline:
        return skipped(PROXY, f"{where} (--offline: the proxy was not contacted)")
    for r in used:
        host, port = r.proxy_place
        try:
            await connect(host, port)
        except (OSError, TimeoutError) as exc:
            why = "refuses connections" if refuses(exc) else f"cannot be reached ({_cause(exc, r)})"
            return fail(
                PROXY,
                f"{where}: {_cause(exc, r)}",
                f"{r.variable} points to {host}:{port}, which {why}: fix or unset it",
            )
    return ok(PROXY, f"{where}; the proxy accepts connections")


def trust_check() -> Check:
    """The CA certificates TLS connections are verified against: SSL_CERT_FILE/SSL_CERT_DIR, else the system's."""
    named = {name: os.environ[name] for name in ("SSL_CERT_FILE", "SSL_CERT_DIR") if os.environ.get(name)}
    try:
        context = httpx2.create_ssl_context()  # the client's own: the first of these variables it honours
    except (OSError, ValueError) as exc:
        variable, path = next(iter(named.items()), ("SSL_CERT_FILE", "?"))
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return fail(
            TRUST, f"{variable}={path} cannot be loaded ({reason})", f"{variable} points to {path}: fix or unset it"
        )
    count = len(context.get_ca_certs())
    source = ", ".join(f"{name}={path}" for name, path in named.items()) or "the system's CA certificates"
    loaded = f"{count} CA certificates loaded" if count else "CA certificates are loaded as needed"
    return ok(TRUST, f"{source} ({loaded})")


def _where(r: Route) -> str:
    if r.proxy is None:
        return f"{r.endpoint.host}: direct" + (" (exempted by NO_PROXY)" if r.variable == "NO_PROXY" else "")
    return f"{r.endpoint.host}: via {r.proxy} ({r.variable})"


def _cause(exc: BaseException, r: Route) -> str:
    host, port = r.proxy_place
    return cause(exc, f"the proxy {host}:{port}", r.proxy or "")
