"""Device login inside a running server (LoginManager) and in a terminal (`kimi-mcp login`), against the fake."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import time
from pathlib import Path

import anyio
import httpx2
import pytest

from kimi_mcp.auth.device_flow import PollTiming
from kimi_mcp.auth.login import LoginManager
from kimi_mcp.auth.terminal import NOTICE, login_command, terminal_login
from kimi_mcp.auth.tokens import TokenSource
from kimi_mcp.errors import LoginFailed, LoginRequired
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi

pytestmark = pytest.mark.anyio


@pytest.fixture
def manager(settings: Settings, http: httpx2.AsyncClient, tokens: TokenSource, fast: PollTiming) -> LoginManager:
    return LoginManager(settings, http, tokens, timing=fast)


async def test_login_in_the_background_is_seen_by_the_next_token_call(
    fake: FakeKimi, manager: LoginManager, tokens: TokenSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with anyio.create_task_group() as tg:
        prompt = await manager.begin(tg)
        assert prompt.verification_uri_complete.endswith(f"user_code={prompt.user_code}")
        assert 1790 <= prompt.expires_in <= 1800
        assert await manager.begin(tg) == prompt  # one login at a time
        status = manager.status()
        assert status.login_in_progress and status.user_code == prompt.user_code and status.last_error is None
        with pytest.raises(LoginRequired):
            await tokens.token()

        fake.oauth.approve(prompt.user_code)
        with anyio.fail_after(5):
            await manager.wait()

    assert fake.oauth.device_authorizations == 1
    assert fake.oauth.is_valid_access_token(await tokens.token())  # no restart needed
    assert manager.status().model_dump() == {
        "login_in_progress": False,
        "verification_uri_complete": None,
        "user_code": None,
        "expires_in": None,
        "last_error": None,
    }
    for secret in fake.oauth.issued_secrets():
        assert secret not in caplog.text


async def test_a_denied_login_lands_in_last_error_and_a_new_one_can_start(
    fake: FakeKimi, manager: LoginManager
) -> None:
    async with anyio.create_task_group() as tg:
        prompt = await manager.begin(tg)
        fake.oauth.deny(prompt.user_code)
        with anyio.fail_after(5):
            await manager.wait()
        status = manager.status()
        assert not status.login_in_progress and "denied" in (status.last_error or "")

        again = await manager.begin(tg)
        assert again.user_code != prompt.user_code and manager.status().last_error is None
        tg.cancel_scope.cancel()  # a server shutting down mid-login
    assert not manager.status().login_in_progress


async def test_an_unexpected_failure_never_escapes_the_task_group(
    fake: FakeKimi, manager: LoginManager, tokens: TokenSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(answer: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tokens, "save_login", broken)
    fake.oauth.approve()
    async with anyio.create_task_group() as tg:
        await manager.begin(tg)
        with anyio.fail_after(5):
            await manager.wait()
    assert manager.status().last_error == "The Kimi login failed unexpectedly (RuntimeError). Try again."


async def test_begin_reports_an_unreachable_login_service(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, oauth_host="http://127.0.0.1:9")
    async with httpx2.AsyncClient() as http:
        manager = LoginManager(settings, http, TokenSource(settings, http))
        async with anyio.create_task_group() as tg:
            with pytest.raises(LoginFailed, match="Could not reach"):
                await manager.begin(tg)
    assert not manager.status().login_in_progress


async def test_a_login_without_verification_uri_shows_the_complete_one(
    fake: FakeKimi, manager: LoginManager, settings: Settings, fast: PollTiming
) -> None:
    fake.oauth.omit_device_fields = {"verification_uri"}
    async with anyio.create_task_group() as tg:
        prompt = await manager.begin(tg)
        assert prompt.verification_uri is None
        assert prompt.verification_uri_complete == f"{fake.oauth_host}/device?user_code={prompt.user_code}"
        assert manager.status().verification_uri_complete == prompt.verification_uri_complete
        fake.oauth.approve(prompt.user_code)
        with anyio.fail_after(10):
            await manager.wait()
    assert manager.status().last_error is None
    out = io.StringIO()
    fake.oauth.approve()
    await terminal_login(settings, out, timing=fast, open_browser=False)
    assert f"{fake.oauth_host}/device?user_code=" in out.getvalue() and "Logged in." in out.getvalue()


async def test_terminal_login_shows_the_notice_url_and_code_and_stores_the_login(
    fake: FakeKimi, settings: Settings, fast: PollTiming
) -> None:
    out = io.StringIO()
    fake.oauth.script_polls("authorization_pending", "slow_down")
    fake.oauth.approve()
    started = time.monotonic()
    await terminal_login(settings, out, timing=fast, open_browser=False)
    elapsed = time.monotonic() - started

    text = out.getvalue()
    assert text.startswith(NOTICE) and "KIMI_API_KEY" in NOTICE and "kimi-mcp/" in NOTICE
    assert "/device?user_code=" in text and "Confirmation code: " in text
    assert "Waiting for approval" in text and "Logged in." in text
    assert (settings.home / "credentials.json").exists()
    assert elapsed < 8, f"terminal login took {elapsed:.3f} s"  # with the service's own intervals: over 15 s


def test_login_command_reports_a_denied_login(fake: FakeKimi, settings: Settings, fast: PollTiming) -> None:
    out = io.StringIO()
    fake.oauth.deny()
    assert login_command(settings, out, timing=fast, open_browser=False) == 1
    assert "denied" in out.getvalue()
    assert not (settings.home / "credentials.json").exists()


def test_ctrl_c_cancels_the_terminal_login_cleanly(
    fake: FakeKimi, settings: Settings, child_env: dict[str, str], worker: list[str]
) -> None:
    proc = subprocess.Popen([*worker, "login"], env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60  # a loaded machine: the child imports the CLI first
        seen = b""
        while b"Waiting for approval" not in seen:
            assert time.monotonic() < deadline, seen
            seen += proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert json.loads(out)["exit"] == 130
    assert b"Login cancelled; nothing was stored." in seen + err
    assert b"Traceback" not in err
    assert not (settings.home / "credentials.json").exists()
