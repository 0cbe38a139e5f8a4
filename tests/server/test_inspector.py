"""kimi-mcp through the MCP Inspector CLI — a client nobody here wrote — spawning `kimi-mcp serve` over stdio.

The Inspector is pinned and installed by .ci/run into .ci/node (or found at $KIMI_MCP_INSPECTOR). When CI could
not install it these tests fail rather than skip; on a developer machine without it they skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kimi_mcp.testing.fake_kimi import FakeKimi

pytestmark = pytest.mark.inspector

KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
TIMEOUT_SECONDS = 60

Inspect = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture
def inspector(tmp_path: Path, inspector_binary: Path) -> Inspect:
    """Run one Inspector CLI request against a fresh `kimi-mcp serve`; return (exit code, the JSON it printed).

    The Inspector runs with a throwaway HOME, so it neither reads nor writes the developer's catalog; the server
    gets exactly the `-e` variables given.
    """
    binary = inspector_binary
    home = tmp_path / "inspector-home"
    home.mkdir()

    def run(server_env: dict[str, str], method: str, *options: str) -> tuple[int, dict[str, Any]]:
        env_flags = [flag for key, value in server_env.items() for flag in ("-e", f"{key}={value}")]
        command = [str(binary), "--cli", "--format", "json", *env_flags, str(KIMI_MCP), "serve"]
        command += ["--method", method, *options]
        done = subprocess.run(
            command,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        assert done.stdout.strip(), f"Inspector printed nothing (exit {done.returncode}): {done.stderr}"
        return done.returncode, json.loads(done.stdout)

    return run


def payload(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON document a tool or resource returned as its single text block."""
    blocks = result.get("content") or result.get("contents")
    assert blocks and len(blocks) == 1, result
    return json.loads(blocks[0]["text"])


def test_inspector_lists_every_tool(inspector: Inspect, kimi_env: dict[str, str]) -> None:
    code, out = inspector(kimi_env, "tools/list")
    assert code == 0, out
    tools = {tool["name"]: tool for tool in out["result"]["tools"]}
    assert set(tools) == {"kimi_chat", "kimi_upload_media", "kimi_login_status"}
    schema = tools["kimi_chat"]["inputSchema"]
    assert schema["required"] == ["prompt"] and schema["properties"]["prompt"]["type"] == "string"
    assert "conversation_id" in schema["properties"]
    assert tools["kimi_chat"]["annotations"]["readOnlyHint"] is True


def test_inspector_calls_kimi_chat(inspector: Inspect, kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    code, out = inspector(
        kimi_env, "tools/call", "--tool-name", "kimi_chat", "--tool-arg", "prompt=Hello from the Inspector"
    )
    assert code == 0, out
    result = out["result"]
    assert result["isError"] is False
    assert result["content"][0]["text"].startswith("Fake Kimi reply to: Hello from the Inspector\n")
    assert "structuredContent" not in result
    fields = result["_meta"]["kimi-mcp/chat"]
    footer = f"\n\n[conversation_id: {fields['conversation_id']} · turn 1]"
    assert result["content"][0]["text"] == "Fake Kimi reply to: Hello from the Inspector" + footer
    [sent] = fake_kimi.messages_requests()
    assert sent.headers["authorization"] == f"Bearer {kimi_env['KIMI_API_KEY']}" and "x-api-key" not in sent.headers


def test_inspector_uploads_an_image_then_asks_about_it_by_id(
    inspector: Inspect, kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    image = tmp_path / "shot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8192)  # 2 MiB: uploaded
    env = {**kimi_env, "KIMI_MCP_ALLOWED_DIRS": str(tmp_path)}
    code, out = inspector(env, "tools/call", "--tool-name", "kimi_upload_media", "--tool-arg", f"path={image}")
    assert code == 0, out
    uploaded = payload(out["result"])
    [upload] = fake_kimi.uploads
    assert uploaded["media_id"] == f"ms://{upload.file_id}" and uploaded["cached"] is False
    assert (upload.filename, upload.purpose, upload.size) == ("upload.png", "image", image.stat().st_size)
    # A second server process (the Inspector spawns one per request) knows the id from the shared store.
    media = json.dumps([uploaded["media_id"]])
    code, out = inspector(
        env,
        "tools/call",
        "--tool-name",
        "kimi_chat",
        "--tool-arg",
        "prompt=What is on it?",
        "--tool-arg",
        f"media={media}",
    )
    assert code == 0, out
    assert out["result"]["isError"] is False, out
    [sent] = fake_kimi.messages_requests()
    content = sent.json()["messages"][0]["content"]
    assert content[0] == {"type": "image", "source": {"type": "url", "url": uploaded["media_id"]}}
    assert len(fake_kimi.uploads) == 1


def test_inspector_asks_about_a_small_tree_given_as_files(
    inspector: Inspect, kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "main.py").write_text("print('hello')\n")
    (tree / "node_modules").mkdir()
    (tree / "node_modules" / "x.js").write_text("ignored\n")
    env = {**kimi_env, "KIMI_MCP_ALLOWED_DIRS": str(tree)}
    files = json.dumps([str(tree)])
    code, out = inspector(
        env, "tools/call", "--tool-name", "kimi_chat", "--tool-arg", "prompt=Review", "--tool-arg", f"files={files}"
    )
    assert code == 0, out
    assert out["result"]["isError"] is False, out
    assert "\n[files: 1 file" in out["result"]["content"][0]["text"]
    [sent] = fake_kimi.messages_requests()
    texts = [block["text"] for block in sent.json()["messages"][0]["content"]]
    assert texts == ['<file path="src/main.py" lines="1">\nprint(\'hello\')\n</file>', "Review"]


def test_inspector_reads_login_status(inspector: Inspect, kimi_env: dict[str, str]) -> None:
    code, out = inspector(kimi_env, "tools/call", "--tool-name", "kimi_login_status")
    assert code == 0, out
    status = payload(out["result"])
    assert status["logged_in"] is True and status["method"] == "api_key"
    assert status["base_url"] == kimi_env["KIMI_CODE_BASE_URL"] and status["protocol"] == "anthropic"
    assert status["quota"]["five_hour"]["limit"] == 50
    assert out["result"]["_meta"]["kimi-mcp/login_status"] == status
    assert kimi_env["KIMI_API_KEY"] not in json.dumps(out)


def test_inspector_reads_the_login_resource_with_an_api_key(inspector: Inspect, kimi_env: dict[str, str]) -> None:
    code, out = inspector(kimi_env, "resources/read", "--uri", "kimi://login")
    assert code == 0, out
    login = payload(out["result"])
    assert login["logged_in"] is True and login["method"] == "api_key" and login["login_in_progress"] is False
    assert login["user_code"] is None and login["verification_uri_complete"] is None
    assert kimi_env["KIMI_API_KEY"] not in json.dumps(out)


def test_inspector_without_credentials_gets_a_device_login(
    inspector: Inspect, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {key: value for key, value in kimi_env.items() if key != "KIMI_API_KEY"}
    code, out = inspector(env, "resources/read", "--uri", "kimi://login")
    assert code == 0, out
    login = payload(out["result"])
    assert login["logged_in"] is False and login["method"] == "none" and login["login_in_progress"] is True
    assert login["verification_uri_complete"] == f"{fake_kimi.oauth_host}/device?user_code={login['user_code']}"
    assert fake_kimi.oauth.device_authorizations == 1

    code, out = inspector(env, "tools/call", "--tool-name", "kimi_chat", "--tool-arg", "prompt=hi")
    assert code != 0  # the Inspector reports a tool's isError result with a failing exit code
    assert out["result"]["isError"] is True
    message = out["result"]["content"][0]["text"]
    assert f"{fake_kimi.oauth_host}/device?user_code=" in message and "KIMI_API_KEY" in message
    assert fake_kimi.messages_requests() == []
