"""netcause.describe_transport_error: the one line a user sees names the cause found in the exception chain."""

from __future__ import annotations

import socket
import ssl

import httpx2
import pytest

from kimi_mcp.netcause import describe_transport_error

URL = "https://api.kimi.com/coding/v1/messages?token=SECRET-IN-QUERY"


def chained(*links: BaseException) -> BaseException:
    """`links[0]` raised from `links[1]` raised from ... (outermost first), as HTTP clients wrap OS errors."""
    cause: BaseException | None = None
    for link in reversed(links):
        link.__cause__ = cause
        cause = link
    assert cause is not None
    return cause


def refused() -> ConnectionRefusedError:
    return ConnectionRefusedError(111, "Connect call failed ('1.2.3.4', 443)")


def cert_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "self-signed certificate"
    return error


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            chained(httpx2.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            "could not resolve api.kimi.com",
        ),
        (
            chained(httpx2.ConnectError("x"), OSError("All connection attempts failed"), refused()),
            "connection refused by api.kimi.com",
        ),
        (
            chained(httpx2.ConnectError("x"), ExceptionGroup("attempts", [OSError(113, "No route"), refused()])),
            "connection refused by api.kimi.com",
        ),
        (
            chained(httpx2.ConnectError("x"), cert_error()),
            "TLS certificate of api.kimi.com could not be verified (self-signed certificate)",
        ),
        (
            chained(httpx2.ConnectError("x"), ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")),
            "TLS handshake with api.kimi.com failed",
        ),
        (
            chained(httpx2.ReadError("x"), ConnectionResetError(104, "Connection reset by peer")),
            "connection reset by api.kimi.com",
        ),
        (httpx2.ReadTimeout("x"), "timed out talking to api.kimi.com"),
        (chained(httpx2.ConnectTimeout("x"), TimeoutError()), "timed out talking to api.kimi.com"),
        (
            httpx2.RemoteProtocolError("Server disconnected without sending a response."),
            "api.kimi.com closed the connection without an answer",
        ),
        (
            chained(httpx2.ConnectError("x"), OSError(101, "Network is unreachable")),
            "network error reaching api.kimi.com (Network is unreachable)",
        ),
        (ValueError("odd"), "network error reaching api.kimi.com (ValueError)"),
    ],
)
def test_the_cause_is_named(exc: BaseException, expected: str) -> None:
    text = describe_transport_error(exc, URL)
    assert text.startswith(expected)
    assert "SECRET" not in text and "/coding" not in text


def test_an_explicit_port_is_named_and_dns_wins_over_what_wraps_it() -> None:
    exc = chained(httpx2.ConnectError("x"), TimeoutError(), socket.gaierror(-3, "Temporary failure"))
    assert describe_transport_error(exc, "http://auth.example:8443/api") == "could not resolve auth.example"
    assert describe_transport_error(chained(OSError("x"), refused()), "http://127.0.0.1:9") == (
        "connection refused by 127.0.0.1:9"
    )


def test_a_cycle_in_the_chain_ends() -> None:
    a, b = OSError("a"), ValueError("b")
    a.__cause__, b.__context__ = b, a
    assert describe_transport_error(a, URL) == "network error reaching api.kimi.com (OSError)"


def test_a_url_that_does_not_parse_is_cut_before_its_query() -> None:
    text = describe_transport_error(ValueError(), "http://[bad?token=SECRET")
    assert "SECRET" not in text


# -- through a proxy: the phrase names the proxy and the variable that set it ------------------------------------

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here starts without proxy variables, whatever the machine running it has set."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (chained(httpx2.ConnectError("x"), refused()), "connection refused by the proxy 10.0.0.9:3128 (HTTPS_PROXY)"),
        (
            chained(httpx2.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            "could not resolve the proxy 10.0.0.9:3128 (HTTPS_PROXY)",
        ),
        (httpx2.ConnectTimeout("x"), "timed out connecting to the proxy 10.0.0.9:3128 (HTTPS_PROXY)"),
        (
            httpx2.ProxyError("407 Proxy Authentication Required"),
            "the proxy 10.0.0.9:3128 (HTTPS_PROXY) refused the connection to api.kimi.com "
            "(407 Proxy Authentication Required)",
        ),
        (
            chained(httpx2.ConnectError("x"), cert_error()),
            "TLS certificate of api.kimi.com could not be verified (self-signed certificate), "
            "through the proxy 10.0.0.9:3128 (HTTPS_PROXY)",
        ),
    ],
)
def test_through_a_proxy_the_proxy_and_its_variable_are_named(
    exc: BaseException, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:PROXY-PASSWORD@10.0.0.9:3128")
    described = describe_transport_error(exc, URL)
    assert described == expected
    assert "PROXY-PASSWORD" not in described and "alice" not in described


def test_a_host_no_proxy_exempts_and_a_direct_socket_are_described_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    exc = chained(httpx2.ConnectError("x"), refused())
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.9:3128")
    assert describe_transport_error(exc, URL, proxied=False) == "connection refused by api.kimi.com"
    monkeypatch.setenv("NO_PROXY", "api.kimi.com")
    assert describe_transport_error(exc, URL) == "connection refused by api.kimi.com"
