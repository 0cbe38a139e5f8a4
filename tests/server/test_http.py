"""`kimi-mcp serve --transport http` as a user runs it: a child process on a free port, driven by the real `mcp`
client over streamable HTTP, and by plain HTTP requests for what a client must not get."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from kimi_mcp._version import __version__
from kimi_mcp.errors import SettingsError
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi, Reply
from kimi_mcp.testing.http_child import KIMI_MCP, http_child, http_client
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, status_of, text_of

pytestmark = pytest.mark.anyio

TOKEN = "test-token-0123456789abcdef"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def http_env(kimi_env: dict[str, str]) -> dict[str, str]:
    return {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN}


def post(url: str, body: bytes | str, **headers: str) -> httpx2.Response:
    return httpx2.post(url, content=body, headers={**MCP_HEADERS, **headers}, timeout=60)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_chat_with_progress_login_status_and_login_resource_over_http(
    mode: str, http_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fake_kimi.script(Reply(text="slow " * 30, text_deltas=["slow "] * 30, delay=0.05))
    updates: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(progress)

    async with http_child(http_env) as child, http_client(child.url, TOKEN, mode=mode) as client:
        result = await client.call_tool("kimi_chat", {"prompt": "go slowly"}, progress_callback=on_progress)
        status = await client.call_tool("kimi_login_status", {})
        login = await client.read_resource("kimi://login", cache_mode="bypass")
    assert not result.is_error and reply_of(result) == "slow " * 30
    assert chat_meta(result)["conversation_id"]
    assert len(updates) >= 2 and updates == sorted(updates)  # progress streamed over SSE while the call ran
    assert not status.is_error and status_of(status)["method"] == "api_key"
    assert json.loads(login.contents[0].text)["logged_in"] is True
    assert len(fake_kimi.messages_requests()) == 1


async def test_without_credentials_kimi_chat_gives_the_login_prompt_over_http(
    http_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {k: v for k, v in http_env.items() if k != "KIMI_API_KEY"}
    async with http_child(env) as child, http_client(child.url, TOKEN) as client:
        result = await client.call_tool("kimi_chat", {"prompt": "hi"})
        login = json.loads((await client.read_resource("kimi://login", cache_mode="bypass")).contents[0].text)
    assert result.is_error
    assert login["login_in_progress"] is True and login["user_code"] in text_of(result)
    assert login["verification_uri_complete"] in text_of(result)
    assert fake_kimi.oauth.device_authorizations == 1  # one login manager: the resource reused the tool's login


async def test_two_sessions_share_one_state(http_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="from A"), Reply(text="from B"))
    async with http_child(http_env) as child:
        async with http_client(child.url, TOKEN) as a, http_client(child.url, TOKEN, mode="legacy") as b:
            first = await a.call_tool("kimi_chat", {"prompt": "hello from A"})
            second = await b.call_tool("kimi_chat", {"prompt": "hello from B"})
            listing = json.loads((await b.read_resource("kimi://conversations", cache_mode="bypass")).contents[0].text)
    assert reply_of(first) == "from A" and reply_of(second) == "from B"
    listed = json.dumps(listing)
    # Session B sees session A's conversation: one store behind every session.
    assert chat_meta(first)["conversation_id"] in listed and chat_meta(second)["conversation_id"] in listed
    # One Kimi client: both calls carry the same device id.
    device_ids = {r.headers.get("x-msh-device-id") for r in fake_kimi.messages_requests()}
    assert len(device_ids) == 1 and None not in device_ids


async def test_requests_without_the_right_token_get_401(http_env: dict[str, str]) -> None:
    async with http_child(http_env) as child:
        missing = post(child.url, json.dumps(INIT))
        wrong = post(child.url, json.dumps(INIT), Authorization="Bearer not-the-token-at-all-000")
        right = post(child.url, json.dumps(INIT), Authorization=f"Bearer {TOKEN}")
    assert missing.status_code == 401 and wrong.status_code == 401
    assert "bearer" in missing.headers.get("www-authenticate", "").lower()
    assert TOKEN not in wrong.text and TOKEN not in child.stderr
    assert right.status_code == 200


async def test_bad_host_gets_421_and_bad_origin_403(http_env: dict[str, str]) -> None:
    auth = f"Bearer {TOKEN}"
    async with http_child(http_env, "--allowed-host", "kimi.example.com") as child:
        bad_host = post(child.url, json.dumps(INIT), Authorization=auth, Host="evil.example")
        bad_origin = post(child.url, json.dumps(INIT), Authorization=auth, Origin="http://evil.example")
        named_host = post(child.url, json.dumps(INIT), Authorization=auth, Host="kimi.example.com")
        loopback_origin = post(child.url, json.dumps(INIT), Authorization=auth, Origin="http://localhost:3000")
        # The 2026 era (no initialize, the version in a header) goes through the same checks.
        modern = {"Authorization": auth, "MCP-Protocol-Version": "2026-07-28"}
        modern_host = post(child.url, json.dumps(INIT), **modern, Host="evil.example")
        modern_origin = post(child.url, json.dumps(INIT), **modern, Origin="http://evil.example")
    assert bad_host.status_code == 421 and modern_host.status_code == 421
    assert bad_origin.status_code == 403 and modern_origin.status_code == 403
    assert named_host.status_code == 200 and loopback_origin.status_code == 200


async def test_healthz_says_ok_and_the_version_and_nothing_else(http_env: dict[str, str]) -> None:
    async with http_child(http_env) as child:
        health = httpx2.get(f"{child.base}/healthz", timeout=60)
        other = httpx2.get(f"{child.base}/", timeout=60)
    assert health.status_code == 200 and health.text == f"ok kimi-mcp {__version__}"
    assert health.headers["content-type"].startswith("text/plain")
    assert other.status_code == 404


async def test_a_body_over_the_cap_gets_413_with_a_clear_error(kimi_env: dict[str, str]) -> None:
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_MCP_HTTP_MAX_BODY_BYTES": "4096"}
    big = json.dumps({**INIT, "params": {**INIT["params"], "pad": "x" * 5000}})  # type: ignore[dict-item]

    def chunks() -> list[bytes]:  # no Content-Length: the cap must count what arrives
        return [big.encode()[i : i + 1000] for i in range(0, len(big), 1000)]

    async with http_child(env) as child:
        declared = post(child.url, big, Authorization=f"Bearer {TOKEN}")
        streamed = httpx2.post(
            child.url, content=iter(chunks()), headers={**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}, timeout=60
        )
        small = post(child.url, json.dumps(INIT), Authorization=f"Bearer {TOKEN}")
    for response in (declared, streamed):
        assert response.status_code == 413
        error = response.json()["error"]
        assert "4,096 bytes" in error["message"] and "KIMI_MCP_HTTP_MAX_BODY_BYTES" in error["message"]
    assert small.status_code == 200


def test_listening_beyond_loopback_without_a_token_is_refused(kimi_env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(KIMI_MCP), "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        env={"PATH": os.environ.get("PATH", ""), **kimi_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in done.stderr
    assert "KIMI_MCP_HTTP_TOKEN" in done.stderr and "serving" not in done.stderr


async def test_token_file_is_read_and_a_readable_file_warns(kimi_env: dict[str, str], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    token_file.chmod(0o644)
    async with http_child(kimi_env, "--token-file", str(token_file)) as child:
        missing = post(child.url, json.dumps(INIT))
        right = post(child.url, json.dumps(INIT), Authorization=f"Bearer {TOKEN}")
    assert missing.status_code == 401 and right.status_code == 200
    assert "can be read by other users" in child.stderr and TOKEN not in child.stderr


async def test_stateless_mode_serves_calls_without_sessions(http_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="stateless reply"))
    async with http_child(http_env, "--stateless", "--path", "/kimi") as child:
        assert child.url.endswith("/kimi")
        async with http_client(child.url, TOKEN, mode="legacy") as client:
            result = await client.call_tool("kimi_chat", {"prompt": "hi"})
        initialized = post(child.url, json.dumps(INIT), Authorization=f"Bearer {TOKEN}")
    assert not result.is_error and reply_of(result) == "stateless reply"
    assert initialized.status_code == 200 and "mcp-session-id" not in initialized.headers


async def test_allowed_hosts_and_origins_come_from_the_environment_too(http_env: dict[str, str]) -> None:
    env = {
        **http_env,
        "KIMI_MCP_ALLOWED_HOSTS": "kimi.example.com, proxy.example.com:8443",
        "KIMI_MCP_ALLOWED_ORIGINS": "https://app.example.com",
    }
    auth = f"Bearer {TOKEN}"
    async with http_child(env) as child:
        proxied = post(child.url, json.dumps(INIT), Authorization=auth, Host="proxy.example.com:8443")
        origin = post(child.url, json.dumps(INIT), Authorization=auth, Origin="https://app.example.com")
        other_port = post(child.url, json.dumps(INIT), Authorization=auth, Host="proxy.example.com:9999")
    assert proxied.status_code == 200 and origin.status_code == 200
    assert other_port.status_code == 421


async def test_the_token_never_reaches_the_debug_log(kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN, "KIMI_CODE_DEBUG": "1"}
    async with http_child(env) as child:
        async with http_client(child.url, TOKEN) as client:
            await client.call_tool("kimi_chat", {"prompt": "hi"})
        post(child.url, json.dumps(INIT), Authorization=f"Bearer {TOKEN}x")
    assert "DEBUG" in child.stderr and TOKEN not in child.stderr


def test_a_short_token_and_a_taken_port_stop_the_start(kimi_env: dict[str, str]) -> None:
    env = {"PATH": os.environ.get("PATH", ""), **kimi_env}
    short = subprocess.run(
        [str(KIMI_MCP), "serve", "--transport", "http", "--port", "0"],
        env={**env, "KIMI_MCP_HTTP_TOKEN": "short"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [str(KIMI_MCP), "serve", "--transport", "http", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert short.returncode == 2 and "KIMI_MCP_HTTP_TOKEN: must be at least 16 characters" in short.stderr
    assert busy.returncode == 1 and f"cannot listen on http://127.0.0.1:{port}/mcp" in busy.stderr


# `kimi-mcp serve --transport http` whose lifespan fails once the port is bound, as a store or home folder that
# cannot be opened would make it fail: the AppState the lifespan builds raises.
# "quiet" emulates older uvicorn releases, whose Server.startup returned after a failed lifespan instead of exiting.
FAILING_LIFESPAN = """
import sys
import uvicorn
from kimi_mcp.server import app

class Unusable:
    def __init__(self, **_):
        raise PermissionError(13, "Permission denied", "/var/lib/kimi-mcp")

app.AppState = Unusable
if sys.argv[1] == "quiet":
    startup = uvicorn.Server.startup

    async def quiet_startup(self, sockets=None):
        try:
            await startup(self, sockets)
        except SystemExit:
            self.should_exit = True

    uvicorn.Server.startup = quiet_startup
from kimi_mcp.cli import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("uvicorn_style", ["exits", "quiet"])
def test_a_failed_start_after_binding_exits_non_zero_and_says_why(uvicorn_style: str, kimi_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FAILING_LIFESPAN, uvicorn_style, "serve", "--transport", "http", "--port", "0"],
        env={"PATH": os.environ.get("PATH", ""), **kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "kimi-mcp: could not start serving MCP on http://127.0.0.1:" in done.stderr
    assert "PermissionError: [Errno 13] Permission denied: '/var/lib/kimi-mcp'" in done.stderr
    assert "serving MCP on" not in done.stderr.replace("could not start serving MCP on", "")
    assert "Traceback" not in done.stderr and TOKEN not in done.stderr


def test_http_settings_parse_lists_and_refuse_bad_values() -> None:
    settings = Settings.from_env(
        {"KIMI_MCP_ALLOWED_HOSTS": " a.example , ,b.example:443", "KIMI_MCP_HTTP_TOKEN": f"  {TOKEN}  "}
    )
    assert settings.allowed_hosts == ("a.example", "b.example:443") and settings.allowed_origins == ()
    assert settings.http_token is not None and settings.http_token.get_secret_value() == TOKEN
    assert settings.http_max_body_bytes == 26_214_400 and settings.shutdown_grace_seconds == 30
    assert Settings.from_env({"KIMI_MCP_HTTP_TOKEN": "  "}).http_token is None
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"KIMI_MCP_HTTP_MAX_BODY_BYTES": "10", "KIMI_MCP_SHUTDOWN_GRACE_SECONDS": "-1"})
    assert "KIMI_MCP_HTTP_MAX_BODY_BYTES" in raised.value.message
    assert "KIMI_MCP_SHUTDOWN_GRACE_SECONDS" in raised.value.message


async def test_with_a_token_it_listens_beyond_loopback(http_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="from afar"))
    async with http_child(http_env, "--host", "0.0.0.0") as child:
        assert child.url.startswith("http://0.0.0.0:")
        url = child.url.replace("0.0.0.0", "127.0.0.1")
        async with http_client(url, TOKEN) as client:
            result = await client.call_tool("kimi_chat", {"prompt": "hi"})
        missing = post(url, json.dumps(INIT))
    assert reply_of(result) == "from afar"
    assert missing.status_code == 401
