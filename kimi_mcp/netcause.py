"""Name the cause of a network failure in the few words a user can act on (issue 7, item 6).

HTTP clients wrap the OS error that matters (`socket.gaierror`, `ConnectionRefusedError`, `ssl.SSLError`) in their
own exception types; the chain (`__cause__`/`__context__`, and exception groups) still holds it. Both the login
(`kimi_mcp.auth`) and the API side (`kimi_mcp.kimi`) call `describe_transport_error` so the wording is the same.

Only non-secret facts go into the text: the host and port from the URL (never its query) and OS/TLS reason codes.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from kimi_mcp.proxies import ProxyRoute, route_for

__all__ = ["describe_transport_error"]

_MAX_DEPTH = 32  # chains are short; the bound only guards against a cycle we fail to spot


def describe_transport_error(exc: BaseException, url: str, *, proxied: bool = True) -> str:
    """A short lowercase phrase naming why `url` could not be reached, e.g. "could not resolve api.kimi.com".

    When the HTTP client reaches `url` through a proxy (`proxied`: the request went through the client, which
    honours the proxy variables), a failure to resolve or connect is the proxy's, and the phrase names it and its
    variable; any other cause says it came through the proxy. Falls back to "network error (<ExceptionType>)"
    when nothing in the chain is recognised.
    """
    route = route_for(url) if proxied else ProxyRoute(None, None)
    if route.proxy is None:
        return _describe(exc, url)
    chain = list(_chain(exc))
    proxy = route.description
    if any(_named(link, "ProxyError") for link in chain):  # e.g. 407: the proxy refused the tunnel
        return f"{proxy} refused the connection to {_host_and_place(url)[1]} ({_reason(exc, chain)})"
    if any(isinstance(link, socket.gaierror) for link in chain):
        return f"could not resolve {proxy}"
    if any(isinstance(link, ConnectionRefusedError) for link in chain):
        return f"connection refused by {proxy}"
    if any(_named(link, "ConnectTimeout") for link in chain):
        return f"timed out connecting to {proxy}"
    return f"{_describe(exc, url)}, through {proxy}"


def _reason(exc: BaseException, chain: list[BaseException]) -> str:
    text = next((str(link) for link in chain if _named(link, "ProxyError") and str(link)), "")
    return text[:120] or type(exc).__name__


def _describe(exc: BaseException, url: str) -> str:
    host, where = _host_and_place(url)
    chain = list(_chain(exc))
    for link in chain:
        if isinstance(link, socket.gaierror):
            return f"could not resolve {host}"
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            # getattr: OpenSSL fills these in; an SSLError built elsewhere may lack them.
            detail = getattr(link, "verify_message", None) or getattr(link, "reason", None) or "verification failed"
            return f"TLS certificate of {host} could not be verified ({detail})"
        if isinstance(link, ssl.SSLError):
            return f"TLS handshake with {where} failed ({getattr(link, 'reason', None) or type(link).__name__})"
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            return f"connection refused by {where}"
        if isinstance(link, ConnectionResetError):
            return f"connection reset by {where}"
        if isinstance(link, TimeoutError) or _named(link, "Timeout"):
            return f"timed out talking to {where}"
    for link in chain:
        if _named(link, "RemoteProtocolError") or _named(link, "ServerDisconnected"):
            return f"{where} closed the connection without an answer"
        if isinstance(link, OSError) and link.strerror:
            return f"network error reaching {where} ({link.strerror})"
    return f"network error reaching {where} ({type(exc).__name__})"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Every exception reachable from `exc` through causes, contexts and exception groups, outermost first."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending and len(seen) < _MAX_DEPTH:
        link = pending.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        if isinstance(link, BaseExceptionGroup):
            pending.extend(link.exceptions)
        nested = link.__cause__ or link.__context__
        if nested is not None:
            pending.append(nested)


def _named(exc: BaseException, fragment: str) -> bool:
    """True when a class in `exc`'s hierarchy has `fragment` in its name (httpx2/httpcore2/anthropic alike)."""
    return any(fragment in cls.__name__ for cls in type(exc).__mro__)


def _host_and_place(url: str) -> tuple[str, str]:
    """(host, "host:port" when a port is explicit else host) of `url`; the raw text if it does not parse."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        host, port = "", None
    if not host:
        host = url.split("?", 1)[0][:64] or "the server"
    return host, f"{host}:{port}" if port else host
