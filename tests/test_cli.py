"""The `kimi-mcp` console script, run as a real subprocess against the fake Kimi."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kimi_mcp._version import __version__
from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.auth.store import CredentialStore, StoredLogin
from kimi_mcp.testing.fake_kimi import FakeKimi, Reply

SCRIPT = Path(sys.executable).parent / "kimi-mcp"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": env.get("KIMI_MCP_HOME", "/nonexistent")}
    return subprocess.run(
        [str(SCRIPT), *args], env={**base, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def test_version_and_help() -> None:
    assert run("--version", env={}).stdout.strip() == f"kimi-mcp {__version__}"
    help_text = run("--help", env={}).stdout
    for command in ("serve", "login", "logout", "status", "chat"):
        assert command in help_text


def test_a_bad_setting_is_one_line_naming_the_variable() -> None:
    done = run("status", env={"KIMI_MCP_TIMEOUT": "soon"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "KIMI_MCP_TIMEOUT" in done.stderr


def test_chat_prints_the_streamed_reply(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="streamed answer", text_deltas=["stre", "amed ", "answer"]))
    done = run("chat", "What now?", env=kimi_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "streamed answer\n"
    assert kimi_env["KIMI_API_KEY"] not in done.stderr


def test_chat_reports_an_upstream_error_in_one_line(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    from kimi_mcp.testing.fake_kimi import Fault

    fake_kimi.script(Fault(status=402, error_type="membership_expired"))
    done = run("chat", "hi", env=kimi_env)
    assert done.returncode == 1
    assert "membership" in done.stderr and "Traceback" not in done.stderr


def test_status_shows_quota_bars_with_an_api_key(kimi_env: dict[str, str]) -> None:
    done = run("status", env=kimi_env)
    assert done.returncode == 0, done.stderr
    assert "API key" in done.stdout
    assert "5-hour" in done.stdout and "weekly" in done.stdout
    assert " 6% (3 of 50" in done.stdout and "12% (12 of 100" in done.stdout
    assert kimi_env["KIMI_API_KEY"] not in done.stdout


def test_status_and_logout_with_an_account_login(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"}
    home = Path(env["KIMI_MCP_HOME"])
    not_logged_in = run("status", env=env)
    assert "not logged in" in not_logged_in.stdout

    answer = TokenResponse.model_validate(fake_kimi.oauth.issue_tokens(expires_in=900))
    store = CredentialStore(home)
    with store.locked_sync():
        store.write_sync(StoredLogin.from_token_response(answer, "device_flow"))
    status = run("status", env=env)
    assert "Kimi account" in status.stdout and "5-hour" in status.stdout
    assert answer.access_token.get_secret_value() not in status.stdout + status.stderr

    logout = run("logout", env=env)
    assert "deleted" in logout.stdout and not store.path.exists()
    assert "No stored Kimi login" in run("logout", env=env).stdout
