import logging
from collections.abc import Iterator

import pytest

from kimi_mcp import logs

LIBRARY_LOGGERS = ("httpx2", "httpx", "anthropic")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`logs.configure` rewires the root logger: put pytest's handlers and every level back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, previous in levels.items():
        logging.getLogger(name).setLevel(previous)


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


@pytest.mark.usefixtures("restore_logging")
def test_the_sdk_retry_line_stays_out_of_the_default_log(capsys: pytest.CaptureFixture[str]) -> None:
    from anthropic import _base_client

    retry_line = "Retrying request to /v1/messages in 0.5 seconds"
    assert _base_client.log.name == "anthropic._base_client"  # the logger the SDK really uses

    logs.configure(debug=False)
    _base_client.log.info(retry_line)
    _base_client.log.warning("a warning from the SDK")
    logging.getLogger("kimi_mcp.test").info("our own INFO line")
    err = capsys.readouterr().err
    assert retry_line not in err
    assert "a warning from the SDK" in err and "our own INFO line" in err

    logs.configure(debug=True)
    _base_client.log.info(retry_line)
    assert retry_line in capsys.readouterr().err
