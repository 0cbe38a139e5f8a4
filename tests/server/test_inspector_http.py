"""kimi-mcp through the MCP Inspector CLI — a client nobody here wrote — over streamable HTTP with a bearer token.

One `kimi-mcp serve --transport http` process per test (kimi_mcp/testing/http_child.py); the Inspector connects
to its URL with `--transport http --header "Authorization: Bearer …"`. The Inspector is found as in
test_inspector.py (pinned in .ci/node, or $KIMI_MCP_INSPECTOR): when CI could not install it these tests fail
rather than skip; on a developer machine without it they skip.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.http_child import http_child

pytestmark = [pytest.mark.inspector, pytest.mark.anyio]

TOKEN = "inspector-http-token-0123456789"
TIMEOUT_SECONDS = 60

Inspect = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


@pytest.fixture
async def server_url(kimi_env: dict[str, str]) -> AsyncIterator[str]:
    """A `kimi-mcp serve --transport http` on a free loopback port, with the fake's API key and TOKEN required."""
    async with http_child({**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN}) as server:
        yield server.url


@pytest.fixture
def inspector(tmp_path: Path, inspector_binary: Path, server_url: str) -> Inspect:
    """Run one Inspector CLI request against the server; return (exit code, the JSON it printed, or its stderr).

    The Inspector runs with a throwaway HOME, so it neither reads nor writes the developer's catalog.
    """
    binary = inspector_binary
    home = tmp_path / "inspector-home"
    home.mkdir()

    async def run(method: str, *options: str, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
        command = [str(binary), "--cli", "--format", "json", server_url, "--transport", "http"]
        command += ["--header", f"Authorization: Bearer {token}", "--method", method, *options]
        with anyio.fail_after(TIMEOUT_SECONDS):
            done = await anyio.run_process(
                command, env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)}, check=False
            )
        output = done.stdout.decode().strip()
        return done.returncode, json.loads(output) if output else {"stderr": done.stderr.decode()}

    return run


def payload(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON document a tool or resource returned as its single text block."""
    blocks = result.get("content") or result.get("contents")
    assert blocks and len(blocks) == 1, result
    return json.loads(blocks[0]["text"])


async def test_inspector_over_http_calls_kimi_chat(
    inspector: Inspect, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    code, out = await inspector("tools/call", "--tool-name", "kimi_chat", "--tool-arg", "prompt=Hello over HTTP")
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


async def test_inspector_over_http_reads_login_status(inspector: Inspect, kimi_env: dict[str, str]) -> None:
    code, out = await inspector("tools/call", "--tool-name", "kimi_login_status")
    assert code == 0, out
    status = payload(out["result"])
    assert status["logged_in"] is True and status["method"] == "api_key"
    assert status["base_url"] == kimi_env["KIMI_CODE_BASE_URL"] and status["quota"]["five_hour"]["limit"] == 50
    assert kimi_env["KIMI_API_KEY"] not in json.dumps(out) and TOKEN not in json.dumps(out)


async def test_inspector_over_http_reads_the_login_resource(inspector: Inspect, kimi_env: dict[str, str]) -> None:
    code, out = await inspector("resources/read", "--uri", "kimi://login")
    assert code == 0, out
    login = payload(out["result"])
    assert login["logged_in"] is True and login["method"] == "api_key" and login["login_in_progress"] is False
    assert kimi_env["KIMI_API_KEY"] not in json.dumps(out) and TOKEN not in json.dumps(out)


async def test_inspector_with_a_wrong_token_is_refused(inspector: Inspect, fake_kimi: FakeKimi) -> None:
    # The server's 401 carries `WWW-Authenticate: Bearer`; the Inspector reads it as "this server needs
    # authorization" and, with --stored-auth-only, gives up instead of starting a browser login.
    code, out = await inspector(
        "tools/call", "--tool-name", "kimi_chat", "--tool-arg", "prompt=hi", "--stored-auth-only", token="not-it"
    )
    assert code != 0
    assert "auth_required" in out.get("stderr", ""), out
    assert "result" not in out
    assert fake_kimi.messages_requests() == []
