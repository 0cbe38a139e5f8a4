"""kimi-mcp as a host runs it: `kimi-mcp serve` spawned as a subprocess of the console script, driven over
stdio by the real `mcp` client. The child gets only the environment passed here (plus the SDK's safe defaults)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from kimi_mcp._version import __version__
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, Reply
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, status_of, text_of

pytestmark = pytest.mark.anyio

KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
CALL_TIMEOUT = 30.0


@asynccontextmanager
async def stdio_server(env: dict[str, str], stderr: Path, *, mode: str = "auto") -> AsyncIterator[Client]:
    """A `kimi-mcp serve` child with `env` (and PATH) only; its stderr is appended to `stderr`.

    The child's log is echoed to the test's captured output, which pytest shows when the test fails.
    """
    params = StdioServerParameters(
        command=str(KIMI_MCP), args=["serve"], env={"PATH": os.environ.get("PATH", ""), **env}
    )
    with stderr.open("a+", encoding="utf-8") as errlog:
        start = errlog.tell()
        try:
            async with Client(stdio_client(params, errlog=errlog), mode=mode, read_timeout_seconds=CALL_TIMEOUT) as c:
                yield c
        finally:
            errlog.seek(start)
            print(f"--- kimi-mcp serve stderr ({stderr.name}) ---\n{errlog.read()}")


async def read_text(client: Client, uri: str) -> str:
    result = await client.read_resource(uri, cache_mode="bypass")
    return "".join(getattr(content, "text", "") for content in result.contents)


def dumped(value: Any) -> str:
    """JSON text in the order the body had it: equal strings mean the same bytes went on the wire."""
    return json.dumps(value, ensure_ascii=False)


async def wait_for_login(client: Client, seconds: float = 15) -> dict[str, Any]:
    """Read `kimi://login` until the background device login has stored its tokens."""
    with anyio.fail_after(seconds):
        for _ in range(int(seconds / 0.2) + 1):
            login = json.loads(await read_text(client, "kimi://login"))
            if login["logged_in"]:
                return login
            await anyio.sleep(0.2)
    raise AssertionError("the device login did not complete")


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_kimi_chat_over_stdio_sends_the_kimi_wire(
    mode: str, kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    async with stdio_server(kimi_env, tmp_path / "stderr.log", mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool("kimi_chat", {"prompt": "Review this diff over stdio"})

    assert set(tools) == {"kimi_chat", "kimi_upload_media", "kimi_login_status"}
    assert tools["kimi_chat"].input_schema["required"] == ["prompt"]
    assert not result.is_error, text_of(result)
    out = chat_meta(result)
    assert result.structured_content is None
    assert reply_of(result) == "Fake Kimi reply to: Review this diff over stdio"
    assert out["conversation_id"] in text_of(result) and out["turn"] == 1
    assert out["model"] == "kimi-for-coding" and out["stop_reason"] == "end_turn"
    assert out["usage"]["input_tokens"] > 0 and out["usage"]["output_tokens"] > 0

    [sent] = fake_kimi.messages_requests()
    assert sent.headers["authorization"] == f"Bearer {kimi_env['KIMI_API_KEY']}"
    assert "x-api-key" not in sent.headers
    assert sent.headers["user-agent"] == f"kimi-mcp/{__version__}"
    body = sent.json()
    assert body["model"] == "kimi-for-coding" and body["stream"] is True
    assert body["prompt_cache_key"] == out["conversation_id"]


async def test_conversation_continues_byte_identically_across_a_server_restart(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    system = 'You review Python.  Be terse — ünïcode ✓, "quotes", tabs\tand\nnew lines.'
    reply = "First answer:\n\n  - keep `x`  \n  - drop «y» 🚀\n\ttrailing space "
    fake_kimi.script(Reply(text=reply))
    stderr = tmp_path / "stderr.log"

    async with stdio_server(kimi_env, stderr) as first:
        turn1 = await first.call_tool("kimi_chat", {"prompt": "Turn one: ✓ review\nthis", "system": system})
    assert not turn1.is_error, text_of(turn1)
    conversation_id = chat_meta(turn1)["conversation_id"]

    async with stdio_server(kimi_env, stderr) as second:  # a new process, same KIMI_MCP_HOME
        turn2 = await second.call_tool("kimi_chat", {"prompt": "Turn two", "conversation_id": conversation_id})
    assert not turn2.is_error, text_of(turn2)
    assert chat_meta(turn2)["conversation_id"] == conversation_id
    assert chat_meta(turn2)["turn"] == 2

    first_body, second_body = (request.json() for request in fake_kimi.messages_requests())
    assert first_body["system"] == system
    assert dumped(second_body["system"]) == dumped(first_body["system"])
    assert dumped(second_body["messages"][0]) == dumped(first_body["messages"][0])
    assert dumped(second_body["messages"][1]) == dumped(
        {"role": "assistant", "content": [{"type": "text", "text": reply}]}
    )
    assert second_body["messages"][2]["role"] == "user" and len(second_body["messages"]) == 3
    assert first_body["prompt_cache_key"] == second_body["prompt_cache_key"] == conversation_id


async def test_two_server_processes_write_their_conversations_at_the_same_time(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    turns = 5
    results: dict[str, list[Any]] = {"a": [], "b": []}

    async def converse(name: str, client: Client) -> None:
        conversation_id = None
        for number in range(1, turns + 1):
            arguments = {"prompt": f"{name} turn {number}"}
            if conversation_id:
                arguments["conversation_id"] = conversation_id
            result = await client.call_tool("kimi_chat", arguments)
            results[name].append(result)
            assert not result.is_error, text_of(result)
            conversation_id = chat_meta(result)["conversation_id"]

    async with (
        stdio_server(kimi_env, tmp_path / "a.log") as client_a,
        stdio_server(kimi_env, tmp_path / "b.log") as client_b,
    ):
        await client_a.list_tools()
        await client_b.list_tools()  # both processes up before the race starts
        async with anyio.create_task_group() as group:
            group.start_soon(converse, "a", client_a)
            group.start_soon(converse, "b", client_b)
        listing = json.loads(await read_text(client_a, "kimi://conversations"))
        ids = {name: chat_meta(results[name][-1])["conversation_id"] for name in results}
        transcripts = {name: await read_text(client_b, f"kimi://conversations/{ids[name]}") for name in ids}

    everything = " ".join(text_of(r) + dumped(r.meta) for rs in results.values() for r in rs)
    everything += " ".join((tmp_path / f"{name}.log").read_text() for name in results)
    assert "database is locked" not in everything.lower()
    for name, conversation_id in ids.items():
        assert [chat_meta(r)["turn"] for r in results[name]] == list(range(1, turns + 1))
        assert {chat_meta(r)["conversation_id"] for r in results[name]} == {conversation_id}
        assert f"- turns: {turns}" in transcripts[name]
        for number in range(1, turns + 1):
            assert f"Fake Kimi reply to: {name} turn {number}" in transcripts[name]
    by_id = {item["id"]: item["turns"] for item in listing["conversations"]}
    assert by_id == {ids["a"]: turns, ids["b"]: turns}
    assert len(fake_kimi.messages_requests()) == 2 * turns


async def test_no_secret_reaches_results_resources_or_debug_logs(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    sentinel = "SENTINELkey7f3a9c2e5b1d4e6f8a0b"  # no `sk-` shape: only redaction by value can hide it
    fake_kimi.api_keys.add(sentinel)
    env = {**kimi_env, "KIMI_API_KEY": sentinel, "KIMI_CODE_DEBUG": "1"}
    stderr = tmp_path / "stderr.log"
    seen: list[str] = []

    async with stdio_server(env, stderr) as client:
        worked = await client.call_tool("kimi_chat", {"prompt": "a call that works"})
        fake_kimi.script(*[Fault(status=500, retry_after=0.01)] * 3)
        failed = await client.call_tool("kimi_chat", {"prompt": "a call that fails"})
        status = await client.call_tool("kimi_login_status", {})
        conversation_id = chat_meta(worked)["conversation_id"]
        for uri in ("kimi://login", "kimi://conversations", f"kimi://conversations/{conversation_id}"):
            seen.append(await read_text(client, uri))
    seen += [r.model_dump_json() for r in (worked, failed, status)]

    assert not worked.is_error and failed.is_error and not status.is_error
    assert "Kimi could not answer" in text_of(failed)
    assert json.loads(seen[0])["method"] == "api_key"
    assert all(r.headers["authorization"] == f"Bearer {sentinel}" for r in fake_kimi.messages_requests())
    for text in seen:
        assert sentinel not in text
    logs = stderr.read_text(encoding="utf-8")
    assert "DEBUG" in logs  # KIMI_CODE_DEBUG=1 reached the child and DEBUG logging ran
    assert sentinel not in logs


async def test_server_starts_without_credentials_and_kimi_chat_explains_the_login(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    unreachable = f"http://127.0.0.1:{unused_port()}/coding"
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"} | {"KIMI_CODE_BASE_URL": unreachable}

    started = time.monotonic()
    async with stdio_server(env, tmp_path / "stderr.log") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        ready = time.monotonic() - started
        result = await client.call_tool("kimi_chat", {"prompt": "hi"})
        login = json.loads(await read_text(client, "kimi://login"))
        status = await client.call_tool("kimi_login_status", {})

    assert names == {"kimi_chat", "kimi_upload_media", "kimi_login_status"}
    assert ready < 15, f"initialize + tools/list took {ready:.1f} s"
    assert result.is_error
    message = text_of(result)
    assert login["login_in_progress"] is True and login["logged_in"] is False and login["method"] == "none"
    assert login["verification_uri_complete"].startswith(fake_kimi.oauth_host + "/device")
    assert login["verification_uri_complete"] in message and login["user_code"] in message
    assert "KIMI_API_KEY" in message and "call the tool again" in message
    assert fake_kimi.oauth.device_authorizations == 1  # the resource reused the login kimi_chat started
    assert not status.is_error and status_of(status)["logged_in"] is False
    assert status_of(status)["base_url"] == unreachable


async def test_a_socks_proxy_without_socksio_is_a_tool_error_saying_what_to_install(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    env = kimi_env | {"ALL_PROXY": "socks5://127.0.0.1:1080"}
    async with stdio_server(env, tmp_path / "stderr.log") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "hi"})
        names = {tool.name for tool in (await client.list_tools()).tools}  # and it keeps serving

    assert result.is_error
    message = text_of(result)
    assert "ALL_PROXY names a SOCKS proxy" in message and "socksio" in message, message
    assert "ImportError" not in message and "unexpected" not in message
    assert "kimi_chat" in names and fake_kimi.chat_requests() == []


async def test_device_login_from_inside_the_host_then_kimi_chat_works_and_no_token_leaks(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    fake_kimi.oauth.interval = 0  # the client's own 1 s floor paces the polls
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"} | {"KIMI_CODE_DEBUG": "1"}
    stderr = tmp_path / "stderr.log"
    seen: list[str] = []

    async with stdio_server(env, stderr) as client:
        refused = await client.call_tool("kimi_chat", {"prompt": "before the login"})
        fake_kimi.oauth.approve()
        login = await wait_for_login(client)
        worked = await client.call_tool("kimi_chat", {"prompt": "after the login"})
        status = await client.call_tool("kimi_login_status", {})
        seen += [await read_text(client, "kimi://login"), json.dumps(login)]
        seen += [await read_text(client, f"kimi://conversations/{chat_meta(worked)['conversation_id']}")]
    seen += [r.model_dump_json() for r in (refused, worked, status)]

    assert refused.is_error and not worked.is_error, text_of(worked)
    assert reply_of(worked) == "Fake Kimi reply to: after the login"
    assert login["method"] == "oauth" and status_of(status)["method"] == "oauth"
    assert fake_kimi.oauth.device_authorizations == 1
    secrets = fake_kimi.oauth.issued_secrets()  # device code, access token, refresh token
    assert len(secrets) == 3
    [sent] = fake_kimi.messages_requests()
    assert sent.headers["authorization"] == f"Bearer {secrets[1]}"
    logs = stderr.read_text(encoding="utf-8")
    assert "DEBUG" in logs
    for secret in secrets:
        assert secret not in logs
        assert all(secret not in text for text in seen)
