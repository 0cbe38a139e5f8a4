"""Upstream faults: the one mapping from Kimi's status codes and error bodies to our errors (docs/kimi-api.md §9).

Retries themselves are the anthropic SDK's on the Anthropic wire (exponential backoff, `Retry-After` honoured), and
KimiClient's own loop, with the same rules, on the OpenAI wire and for uploads (files_api.retry_delay). This module
only tells them, through `x-should-retry` on the response, which answers to retry beyond the usual rules (a 403
"concurrent request limit" is transient) and which never to retry (a used-up quota, or a `Retry-After` longer
than a tool call can wait). Both wires map answers to errors through the one `error_for_response`.
"""

from __future__ import annotations

import html
import json
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2

from kimi_mcp import errors
from kimi_mcp.logs import redact
from kimi_mcp.netcause import describe_transport_error

# A tool call that waits minutes on a rate limit looks hung to the host: give up and say so instead.
MAX_RETRY_AFTER_SECONDS = 30.0
# A message body over this size was refused with 413 (docs/kimi-api.md §9).
MAX_REQUEST_BYTES = 2_097_152
QUOTA_ERROR_TYPE = "exceeded_current_quota_error"
TERMINATED_ERROR_TYPE = "access_terminated_error"
# Wording of a used-up quota or balance in Moonshot's own client's checks (docs/kimi-api.md §9).
_QUOTA_WORDING = re.compile(r"exceeded your current\b.*\bquota|insufficient[ _]balance", re.IGNORECASE | re.DOTALL)
# 403 "You've reached your concurrent request limit": too many requests in flight for the account (§9).
_BUSY_WORDING = re.compile(r"concurrent request limit", re.IGNORECASE)
# A request naming an `ms://` file the service no longer has (expired or deleted; docs/kimi-api.md §7). The exact
# wording is not documented, so any 400/404 that names an ms:// reference together with "not found", "unknown",
# "expired", "does not exist" or "invalid" counts.
_FILE_REFERENCE = re.compile(r"ms://[A-Za-z0-9._\-]+")
_GONE_WORDING = re.compile(r"not[ _]found|unknown|expired|does not exist|no such|invalid", re.IGNORECASE)


_HTML = re.compile(r"\s*(<!doctype html|<html|<head|<body|<title)", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


class Rejected(Exception):
    """The credential was rejected (401): the caller may recover the token once."""


def error_details(body: bytes | Any) -> tuple[str, str]:
    """(error type, message) from an Anthropic- or OpenAI-style error body; empty strings if absent.

    A body that is not JSON (the anthropic SDK hands it over as text) is its first 200 characters; an HTML page,
    which a proxy in front of the service sends, is its title (docs/kimi-api.md §9)."""
    data = body
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, (bytes, bytearray)):
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return "", _text_of(body[:4096].decode("utf-8", "replace"))
    if not isinstance(data, dict):
        return "", ""
    error = data.get("error", data)
    if isinstance(error, dict):
        return str(error.get("type") or error.get("code") or ""), str(error.get("message") or "")
    return "", str(error)


def _text_of(text: str) -> str:
    """What a non-JSON error body says in a few words: an HTML page's title (else its text without tags)."""
    if not _HTML.match(text):
        return text[:200].strip()
    title = _TITLE.search(text)
    words = title.group(1) if title else _TAG.sub(" ", text)
    words = " ".join(html.unescape(words).split())[:120]
    return f"an HTML page: {words}" if words else "an HTML page"


def is_quota_error(error_type: str, message: str) -> bool:
    """A used-up plan quota or balance, as opposed to a passing rate limit (docs/kimi-api.md §9)."""
    return error_type == QUOTA_ERROR_TYPE or QUOTA_ERROR_TYPE in message or bool(_QUOTA_WORDING.search(message))


def is_busy(status: int, message: str) -> bool:
    """The account's concurrent request limit: transient, retried like a 429 (docs/kimi-api.md §9)."""
    return status == 403 and bool(_BUSY_WORDING.search(message))


def retry_after_seconds(headers: httpx2.Headers | dict[str, str] | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delay-seconds or an HTTP date (RFC 9110 §10.2.3); None if absent/bad.

    `retry-after-ms` comes first when present: the anthropic SDK's retry loop reads it before `Retry-After`.
    """
    if not headers:
        return None
    try:
        return max(float(headers.get("retry-after-ms") or ""), 0.0) / 1000
    except ValueError:
        pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT; a zone-less one is read as such
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def error_for_response(
    status: int,
    body: bytes | Any,
    headers: httpx2.Headers | dict[str, str] | None = None,
    *,
    request_bytes: int | None = None,
    allow_listed: bool = False,
) -> Exception:
    """The error to raise for a failed answer; `Rejected` for a 401 so the token can be recovered.

    `allow_listed`: the surface that answered admits only allow-listed clients (Kimi Code's OpenAI surface, docs/
    kimi-api.md §2), so a 403 `access_terminated_error` is most likely that, and the message says so.
    """
    error_type, message = error_details(body)
    # The service's own words go into messages the model reads: never let them carry a credential.
    said = redact(message or error_type)
    detail = said or f"HTTP {status}"
    if status == 401:
        return Rejected()
    if status == 402:
        return errors.MembershipExpired()
    if status == 403:
        if error_type == TERMINATED_ERROR_TYPE or TERMINATED_ERROR_TYPE in message:
            return errors.AllowListRefused(detail) if allow_listed else errors.ClientRefused(detail)
        if is_busy(status, message):
            return errors.KimiBusy(detail)
        return errors.Forbidden(detail)
    if status == 413:
        return errors.RequestTooLarge(request_bytes, MAX_REQUEST_BYTES)
    if status == 429:
        if is_quota_error(error_type, message):
            return errors.QuotaExceeded(detail)
        return errors.RateLimited(retry_after_seconds(headers))
    if status >= 500:
        return errors.ServiceUnavailable(f"HTTP {status}: {said}" if said else f"HTTP {status}", status=status)
    if (reference := gone_file_reference(status, message)) is not None:
        return errors.MediaGone(reference)
    return errors.BadRequest(detail, status=status)


def gone_file_reference(status: int, message: str) -> str | None:
    """The `ms://` reference an error says the service no longer has, or None."""
    if status not in (400, 404) or not _GONE_WORDING.search(message):
        return None
    found = _FILE_REFERENCE.search(message)
    return found.group(0) if found else None


def request_size(request: httpx2.Request | None) -> int | None:
    """The size in bytes of a sent request's body, from its Content-Length (None if unknown)."""
    if request is None:
        return None
    try:
        return int(request.headers["content-length"])
    except (KeyError, ValueError):
        return None


def transport_error(exc: BaseException, url: str) -> errors.UpstreamError:
    """Our error for a request that got no answer, naming the cause (DNS, refused, TLS, timeout) from its chain."""
    cause = describe_transport_error(exc, url)
    if in_chain(exc, httpx2.TimeoutException) and not in_chain(exc, httpx2.ConnectTimeout):
        return errors.ServiceUnavailable(cause)  # reached, but the answer stalled
    return errors.NetworkError(cause)


def in_chain(exc: BaseException, kind: type[BaseException]) -> bool:
    """True if `exc` or an exception in its cause/context chain is a `kind`."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, kind):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


async def mark_retry(response: httpx2.Response) -> None:
    """httpx2 response hook: steer the retry loops (the SDK's and ours obey `x-should-retry`, docs/kimi-api.md §9).

    Retried: a 403 "concurrent request limit" (the SDK alone would not retry a 403). Not retried: a used-up
    quota, or any answer asking for a wait (`Retry-After`, seconds or an HTTP date) longer than a tool call
    should wait; the SDK would otherwise sleep that long, whatever the status.
    """
    if response.status_code < 400:
        return
    wait = retry_after_seconds(response.headers)
    if wait is not None and wait > MAX_RETRY_AFTER_SECONDS:
        response.headers["x-should-retry"] = "false"
        return
    if response.status_code not in (403, 429):
        return
    await response.aread()
    error_type, message = error_details(response.content)
    if is_busy(response.status_code, message):
        response.headers["x-should-retry"] = "true"
    elif response.status_code == 429 and is_quota_error(error_type, message):
        response.headers["x-should-retry"] = "false"
