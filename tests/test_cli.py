"""The `kimi-mcp` console script, run as a real subprocess against the fake Kimi."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kimi_mcp._version import __version__
from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.auth.store import CredentialStore, StoredLogin
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, Reply

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


def test_two_bad_settings_are_both_reported_in_one_run() -> None:
    done = run("chat", "hi", env={"KIMI_MCP_MAX_CONCURRENCY": "5000", "KIMI_MCP_THINKING": "medium"})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "kimi-mcp: KIMI_MCP_MAX_CONCURRENCY: must be a whole number between 1 and 1,000 (got '5000')",
        "kimi-mcp: KIMI_MCP_THINKING: must be one of off, low, high, max (got 'medium')",
    ]


@pytest.mark.parametrize("home", ["", "  "])
def test_an_empty_home_is_a_settings_error(home: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(SCRIPT), "status"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KIMI_MCP_HOME": home},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "kimi-mcp: KIMI_MCP_HOME: is empty; set it to a folder, or unset it to use ~/.kimi-mcp\n"
    assert list(tmp_path.iterdir()) == []  # nothing written to the current folder


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_a_shared_home_keeps_its_mode_and_is_refused(kimi_env: dict[str, str], tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    # A login someone else planted: it must not be read, let alone used.
    (shared / "credentials.json").write_text('{"access_token": "planted"}')
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"} | {"KIMI_MCP_HOME": str(shared)}
    done = run("status", env=env)
    assert done.returncode == 1
    assert done.stderr == (
        f"kimi-mcp cannot use its folder {shared} (other users can write to it, mode 1777, so they could replace "
        "your stored Kimi login; its mode was left unchanged). Set KIMI_MCP_HOME to a private folder (one only you "
        "can write to), or unset it to use ~/.kimi-mcp.\n"
    )
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert sorted(p.name for p in shared.iterdir()) == ["credentials.json"]


def test_a_home_kimi_mcp_creates_is_private(kimi_env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    assert run("status", env={**kimi_env, "KIMI_MCP_HOME": str(home)}).returncode == 0
    if os.name != "nt":
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert stat.S_IMODE(home.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_an_empty_chat_prompt_is_refused(prompt: str, kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    done = run("chat", prompt, env=kimi_env)
    assert done.returncode == 2
    assert done.stderr.startswith("kimi-mcp: the prompt is empty.") and done.stdout == ""
    assert fake_kimi.messages_requests() == []


def test_chat_prints_the_streamed_reply(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="streamed answer", text_deltas=["stre", "amed ", "answer"]))
    done = run("chat", "What now?", env=kimi_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "streamed answer\n"
    assert kimi_env["KIMI_API_KEY"] not in done.stderr


def test_chat_reports_an_upstream_error_in_one_line(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Fault(status=402, error_type="membership_expired"))
    done = run("chat", "hi", env=kimi_env)
    assert done.returncode == 1
    assert "membership" in done.stderr and "Traceback" not in done.stderr
    assert "kimi-mcp: kimi-mcp" not in done.stderr


def test_a_socks_proxy_without_socksio_is_one_line_saying_what_to_install(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    done = run("chat", "hi", env=kimi_env | {"all_proxy": "socks5://127.0.0.1:1080"})
    assert done.returncode == 1, done.stderr
    assert "all_proxy names a SOCKS proxy" in done.stderr and "pip install socksio" in done.stderr
    assert "Traceback" not in done.stderr and "ImportError" not in done.stderr
    assert fake_kimi.chat_requests() == []


def test_a_proxy_that_refuses_connections_is_named_with_its_variable(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run("chat", "hi", env=kimi_env | {"HTTP_PROXY": f"http://someone:PROXY-PASSWORD@127.0.0.1:{port}"})
    assert done.returncode == 1, done.stderr
    assert f"connection refused by the proxy 127.0.0.1:{port} (HTTP_PROXY)" in done.stderr, done.stderr
    assert "PROXY-PASSWORD" not in done.stderr and "Traceback" not in done.stderr
    assert fake_kimi.chat_requests() == []


def test_the_sdk_retry_line_is_not_in_the_default_log(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Fault(status=500), Reply(text="ok"))
    done = run("chat", "hi", env=kimi_env)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    assert len(fake_kimi.messages_requests()) == 2  # the SDK did retry
    assert "Retrying request" not in done.stderr

    fake_kimi.script(Fault(status=500), Reply(text="ok"))
    debug = run("chat", "hi", env={**kimi_env, "KIMI_CODE_DEBUG": "1"})
    assert "Retrying request to /v1/messages" in debug.stderr  # the line exists; only the default hides it


def test_status_shows_quota_bars_with_an_api_key(kimi_env: dict[str, str]) -> None:
    done = run("status", env=kimi_env)
    assert done.returncode == 0, done.stderr
    assert "API key" in done.stdout
    assert "5-hour" in done.stdout and "weekly" in done.stdout
    assert " 6% (3 of 50" in done.stdout and "12% (12 of 100" in done.stdout
    assert kimi_env["KIMI_API_KEY"] not in done.stdout
    # After the bars, the store (tests/test_conversations_cli.py fills one); status does not create it.
    store = Path(kimi_env["KIMI_MCP_HOME"]) / "kimi-mcp.sqlite3"
    assert done.stdout.splitlines()[-1] == f"Store:     no conversations yet ({store})"
    assert not store.exists()


def test_status_and_logout_with_an_account_login(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"}
    home = Path(env["KIMI_MCP_HOME"])
    not_logged_in = run("status", env=env)
    assert "not logged in" in not_logged_in.stdout
    assert not_logged_in.returncode == 1  # no usable credential: scripts can tell

    answer = TokenResponse.model_validate(fake_kimi.oauth.issue_tokens(expires_in=900))
    store = CredentialStore(home)
    with store.locked_sync():
        store.write_sync(StoredLogin.from_token_response(answer, "device_flow"))
    status = run("status", env=env)
    assert "Kimi account" in status.stdout and "5-hour" in status.stdout
    assert status.returncode == 0, status.stderr
    assert answer.access_token.get_secret_value() not in status.stdout + status.stderr

    logout = run("logout", env=env)
    assert "deleted" in logout.stdout and not store.path.exists()
    assert "No stored Kimi login" in run("logout", env=env).stdout


def test_status_exits_1_when_kimi_refuses_the_key(kimi_env: dict[str, str]) -> None:
    done = run("status", env={**kimi_env, "KIMI_API_KEY": "sk-kimi-not-the-right-key"})
    assert done.returncode == 1
    assert (
        "API key (KIMI_API_KEY)" in done.stdout and "Quota:     unavailable: Kimi rejected the API key" in done.stdout
    )


def test_upload_prints_each_id_reuses_it_and_reports_a_bad_file(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    image = tmp_path / "shot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 64)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(5000))
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    first = run("upload", str(image), str(video), str(notes), env=kimi_env)
    assert first.returncode == 1, first.stderr
    ids = [f"ms://{u.file_id}" for u in fake_kimi.uploads]
    assert first.stdout.splitlines() == [f"{ids[0]}\t{image}", f"{ids[1]}\t{video}"]
    assert [(u.filename, u.purpose) for u in fake_kimi.uploads] == [("upload.png", "image"), ("upload.mp4", "video")]
    assert f"kimi-mcp: {notes}: " in first.stderr and "not a supported image or video" in first.stderr
    # The second run finds both in the shared upload cache: nothing is sent again.
    again = run("upload", str(image), str(video), env=kimi_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"{ids[0]}\t{image} (already uploaded)",
        f"{ids[1]}\t{video} (already uploaded)",
    ]
    assert len(fake_kimi.uploads) == 2


def test_upload_progress_bar_redraws_in_place_and_ends_at_the_total() -> None:
    import io

    import anyio

    from kimi_mcp.upload_command import ProgressBar

    out = io.StringIO()
    bar = ProgressBar("big.mp4", out)

    async def feed() -> None:
        for sent in (0, 25_000_000, 50_000_000):
            await bar(sent, 50_000_000)

    anyio.run(feed)
    bar.close()
    frames = out.getvalue().split("\r")[1:]
    assert frames[-1] == "big.mp4 [" + "█" * 30 + "] 50.0 of 50.0 MB (100%)\n"
    assert all(frame.startswith("big.mp4 [") for frame in frames)
