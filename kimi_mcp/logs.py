"""Logging to stderr (stdout is the stdio wire) with every secret redacted, whatever logged it.

Redaction is by value (each token or key we handle is registered here) and by shape (Bearer values, JWTs,
`sk-` keys), so a library that logs a header at DEBUG cannot leak one either.
"""

from __future__ import annotations

import logging
import re
import sys
import threading

REDACTED = "[redacted]"
_SHAPES = re.compile(
    r"(?i)(bearer\s+)[^\s\"',}]+"
    r"|eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"
    r"|sk-[\w-]{8,}"
    r"|((?:access_token|refresh_token|api_key|device_code)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}&]+"
)
_MIN_SECRET_LENGTH = 8
_CHATTY_LIBRARIES = ("httpx2", "httpx", "anthropic")
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Make sure `value` never appears in a log line (tokens, refresh tokens, API keys)."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _SHAPES.sub(lambda m: (m.group(1) or m.group(2) or "") + REDACTED, text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            cleaned += "\n" + redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = cleaned, None
        return True


def configure(debug: bool) -> None:
    """Root logging to stderr, INFO by default, DEBUG with KIMI_CODE_DEBUG=1, always redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    # Below WARNING these libraries narrate what we report ourselves: httpx2 logs every request, and the anthropic
    # SDK says "Retrying request to … in N seconds" before each retry, which a user reads as an error. Their
    # detail is worth having only when debugging. NOTSET hands the decision back to the root level.
    quiet = logging.NOTSET if debug else logging.WARNING
    for name in _CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
