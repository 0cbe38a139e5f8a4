"""kimi-mcp through the MCP Inspector CLI — a client nobody here wrote — over streamable HTTP with a bearer token.

One `kimi-mcp serve --transport http` process per test; the Inspector connects to its URL with
`--transport http --header "Authorization: Bearer …"`. The Inspector is found as in test_inspector.py (pinned in
.ci/node, or $KIMI_MCP_INSPECTOR): when CI could not install it these tests fail rather than skip; on a developer
machine without it they skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kimi_mcp.testing.fake_kimi import FakeKimi

pytestmark = pytest.mark.inspector

REPO_ROOT = Path(__file__).resolve().parents[2]
KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
TOKEN = "inspector-http-token-0123456789"
READY_LINE = "kimi-mcp: serving MCP on "
TIMEOUT_SECONDS = 60

Inspect = Callable[..., tuple[int, dict[str, Any]]]


def inspector_binary() -> Path:
    configured = os.environ.get("KIMI_MCP_INSPECTOR")
    path = Path(configured) if configured else REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    if configured or os.environ.get("CI"):
        pytest.fail(f"the MCP Inspector CLI is not installed at {path}: .ci/run could not install it")
    pytest.skip("run bash .ci/run to install the pinned Inspector CLI")


@pytest.fixture
def server_url(kimi_env: dict[str, str]) -> Iterator[str]:
    """A `kimi-mcp serve --transport http` on a free loopback port, with the fake's API key and TOKEN required."""
    env = {"PATH": os.environ.get("PATH", ""), "KIMI_MCP_HTTP_TOKEN": TOKEN, **kimi_env}
    command = [str(KIMI_MCP), "serve", "--transport", "http", "--port", "0"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    urls: list[str] = []
    ready = threading.Event()

    def drain() -> None:  # read stderr to the end, so the server never blocks on a full pipe
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if not urls and line.startswith(READY_LINE):
                urls.append(line[len(READY_LINE) :].strip())
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        ready.wait(TIMEOUT_SECONDS)
        if not urls:
            pytest.fail(f"kimi-mcp serve --transport http did not start:\n{''.join(lines)}")
        yield urls[0]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def inspector(tmp_path: Path, server_url: str) -> Inspect:
    """Run one Inspector CLI request against the server; return (exit code, the JSON it printed).

    The Inspector runs with a throwaway HOME, so it neither reads nor writes the developer's catalog.
    """
    binary = inspector_binary()
    home = tmp_path / "inspector-home"
    home.mkdir()

    def run(method: str, *options: str, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
        command = [str(binary), "--cli", "--format", "json", server_url, "--transport", "http"]
        command += ["--header", f"Authorization: Bearer {token}", "--method", method, *options]
        done = subprocess.run(
            command,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        output = done.stdout.strip()
        return done.returncode, json.loads(output) if output else {"stderr": done.stderr}

    return run


def payload(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON document a tool or resource returned as its single text block."""
    blocks = result.get("content") or result.get("contents")
    assert blocks and len(blocks) == 1, result
    return json.loads(blocks[0]["text"])


def test_inspector_over_http_calls_kimi_chat(inspector: Inspect, kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    code, out = inspector("tools/call", "--tool-name", "kimi_chat", "--tool-arg", "prompt=Hello over HTTP")
    assert code == 0, out
    result = out["result"]
    assert result["isError"] is False and "structuredContent" not in result
    fields = result["_meta"]["kimi-mcp/chat"]
    footer = f"\n\n[conversation_id: {fields['conversation_id']} · turn 1]"
    assert result["content"][0]["text"] == "Fake Kimi reply to: Hello over HTTP" + footer
    [sent] = fake_kimi.messages_requests()
    # Kimi gets the server's own credential; the caller's bearer token stays between the host and kimi-mcp.
    assert sent.headers["authorization"] == f"Bearer {kimi_env['KIMI_API_KEY']}"
    assert TOKEN not in json.dumps(sent.headers) and TOKEN not in sent.body.decode()


def test_inspector_over_http_reads_login_status(inspector: Inspect, kimi_env: dict[str, str]) -> None:
    code, out = inspector("tools/call", "--tool-name", "kimi_login_status")
    assert code == 0, out
    status = payload(out["result"])
    assert status["logged_in"] is True and status["method"] == "api_key"
    assert status["base_url"] == kimi_env["KIMI_CODE_BASE_URL"] and status["quota"]["five_hour"]["limit"] == 50
    assert kimi_env["KIMI_API_KEY"] not in json.dumps(out) and TOKEN not in json.dumps(out)


def test_inspector_over_http_reads_the_login_resource(inspector: Inspect, kimi_env: dict[str, str]) -> None:
    code, out = inspector("resources/read", "--uri", "kimi://login")
    assert code == 0, out
    login = payload(out["result"])
    assert login["logged_in"] is True and login["method"] == "api_key" and login["login_in_progress"] is False
    assert kimi_env["KIMI_API_KEY"] not in json.dumps(out) and TOKEN not in json.dumps(out)


def test_inspector_with_a_wrong_token_is_refused(inspector: Inspect, fake_kimi: FakeKimi) -> None:
    # The server's 401 carries `WWW-Authenticate: Bearer`; the Inspector reads it as "this server needs
    # authorization" and, with --stored-auth-only, gives up instead of starting a browser login.
    code, out = inspector(
        "tools/call", "--tool-name", "kimi_chat", "--tool-arg", "prompt=hi", "--stored-auth-only", token="not-it"
    )
    assert code != 0
    assert "auth_required" in out.get("stderr", ""), out
    assert "result" not in out
    assert fake_kimi.messages_requests() == []
