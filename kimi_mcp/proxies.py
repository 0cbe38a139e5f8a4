"""Which proxy the HTTP client will use for a URL, by httpx2's own rules (the proxy variables and NO_PROXY).

A failure to reach Kimi through a proxy is the proxy's failure far more often than Kimi's: the error text and
`kimi-mcp doctor` both name the proxy and the variable that set it, never its user:password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
from httpx2._utils import URLPattern, get_environment_proxies  # the client's own mount rules, not a copy of them

_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}


@dataclass(frozen=True)
class ProxyRoute:
    """How the client reaches a URL: directly (`proxy` None) or through `proxy`, set by `variable`.

    `variable` is "NO_PROXY" when that variable exempts the host, None when no proxy variable applies.
    """

    proxy: str | None  # scheme://host[:port], credentials removed
    variable: str | None

    @property
    def place(self) -> tuple[str, int]:
        parts = urlsplit(self.proxy or "")
        return parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)

    @property
    def description(self) -> str:
        host, port = self.place
        return f"the proxy {host}:{port} ({self.variable})"


def route_for(url: str, environ: Mapping[str, str] | None = None) -> ProxyRoute:
    """The route httpx2 (trust_env, as kimi-mcp builds it) takes to `url`."""
    environ = os.environ if environ is None else environ
    # Sorted by pattern alone, most specific first, exactly as the client orders its mounts.
    patterns = sorted(((URLPattern(key), value) for key, value in get_environment_proxies().items()), key=_pattern)
    try:
        target = httpx2.URL(url)
    except (httpx2.InvalidURL, TypeError):
        return ProxyRoute(None, None)
    for pattern, proxy in patterns:
        if pattern.matches(target):
            if proxy is None:
                return ProxyRoute(None, "NO_PROXY")
            return ProxyRoute(_without_credentials(proxy), _variable_of(pattern.scheme or "all", environ))
    return ProxyRoute(None, None)


def _pattern(item: tuple[URLPattern, str | None]) -> URLPattern:
    return item[0]


def _variable_of(scheme: str, environ: Mapping[str, str]) -> str:
    """The variable urllib took the proxy from: the lowercase spelling wins when both are set, as in urllib."""
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY"):
        if environ.get(name):
            return name
    return f"{scheme.upper()}_PROXY"


def _without_credentials(proxy: str) -> str:
    """The proxy URL without any user:password, which must never be printed."""
    parts = urlsplit(proxy)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
