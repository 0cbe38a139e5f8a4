"""Fixtures for the auth tests: settings that point at the fake Kimi, one HTTP client, fast polling, workers.

Test modules cannot import each other (pytest runs with --import-mode=importlib), so helpers are fixtures.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx2
import pytest

import kimi_mcp
from kimi_mcp.auth.device_flow import PollTiming
from kimi_mcp.auth.store import StoredLogin
from kimi_mcp.auth.tokens import TokenSource
from kimi_mcp.http import build_http_client
from kimi_mcp.settings import Settings
from kimi_mcp.testing.client_setup import store_issued_login
from kimi_mcp.testing.fake_kimi import FakeKimi

REPO_ROOT = Path(kimi_mcp.__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("proc_worker.py")

SeedLogin = Callable[..., StoredLogin]


@pytest.fixture
def fake(fake_kimi: FakeKimi) -> FakeKimi:
    """The fake Kimi, asking for no wait between polls (the client's floor then decides)."""
    fake_kimi.oauth.interval = 0
    return fake_kimi


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "kimi-home"


@pytest.fixture
def settings(fake: FakeKimi, home: Path) -> Settings:
    return Settings(home=home, oauth_host=fake.oauth_host, base_url=fake.base_url)


@pytest.fixture
def fast() -> PollTiming:
    """Poll in milliseconds instead of seconds; the client still applies the rules of docs/kimi-api.md §3."""
    return PollTiming(min_interval=0.01, slow_down_step=0.05)


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx2.AsyncClient]:
    async with build_http_client(settings, timeout=10) as client:
        yield client


@pytest.fixture
def tokens(settings: Settings, http: httpx2.AsyncClient) -> TokenSource:
    return TokenSource(settings, http, retry_delays=(0.01, 0.02, 0.03))


@pytest.fixture
def seed_login(fake: FakeKimi, home: Path) -> SeedLogin:
    """Store a login the fake issued, as if `kimi-mcp login` had run. `stored_ttl` overrides the stored expiry."""

    def seed(*, expires_in: float = 900, stored_ttl: float | None = None) -> StoredLogin:
        return store_issued_login(fake, home, expires_in=expires_in, stored_ttl=stored_ttl)

    return seed


@pytest.fixture
def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process: our settings, no API key, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIMI_", "ANTHROPIC_"))}
    env.update(
        KIMI_MCP_HOME=str(settings.home),
        KIMI_CODE_OAUTH_HOST=settings.oauth_host,
        KIMI_CODE_BASE_URL=settings.base_url,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    return env


@pytest.fixture
def worker() -> list[str]:
    """The command prefix of tests/auth/proc_worker.py (add a mode and its arguments)."""
    return [sys.executable, str(WORKER)]


@pytest.fixture
def restore_umask() -> Iterator[None]:
    """Put the process umask back after a test that loosens it."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)
