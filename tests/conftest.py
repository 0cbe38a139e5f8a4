"""Shared fixtures. Keep this small: fixtures that only one test module needs live in that module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kimi_mcp.testing.fake_kimi import FakeKimi


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_kimi() -> Iterator[FakeKimi]:
    """A fake Kimi service on 127.0.0.1, fresh for each test (see kimi_mcp/testing/fake_kimi.py)."""
    with FakeKimi() as fake:
        yield fake


@pytest.fixture
def kimi_env(fake_kimi: FakeKimi, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a kimi-mcp pointed at the fake with the fake's API key and a fresh home folder."""
    return {
        "KIMI_API_KEY": "sk-kimi-test-key",
        "KIMI_CODE_BASE_URL": fake_kimi.base_url,
        "KIMI_CODE_OAUTH_HOST": fake_kimi.oauth_host,
        "KIMI_MCP_HOME": str(tmp_path_factory.mktemp("kimi-home")),
    }
