"""DNS, TCP and TLS reachability of one host, each step bounded by STEP_SECONDS (docs/troubleshooting.md).

The TLS handshake uses the SSL context the HTTP client builds (httpx2's `create_ssl_context`, which honours
SSL_CERT_FILE and SSL_CERT_DIR), so a certificate the client would refuse is refused here too. The causes are named
by kimi_mcp/netcause.py, in the words the rest of kimi-mcp uses.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx2
from anyio.streams.tls import TLSAttribute

from kimi_mcp.netcause import describe_transport_error

from .model import STEP_SECONDS, Check, fail, ok, skipped
from .threads import run_abandonable


@dataclass(frozen=True)
class Endpoint:
    """A host kimi-mcp talks to: the label of its checks ("api", "oauth"), its URL and the setting naming it."""

    label: str
    url: str
    variable: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def place(self) -> str:
        return f"{self.host}:{self.port}"


def refuses(exc: BaseException) -> bool:
    """Whether a connect failed because nothing listens there (as opposed to silence or a DNS failure)."""
    return "connection refused" in describe_transport_error(exc, "", proxied=False)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of `host`; looked up in an abandonable thread, so a hung resolver costs only our bound."""

    def lookup() -> list[str]:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return sorted({str(sockaddr[0]) for *_, sockaddr in answers})

    with anyio.fail_after(STEP_SECONDS):
        return await run_abandonable(lookup, f"resolve {host}")


async def connect(host: str, port: int) -> None:
    address = (await resolve(host, port))[0]
    with anyio.fail_after(STEP_SECONDS):
        stream = await anyio.connect_tcp(address, port)
    await stream.aclose()


async def handshake(host: str, port: int, context: ssl.SSLContext) -> str:
    """The TLS version agreed with `host`, after verifying its certificate as the HTTP client would."""
    address = (await resolve(host, port))[0]
    with anyio.fail_after(STEP_SECONDS):
        stream = await anyio.connect_tcp(address, port, ssl_context=context, tls_hostname=host)
    try:
        return str(stream.extra(TLSAttribute.tls_version, "TLS"))
    finally:
        await stream.aclose()


async def host_checks(endpoint: Endpoint, proxy: str | None) -> list[Check]:
    """`<label>.dns`, `<label>.tcp` and `<label>.tls` for one endpoint; a step that cannot run after a failed one
    (or through a proxy, which does its own DNS and connect) is skipped, saying why."""
    names = [f"{endpoint.label}.{step}" for step in ("dns", "tcp", "tls")]
    if proxy is not None:
        why = f"{endpoint.host} is reached through the proxy {proxy} (checked above), not directly"
        return [skipped(name, why) for name in names]
    dns = await _dns_check(names[0], endpoint)
    if dns.status == "fail":
        return [dns, *(skipped(name, f"not tried: {endpoint.host} did not resolve") for name in names[1:])]
    tcp = await _tcp_check(names[1], endpoint)
    if tcp.status == "fail":
        return [dns, tcp, skipped(names[2], f"not tried: no TCP connection to {endpoint.place}")]
    return [dns, tcp, await _tls_check(names[2], endpoint)]


async def _dns_check(name: str, endpoint: Endpoint) -> Check:
    try:
        addresses = await resolve(endpoint.host, endpoint.port)
    except (OSError, TimeoutError) as exc:
        return fail(name, _cause(exc, endpoint), _fix(endpoint, "the host name, your DNS settings or a proxy"))
    return ok(name, f"{endpoint.host} resolves to {', '.join(addresses[:4])}")


async def _tcp_check(name: str, endpoint: Endpoint) -> Check:
    try:
        await connect(endpoint.host, endpoint.port)
    except (OSError, TimeoutError) as exc:
        return fail(name, _cause(exc, endpoint), _fix(endpoint, "the port, a firewall or a proxy (HTTPS_PROXY)"))
    return ok(name, f"connected to {endpoint.place}")


async def _tls_check(name: str, endpoint: Endpoint) -> Check:
    if urlsplit(endpoint.url).scheme != "https":
        return skipped(name, f"plain HTTP ({endpoint.url}): no TLS to check")
    try:
        version = await handshake(endpoint.host, endpoint.port, httpx2.create_ssl_context())
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return fail(name, _cause(exc, endpoint), _fix(endpoint, "SSL_CERT_FILE/SSL_CERT_DIR or a TLS-inspecting proxy"))
    return ok(name, f"{version} with {endpoint.host}, certificate verified")


def cause(exc: BaseException, place: str, url: str) -> str:
    """Why a step failed, in netcause's words; a timeout of our own bound names the bound."""
    if isinstance(exc, TimeoutError):
        return f"no answer from {place} within {STEP_SECONDS:g} s"
    return describe_transport_error(exc, url, proxied=False)  # our own socket: no proxy in between


def _cause(exc: BaseException, endpoint: Endpoint) -> str:
    return cause(exc, endpoint.place, endpoint.url)


def _fix(endpoint: Endpoint, suspects: str) -> str:
    return f"check {endpoint.variable} ({endpoint.url}), then {suspects}"
