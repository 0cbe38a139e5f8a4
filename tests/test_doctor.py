"""`kimi-mcp doctor` against the fake Kimi: all ✓ when everything is right, and for each thing that can be wrong
(settings, base URL, host name, key, proxy, state folder, store, wire) the right ✗, its fix line and exit status 1,
while the checks that have nothing to do with it stay ✓ or say why they were skipped."""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kimi_mcp import cli
from kimi_mcp.auth.store import CredentialStore
from kimi_mcp.doctor.model import STEP_SECONDS
from kimi_mcp.doctor.runner import NAMES
from kimi_mcp.settings import DEFAULT_BASE_URL
from kimi_mcp.store.db import DB_FILE_NAME, SCHEMA_VERSION
from kimi_mcp.testing.client_setup import store_issued_login
from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.installed import installed_kimi_mcp

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
NETWORK = ("api.dns", "api.tcp", "api.tls", "oauth.dns", "oauth.tcp", "oauth.tls", "proxy", "models", "wire")
HANG_SECONDS = 40.0  # far past the DNS step's bound (STEP_SECONDS) and the whole run's (RUN_SECONDS)
WRONG_KEY = "sk-kimi-wrong-key-0123456789abcdef"


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or kimi-mcp variable of the machine running the tests may change what doctor sees."""
    for name in list(os.environ):
        if name.upper() in PROXY_VARIABLES or name.upper().startswith(("KIMI_", "SSL_CERT_")):
            monkeypatch.delenv(name)


def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], *flags: str):
    """Run `kimi-mcp doctor --json` in-process through the CLI: (exit status, {name: check}, stdout + stderr)."""
    _clean_environment(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        cli.main(["doctor", "--json", *flags])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert [check["name"] for check in report["checks"]] == list(NAMES)
    assert report["ok"] is (exited.value.code == 0)
    return exited.value.code, {check["name"]: check for check in report["checks"]}, captured.out + captured.err


def failed(checks: dict[str, Any]) -> set[str]:
    return {name for name, check in checks.items() if check["status"] == "fail"}


def refusing_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- all well --------------------------------------------------------------------------------------------------


def test_the_installed_command_passes_every_check_against_the_fake(kimi_env: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARIABLES and not k.startswith("KIMI_")}
    started = time.monotonic()
    done = subprocess.run(
        [str(installed_kimi_mcp()), "doctor"], env={**env, **kimi_env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in ("settings", "tls.trust", "proxy", "api.dns", "api.tcp", "credential", "models", "wire"):
        assert any(line.startswith(f"✓ {name}: ") for line in lines), (name, done.stdout)
    # The fake speaks plain HTTP: no TLS check passes in its name, it is shown as skipped, with the reason.
    assert "– api.tls: plain HTTP (" in done.stdout and "no TLS to check (skipped)" in done.stdout
    assert not any(line.startswith("✗") for line in lines) and "fix:" not in done.stdout
    assert "All checks passed." in done.stdout
    assert kimi_env["KIMI_API_KEY"] not in done.stdout + done.stderr
    assert time.monotonic() - started < 60


def test_settings_listed_with_the_key_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    key = WRONG_KEY.replace("wrong", "right")
    fake_kimi.api_keys.add(key)
    status, checks, output = doctor(monkeypatch, capsys, {**kimi_env, "KIMI_API_KEY": key})
    assert status == 0, checks  # the key really was sent (the fake accepted it), and is never shown
    assert key not in output and key[:-4] not in output
    report = json.loads(output[: output.rindex("}") + 1])
    assert report["settings"]["KIMI_API_KEY"] == f"set (ends …{key[-4:]})"
    assert report["settings"]["KIMI_CODE_BASE_URL"] == kimi_env["KIMI_CODE_BASE_URL"]
    assert report["settings"]["KIMI_MCP_MODEL"] == "kimi-for-coding (default)"
    assert checks["credential"]["detail"] == f"API key from KIMI_API_KEY, set (ends …{key[-4:]})"


def test_json_report_is_ok_against_the_fake(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    status, checks, _ = doctor(monkeypatch, capsys, kimi_env)
    assert status == 0 and not failed(checks)
    assert {name for name, c in checks.items() if c["status"] == "skipped"} == {
        "api.tls", "oauth.dns", "oauth.tcp", "oauth.tls",
    }  # fmt: skip
    assert "1 model(s), kimi-for-coding listed" in checks["models"]["detail"]
    assert all(check["fix"] is None for check in checks.values())


# -- the failures the issue names ------------------------------------------------------------------------------


def test_wrong_base_url_fails_at_models_with_the_expected_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {**kimi_env, "KIMI_CODE_BASE_URL": f"{fake_kimi.oauth_host}/not-kimi"}
    status, checks, _ = doctor(monkeypatch, capsys, env)
    assert status == 1
    assert failed(checks) == {"models"}  # the host is fine: DNS and TCP pass
    assert "answered 404" in checks["models"]["detail"]
    assert "KIMI_CODE_BASE_URL" in checks["models"]["fix"] and DEFAULT_BASE_URL in checks["models"]["fix"]
    assert checks["api.tcp"]["status"] == "ok" and checks["wire"]["status"] == "skipped"


def test_model_the_backend_does_not_list(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    status, checks, _ = doctor(monkeypatch, capsys, {**kimi_env, "KIMI_MCP_MODEL": "kimi-k9-imaginary"})
    assert status == 1
    assert failed(checks) == {"models"}
    assert checks["models"]["detail"] == "GET /v1/models lists kimi-for-coding, not kimi-k9-imaginary"
    assert checks["models"]["fix"] == "set KIMI_MCP_MODEL to one of: kimi-for-coding"


def test_unresolvable_host_fails_at_dns_within_the_bound(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    env = {**kimi_env, "KIMI_CODE_BASE_URL": "https://kimi-doctor-test.invalid/coding"}
    started = time.monotonic()
    status, checks, _ = doctor(monkeypatch, capsys, env)
    assert time.monotonic() - started < 30  # DNS failing fast or timing out: bounded either way
    assert status == 1
    assert failed(checks) == {"api.dns"}
    assert "kimi-doctor-test.invalid" in checks["api.dns"]["detail"]
    assert "KIMI_CODE_BASE_URL" in checks["api.dns"]["fix"] and "DNS" in checks["api.dns"]["fix"]
    assert checks["api.tcp"]["status"] == checks["api.tls"]["status"] == "skipped"
    assert checks["models"]["status"] == "skipped" and "api.dns" in checks["models"]["detail"]


def test_a_hanging_resolver_is_bounded_and_not_waited_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    """No DNS server answering: the check gives up after its bound, and the report does not wait for the resolver
    (anyio.run would, for a lookup in its executor), so doctor ends long before the lookup would."""
    host = "kimi-doctor-hang.invalid"
    real = socket.getaddrinfo
    released = threading.Event()

    def hanging(name: Any, *args: Any, **kwargs: Any) -> Any:
        if name == host:
            released.wait(HANG_SECONDS)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    started = time.monotonic()
    try:
        status, checks, _ = doctor(monkeypatch, capsys, {**kimi_env, "KIMI_CODE_BASE_URL": f"https://{host}/coding"})
        elapsed = time.monotonic() - started
    finally:
        released.set()
    assert elapsed < HANG_SECONDS - 5, elapsed
    assert status == 1 and failed(checks) == {"api.dns"}
    assert checks["api.dns"]["detail"] == f"no answer from {host}:443 within {STEP_SECONDS:g} s"


def test_bad_key_is_refused_at_models_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    status, checks, output = doctor(monkeypatch, capsys, {**kimi_env, "KIMI_API_KEY": WRONG_KEY})
    assert status == 1
    assert failed(checks) == {"models"}
    assert checks["models"]["detail"] == "the API key was refused (401)"
    assert "KIMI_API_KEY" in checks["models"]["fix"]
    assert checks["credential"]["status"] == "ok"  # a key is set; the service is what refused it
    assert WRONG_KEY not in output and WRONG_KEY[-12:] not in output


def test_bad_key_in_text_output_has_the_fix_line_and_no_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    _clean_environment(monkeypatch)
    for name, value in {**kimi_env, "KIMI_API_KEY": WRONG_KEY}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        cli.main(["doctor"])
    out, err = capsys.readouterr()
    assert exited.value.code == 1
    lines = out.splitlines()
    at = lines.index("✗ models: the API key was refused (401)")
    assert lines[at + 1].startswith("  fix: set KIMI_API_KEY")
    assert "1 check(s) failed." in out and WRONG_KEY not in out + err


def test_proxy_pointing_nowhere_is_named_with_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    port = refusing_port()
    # The fake is plain http://, so HTTP_PROXY (not HTTPS_PROXY) is the variable the client would honour.
    status, checks, _ = doctor(monkeypatch, capsys, {**kimi_env, "HTTP_PROXY": f"http://127.0.0.1:{port}"})
    assert status == 1
    assert failed(checks) == {"proxy"}
    assert f"via http://127.0.0.1:{port} (HTTP_PROXY)" in checks["proxy"]["detail"]
    assert (
        checks["proxy"]["fix"] == f"HTTP_PROXY points to 127.0.0.1:{port}, which refuses connections: fix or unset it"
    )
    # Through a proxy the client neither resolves nor connects to the host itself, and nothing reached the fake.
    assert all(checks[f"api.{step}"]["status"] == "skipped" for step in ("dns", "tcp", "tls"))
    assert checks["models"]["status"] == "skipped" and "proxy" in checks["models"]["detail"]
    assert fake_kimi.requests == []


def test_https_proxy_is_the_one_for_an_https_base_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    port = refusing_port()
    env = {
        **kimi_env,
        "KIMI_CODE_BASE_URL": "https://kimi-doctor-test.invalid/coding",
        "HTTP_PROXY": "http://127.0.0.1:1",  # for http:// URLs only: must not be the one named
        "HTTPS_PROXY": f"http://user:secret-pass@127.0.0.1:{port}",
    }
    status, checks, output = doctor(monkeypatch, capsys, env)
    assert status == 1
    assert failed(checks) == {"proxy"}
    assert (
        checks["proxy"]["fix"] == f"HTTPS_PROXY points to 127.0.0.1:{port}, which refuses connections: fix or unset it"
    )
    assert checks["api.dns"]["status"] == "skipped"  # the proxy resolves the host, not the client
    assert "secret-pass" not in output  # a proxy's password is never shown


def test_unloadable_ca_file_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    status, checks, _ = doctor(monkeypatch, capsys, {**kimi_env, "SSL_CERT_FILE": str(missing)})
    assert status == 1
    assert failed(checks) == {"tls.trust"}
    assert checks["tls.trust"]["fix"] == f"SSL_CERT_FILE points to {missing}: fix or unset it"
    assert checks["models"]["status"] == "skipped" and "tls.trust" in checks["models"]["detail"]


def test_no_proxy_exempts_the_host_as_httpx2_does(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    env = {**kimi_env, "HTTP_PROXY": f"http://127.0.0.1:{refusing_port()}", "NO_PROXY": "localhost,127.0.0.1"}
    status, checks, _ = doctor(monkeypatch, capsys, env)
    assert status == 0, checks
    assert checks["proxy"]["detail"] == "127.0.0.1: direct (exempted by NO_PROXY)"
    assert checks["models"]["status"] == "ok"  # and the client really went direct


def test_broken_settings_are_reported_not_fatal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    env = {**kimi_env, "KIMI_MCP_TIMEOUT": "soon", "KIMI_CODE_PROTOCOL": "grpc"}
    status, checks, output = doctor(monkeypatch, capsys, env)
    assert status == 1  # not 2: the CLI's settings gate did not stop doctor
    assert failed(checks) == {"settings"}
    assert "KIMI_MCP_TIMEOUT" in checks["settings"]["detail"] and "KIMI_CODE_PROTOCOL" in checks["settings"]["detail"]
    assert checks["settings"]["fix"]
    assert checks["tls.trust"]["status"] == "ok"  # read from the environment alone
    assert all(c["status"] == "skipped" for name, c in checks.items() if name not in ("settings", "tls.trust"))
    assert kimi_env["KIMI_API_KEY"] not in output


# -- the state folder and the store ----------------------------------------------------------------------------


def test_missing_state_folder_is_fine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "not-yet"
    status, checks, _ = doctor(monkeypatch, capsys, {**kimi_env, "KIMI_MCP_HOME": str(home)})
    assert status == 0, checks
    assert "does not exist yet" in checks["state.folder"]["detail"]


def test_state_folder_others_can_write_to(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "shared"
    home.mkdir()
    home.chmod(0o777)  # refused by the mode bits, so this holds when the tests run as root too
    status, checks, _ = doctor(monkeypatch, capsys, {**kimi_env, "KIMI_MCP_HOME": str(home)})
    assert status == 1
    assert failed(checks) == {"state.folder"}
    assert "other users can write to it" in checks["state.folder"]["detail"]
    assert checks["state.folder"]["fix"].startswith(f"chmod 700 {home}")
    # Every request needs the folder (device id), so those checks say so rather than fail a second time.
    assert checks["credential"]["status"] == checks["models"]["status"] == "skipped"
    assert checks["api.tcp"]["status"] == "ok"
    assert (home.stat().st_mode & 0o777) == 0o777  # doctor changes nothing


def test_state_folder_that_is_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    status, checks, _ = doctor(monkeypatch, capsys, {**kimi_env, "KIMI_MCP_HOME": str(home)})
    assert status == 1
    assert failed(checks) == {"state.folder"}
    assert "not a folder" in checks["state.folder"]["detail"]
    assert "KIMI_MCP_HOME names a file" in checks["state.folder"]["fix"]
    assert checks["state.store"]["status"] == "skipped"


def test_corrupt_store_fails_integrity(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    store = Path(kimi_env["KIMI_MCP_HOME"]) / DB_FILE_NAME
    store.write_bytes(b"this is not a database, it is garbage " * 200)
    store.chmod(0o600)
    status, checks, _ = doctor(monkeypatch, capsys, kimi_env)
    assert status == 1
    assert failed(checks) == {"state.store"}
    assert "not a readable database" in checks["state.store"]["detail"]
    assert checks["state.store"]["fix"].startswith(f"move {store} away")
    assert checks["models"]["status"] == "ok"


def test_sound_store_passes_integrity_and_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    store = Path(kimi_env["KIMI_MCP_HOME"]) / DB_FILE_NAME
    conn = sqlite3.connect(store)
    conn.execute("CREATE TABLE t (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.commit()
    conn.close()
    store.chmod(0o600)
    before = store.read_bytes()
    status, checks, _ = doctor(monkeypatch, capsys, kimi_env)
    assert status == 0, checks
    assert checks["state.store"]["detail"].endswith(f"integrity ok, schema {SCHEMA_VERSION}")
    assert store.read_bytes() == before


def test_store_and_login_readable_by_others(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kimi_env: dict[str, str],
    fake_kimi: FakeKimi,
) -> None:
    home = Path(kimi_env["KIMI_MCP_HOME"])
    store_issued_login(fake_kimi, home)
    (home / "credentials.json").chmod(0o644)
    status, checks, _ = doctor(monkeypatch, capsys, kimi_env)
    assert status == 1
    assert failed(checks) == {"state.credentials"}
    assert checks["state.credentials"]["fix"] == f"chmod 600 {home / 'credentials.json'}"


# -- credential kinds and the wire -----------------------------------------------------------------------------


def test_oauth_login_shows_expiry_and_checks_the_oauth_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    login = store_issued_login(fake_kimi, Path(kimi_env["KIMI_MCP_HOME"]))
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"}
    status, checks, output = doctor(monkeypatch, capsys, env)
    assert status == 0, checks
    assert checks["credential"]["detail"].startswith("Kimi account login (device login); the access token is valid")
    assert checks["oauth.dns"]["status"] == checks["oauth.tcp"]["status"] == "ok"
    assert login.access_token.get_secret_value() not in output
    assert login.refresh_token.get_secret_value() not in output


def test_no_credential_at_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"}
    status, checks, _ = doctor(monkeypatch, capsys, env)
    assert status == 1
    assert failed(checks) == {"credential"}
    assert "kimi-mcp login" in checks["credential"]["fix"] and "KIMI_API_KEY" in checks["credential"]["fix"]
    assert checks["models"]["status"] == "skipped"


def test_login_kimi_refused_to_refresh_needs_a_new_login(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    home = Path(kimi_env["KIMI_MCP_HOME"])
    login = store_issued_login(fake_kimi, home)
    store = CredentialStore(home)
    with store.locked_sync():
        store.write_sync(login.model_copy(update={"refresh_rejected": True}))
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"}
    status, checks, _ = doctor(monkeypatch, capsys, env)
    assert status == 1
    assert failed(checks) == {"credential"}
    assert "Your Kimi login has expired." in checks["credential"]["detail"]
    assert checks["credential"]["fix"].startswith("run `kimi-mcp login`")
    assert checks["models"]["status"] == "skipped"


def test_allow_listed_openai_wire_403_is_explained(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fake_kimi.openai_allow_list = True
    status, checks, _ = doctor(monkeypatch, capsys, {**kimi_env, "KIMI_CODE_PROTOCOL": "openai"})
    assert status == 1
    assert failed(checks) == {"wire"}
    assert "403" in checks["wire"]["detail"] and "allow-listed" in checks["wire"]["detail"]
    assert checks["wire"]["fix"].startswith("set KIMI_CODE_PROTOCOL=anthropic")
    assert fake_kimi.chat_requests() and all(not r.json().get("messages") for r in fake_kimi.chat_requests())


def test_openai_wire_admitted_passes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str]
) -> None:
    status, checks, _ = doctor(monkeypatch, capsys, {**kimi_env, "KIMI_CODE_PROTOCOL": "openai"})
    assert status == 0, checks
    assert "allow-list admits kimi-mcp" in checks["wire"]["detail"]


# -- bounds ----------------------------------------------------------------------------------------------------


def test_offline_skips_the_network_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {**kimi_env, "HTTP_PROXY": f"http://127.0.0.1:{refusing_port()}"}
    status, checks, _ = doctor(monkeypatch, capsys, env, "--offline")
    assert status == 0, checks
    assert all(checks[name]["status"] == "skipped" for name in NETWORK)
    assert checks["credential"]["status"] == checks["state.folder"]["status"] == "ok"
    assert fake_kimi.requests == []


def test_a_hanging_service_is_bounded(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fake_kimi.models_delay = math.inf
    started = time.monotonic()
    status, checks, _ = doctor(monkeypatch, capsys, kimi_env)
    assert time.monotonic() - started < 30
    assert status == 1
    assert failed(checks) == {"models"} and "timed out talking to 127.0.0.1" in checks["models"]["detail"]
    assert checks["models"]["fix"] == "try again in a minute"
