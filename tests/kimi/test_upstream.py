"""The mapping of Kimi's answers to our errors and retry decisions, without the network (docs/kimi-api.md §5, §9)."""

from __future__ import annotations

import json
from email.utils import formatdate

import httpx2
import pytest

from kimi_mcp import errors
from kimi_mcp.kimi.quota import parse_models
from kimi_mcp.kimi.upstream import error_for_response, is_busy, is_quota_error, mark_retry, retry_after_seconds

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("0.25", 0.25),
        ("-3", 0.0),
        (formatdate(NOW + 120, usegmt=True), 120.0),
        (formatdate(NOW - 60, usegmt=True), 0.0),  # a date in the past: retry now
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str, seconds: float | None) -> None:
    assert retry_after_seconds({"retry-after": value}, now=NOW) == seconds


def test_retry_after_ms_comes_first_as_in_the_sdk() -> None:
    # The SDK waits by retry-after-ms when it is there, so the long-wait check must read it too.
    assert retry_after_seconds({"retry-after-ms": "45000", "retry-after": "1"}, now=NOW) == 45.0
    assert retry_after_seconds({"retry-after-ms": "bad", "retry-after": "2"}, now=NOW) == 2.0


@pytest.mark.parametrize(
    ("error_type", "message", "quota"),
    [
        ("exceeded_current_quota_error", "", True),
        ("rate_limit_error", "You exceeded your current token quota, please check your plan", True),
        ("rate_limit_error", "You have exceeded your current\nmonthly quota", True),
        ("", "Insufficient balance", True),
        ("", "insufficient_balance: top up", True),
        ("rate_limit_error", "rate limit reached, try again in 1 s", False),
        ("rate_limit_error", "You exceeded the request rate", False),
    ],
)
def test_quota_is_known_by_type_or_wording(error_type: str, message: str, quota: bool) -> None:
    assert is_quota_error(error_type, message) is quota


def test_busy_is_a_403_naming_the_concurrent_request_limit() -> None:
    assert is_busy(403, "You've reached your concurrent request limit")
    assert not is_busy(403, "access denied")
    assert not is_busy(429, "You've reached your concurrent request limit")


def _body(error_type: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()


def test_error_for_response_maps_busy_quota_and_too_large() -> None:
    busy = error_for_response(403, _body("permission_error", "You've reached your concurrent request limit"))
    assert isinstance(busy, errors.KimiBusy) and busy.retryable
    quota = error_for_response(429, _body("rate_limit_error", "Insufficient balance"))
    assert isinstance(quota, errors.QuotaExceeded)
    large = error_for_response(413, b"<html>413 Request Entity Too Large</html>", request_bytes=3_000_000)
    assert isinstance(large, errors.RequestTooLarge)
    assert "3,000,000 bytes" in str(large) and "2,097,152 bytes" in str(large)
    unknown = error_for_response(413, b"")
    assert isinstance(unknown, errors.RequestTooLarge) and "2,097,152 bytes" in str(unknown)


def _response(status: int, body: bytes, **headers: str) -> httpx2.Response:
    request = httpx2.Request("POST", "https://api.kimi.com/coding/v1/messages")
    return httpx2.Response(status, content=body, headers=headers, request=request)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body", "headers", "verdict"),
    [
        (403, _body("permission_error", "You've reached your concurrent request limit"), {}, "true"),
        (
            403,
            _body("permission_error", "You've reached your concurrent request limit"),
            {"retry-after": "600"},
            "false",
        ),
        (403, _body("permission_error", "not for you"), {}, None),
        (429, _body("rate_limit_error", "slow down"), {"retry-after": "2"}, None),
        (429, _body("rate_limit_error", "slow down"), {"retry-after": "600"}, "false"),
        (429, _body("rate_limit_error", "slow down"), {"retry-after": formatdate(NOW * 2, usegmt=True)}, "false"),
        (429, _body("rate_limit_error", "You exceeded your current quota"), {}, "false"),
        (500, b"oops", {}, None),
        (503, b"down for maintenance", {"retry-after": "3600"}, "false"),
    ],
)
async def test_retry_hook_steers_the_sdk(
    status: int, body: bytes, headers: dict[str, str], verdict: str | None
) -> None:
    response = _response(status, body, **headers)
    await mark_retry(response)
    assert response.headers.get("x-should-retry") == verdict


def test_efforts_only_when_the_model_supports_them() -> None:
    listed = {"valid_efforts": ["low", "high"], "default_effort": "high"}
    payload = {
        "data": [
            {"id": "a", "think_efforts": {**listed, "support": True}},
            {"id": "b", "think_efforts": {**listed, "support": False}},
            {"id": "c", "think_efforts": listed},
            {"id": "d", "think_efforts": {"support": True, "valid_efforts": "low"}},
        ]
    }
    assert [(m.id, m.efforts) for m in parse_models(payload)] == [
        ("a", ["low", "high"]),
        ("b", []),
        ("c", []),
        ("d", []),
    ]
