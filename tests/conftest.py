"""Shared fixtures. Keep this small: fixtures that only one test module needs live in that module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kimi_mcp.settings import Settings
from kimi_mcp.testing.client_setup import settings_for
from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.wire_views import surface_of

# KIMI_CODE_PROTOCOL's values (docs/kimi-api.md §1): the Anthropic wire (the default) and the OpenAI wire.
WIRES = ("anthropic", "openai")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_kimi(request: pytest.FixtureRequest) -> Iterator[FakeKimi]:
    """A fake Kimi service on 127.0.0.1, fresh for each test (see kimi_mcp/testing/fake_kimi.py).

    In a test run per wire, every chat request it saw must have gone to that wire's surface: a test cannot pass
    on the wrong wire unnoticed.
    """
    with FakeKimi() as fake:
        yield fake
    callspec = getattr(request.node, "callspec", None)
    wire = callspec.params.get("wire") if callspec is not None else None
    if wire is not None:
        surfaces = {surface_of(recorded) for recorded in fake.chat_requests()}
        assert surfaces <= {wire}, f"chat requests went to {sorted(surfaces)}, not only to the {wire} wire"


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest) -> str:
    """The chat wire a behaviour test runs on, once per wire: a test that asks for it runs on both.

    `kimi_env` and `wire_settings` select it (KIMI_CODE_PROTOCOL); read what was sent wire-neutrally with
    kimi_mcp/testing/wire_views.py. A test may narrow it by parametrising `wire` directly.
    """
    return str(request.param)


@pytest.fixture
def kimi_env(
    fake_kimi: FakeKimi, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, str]:
    """Environment for a kimi-mcp pointed at the fake with the fake's API key and a fresh home folder; in a test
    that uses `wire`, on that wire."""
    env = {
        "KIMI_API_KEY": "sk-kimi-test-key",
        "KIMI_CODE_BASE_URL": fake_kimi.base_url,
        "KIMI_CODE_OAUTH_HOST": fake_kimi.oauth_host,
        "KIMI_MCP_HOME": str(tmp_path_factory.mktemp("kimi-home")),
    }
    if "wire" in request.fixturenames:
        env["KIMI_CODE_PROTOCOL"] = request.getfixturevalue("wire")
    return env


@pytest.fixture
def wire_settings(fake_kimi: FakeKimi, tmp_path: Path, wire: str) -> Callable[..., Settings]:
    """`wire_settings(**env)`: settings for a `KimiClient` on `wire` pointed at the fake, tmp_path as its home,
    with `env` as further environment values (e.g. KIMI_MCP_MAX_RETRIES="2")."""
    return lambda **extra: settings_for(fake_kimi, tmp_path, KIMI_CODE_PROTOCOL=wire, **extra)
