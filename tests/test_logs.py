import logging

import pytest

from kimi_mcp import logs


def test_registered_secrets_and_secret_shapes_are_redacted() -> None:
    logs.register_secret("plain-secret-value-42")
    line = (
        "token=plain-secret-value-42 Authorization: Bearer abc.def-ghi "
        "jwt eyJhbGciOi.eyJzdWIiOiIx.sig_nature key sk-kimi-abcdefgh12 "
        '{"refresh_token": "r-123456789"} form refresh_token=r-987654321&client_id=x'
    )
    cleaned = logs.redact(line)
    for secret in ("plain-secret-value-42", "abc.def-ghi", "eyJhbGciOi", "sk-kimi-abcdefgh12", "r-123456789", "r-987"):
        assert secret not in cleaned
    assert "client_id=x" in cleaned and "Authorization: Bearer [redacted]" in cleaned


def test_filter_redacts_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logs.register_secret("TRACEBACK-SECRET-1")
    logger = logging.getLogger("kimi_mcp.test")
    handler_filter = logs.RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        raise ValueError("boom TRACEBACK-SECRET-1")
    except ValueError:
        logger.exception("failed with %s", "TRACEBACK-SECRET-1")
    caplog.handler.removeFilter(handler_filter)
    assert "TRACEBACK-SECRET-1" not in caplog.text
    assert "boom" in caplog.text and "[redacted]" in caplog.text
