"""Upstream faults: the one mapping from Kimi's status codes and error bodies to our errors (kimi-wire.md §9).

Retries themselves are the SDK's (exponential backoff, `Retry-After` honoured). This module only tells it
which answers must not be retried: a used-up quota, or a `Retry-After` longer than a tool call can wait.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from kimi_mcp import errors
from kimi_mcp.logs import redact

# A tool call that waits minutes on a rate limit looks hung to the host: give up and say so instead.
MAX_RETRY_AFTER_SECONDS = 30.0
QUOTA_ERROR_TYPE = "exceeded_current_quota_error"
TERMINATED_ERROR_TYPE = "access_terminated_error"


class Rejected(Exception):
    """The credential was rejected (401): the caller may recover the token once."""


def error_details(body: bytes | Any) -> tuple[str, str]:
    """(error type, message) from an Anthropic- or OpenAI-style error body; empty strings if absent."""
    data = body
    if isinstance(body, (bytes, bytearray)):
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return "", body[:200].decode("utf-8", "replace").strip()
    if not isinstance(data, dict):
        return "", ""
    error = data.get("error", data)
    if isinstance(error, dict):
        return str(error.get("type") or error.get("code") or ""), str(error.get("message") or "")
    return "", str(error)


def is_quota_error(error_type: str, message: str) -> bool:
    """A used-up plan quota, as opposed to a passing rate limit (kimi-wire.md §9)."""
    return error_type == QUOTA_ERROR_TYPE or QUOTA_ERROR_TYPE in message


def retry_after_seconds(headers: httpx2.Headers | dict[str, str] | None) -> float | None:
    if not headers:
        return None
    try:
        return float(headers.get("retry-after", ""))
    except ValueError:
        return None


def error_for_response(
    status: int, body: bytes | Any, headers: httpx2.Headers | dict[str, str] | None = None
) -> Exception:
    """The error to raise for a failed answer; `Rejected` for a 401 so the token can be recovered."""
    error_type, message = error_details(body)
    # The service's own words go into messages the model reads: never let them carry a credential.
    detail = redact(message or error_type or f"HTTP {status}")
    if status == 401:
        return Rejected()
    if status == 402:
        return errors.MembershipExpired()
    if status == 403:
        if error_type == TERMINATED_ERROR_TYPE or TERMINATED_ERROR_TYPE in message:
            return errors.ClientRefused(detail)
        return errors.Forbidden(detail)
    if status == 429:
        if is_quota_error(error_type, message):
            return errors.QuotaExceeded(detail)
        return errors.RateLimited(retry_after_seconds(headers))
    if status >= 500:
        return errors.ServiceUnavailable(f"HTTP {status}: {detail}", status=status)
    return errors.BadRequest(detail, status=status)


async def mark_unretryable(response: httpx2.Response) -> None:
    """httpx2 response hook: tell the SDK's retry loop not to retry a quota error or a long Retry-After."""
    if response.status_code != 429:
        return
    await response.aread()
    error_type, message = error_details(response.content)
    wait = retry_after_seconds(response.headers)
    if is_quota_error(error_type, message) or (wait is not None and wait > MAX_RETRY_AFTER_SECONDS):
        response.headers["x-should-retry"] = "false"
