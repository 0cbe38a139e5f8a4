"""Input edges (issue 7, item 5): lines the SDK cannot read, bad tool arguments, odd resource URIs, a corrupt store.

Every request gets an answer the model can read, and the server keeps serving.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client

from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.store import DB_FILE_NAME
from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, text_of

pytestmark = pytest.mark.anyio

KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
ANSWER_TIMEOUT = 60.0  # generous: a loaded 2-core machine; a dropped request would never be answered at all


def server_for(env: dict[str, str], **extra: str) -> Any:
    return build_server(Settings.from_env({**env, **extra}))


# -- raw JSON-RPC lines over a real stdio subprocess ----------------------------------------------------------------


class RawSession:
    """`kimi-mcp serve` driven with raw lines, the way a host's bytes reach it."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._stdout = BufferedByteReceiveStream(process.stdout)

    async def send_line(self, line: bytes) -> None:
        assert self._process.stdin is not None
        await self._process.stdin.send(line + b"\n")

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_line(json.dumps(message).encode())

    async def answer_to(self, request_id: int | str | None) -> dict[str, Any]:
        """The next response (result or error) with this id; notifications in between are skipped."""
        with anyio.fail_after(ANSWER_TIMEOUT):
            while True:
                line = await self._stdout.receive_until(b"\n", 16 * 1024 * 1024)
                message = json.loads(line)
                if "method" not in message and message.get("id") == request_id:
                    return dict(message)

    async def call(self, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await self.answer_to(request_id)


@asynccontextmanager
async def raw_server(env: dict[str, str], errlog: Path) -> AsyncIterator[RawSession]:
    child_env = {"PATH": os.environ.get("PATH", ""), **env}
    with errlog.open("wb") as stderr:
        process = await anyio.open_process([str(KIMI_MCP), "serve"], env=child_env, stderr=stderr)
        try:
            session = RawSession(process)
            init = await session.call(
                1,
                "initialize",
                {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
            )
            assert "result" in init, init
            await session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            yield session
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()
            with anyio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            print(f"--- kimi-mcp serve stderr ---\n{await anyio.Path(errlog).read_text(errors='replace')}")


LONE_SURROGATE_CALL = (
    rb'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"kimi_chat","arguments":{"prompt":"\ud800"}}}'
)


async def test_a_lone_surrogate_request_is_answered_and_the_next_request_works(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    async with raw_server(kimi_env, tmp_path / "serve.log") as session:
        await session.send_line(LONE_SURROGATE_CALL)
        answered = await session.answer_to(7)
        listed = await session.call(8, "tools/list", {})
        again = await session.call(
            9, "tools/call", {"name": "kimi_chat", "arguments": {"prompt": "half an emoji: \ud83d"}}
        )  # json.dumps writes the lone half as the escape "\ud83d", as a JavaScript host does
        after = await session.call(10, "tools/call", {"name": "kimi_chat", "arguments": {"prompt": "plain"}})
    # The surrogate became U+FFFD, as a UTF-8 encoder writes it; the call itself went through.
    assert answered["result"]["isError"] is False, answered
    assert answered["result"]["content"][0]["text"].startswith("Fake Kimi reply to: \ufffd\n\n[conversation_id: ")
    assert [r.json()["messages"][-1]["content"][0]["text"] for r in fake_kimi.messages_requests()] == [
        "\ufffd",
        "half an emoji: \ufffd",
        "plain",
    ]
    assert {tool["name"] for tool in listed["result"]["tools"]} == {
        "kimi_chat",
        "kimi_upload_media",
        "kimi_login_status",
    }
    assert again["result"]["isError"] is False and after["result"]["isError"] is False
    assert "lone UTF-16 surrogates" in (tmp_path / "serve.log").read_text()


async def test_lines_that_are_not_json_rpc_get_json_rpc_errors_and_serving_goes_on(
    kimi_env: dict[str, str], tmp_path: Path
) -> None:
    async with raw_server(kimi_env, tmp_path / "serve.log") as session:
        await session.send_line(b"this is not JSON")
        not_json = await session.answer_to(None)
        await session.send_line(b'{"jsonrpc":"2.0","id":11,"method":5}')
        bad_method = await session.answer_to(11)
        await session.send_line(b'{"jsonrpc":"2.0","id":"s-12","method":"tools/call","params":"\\udc00"}')
        bad_params = await session.answer_to("s-12")
        await session.send_line(b"")  # a blank line is no request: nothing to answer
        await session.send_line(b'{"jsonrpc":"2.0","method":"notifications/bogus","params":7}')  # nor a notification
        after = await session.call(13, "tools/list", {})
    assert not_json["error"]["code"] == -32700 and not_json["id"] is None
    assert bad_method["error"]["code"] == -32600
    assert bad_params["error"]["code"] in (-32600, -32602), bad_params
    assert "tools" in after["result"]


# -- bad tool arguments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_bad_arguments_name_the_field_and_what_is_allowed_without_pydantic_noise(
    mode: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    cases = {
        "empty prompt": {"prompt": ""},
        "no prompt": {"system": "x"},
        "prompt not text": {"prompt": 42},
        "thinking": {"prompt": "x", "thinking": "extreme"},
        "tokens true": {"prompt": "x", "max_output_tokens": True},
        "tokens too many": {"prompt": "x", "max_output_tokens": 10**9},
        "tokens fraction": {"prompt": "x", "max_output_tokens": 2.5},
        "chars false": {"prompt": "x", "max_output_chars": False},
        "chars small": {"prompt": "x", "max_output_chars": 10},
        "include flag": {"prompt": "x", "include_thinking": "perhaps"},
        "two at once": {"prompt": "", "thinking": "extreme"},
        "long value": {"prompt": "x", "thinking": "y" * 5000},
    }
    async with Client(server_for(kimi_env), mode=mode) as client:
        texts = {}
        for name, arguments in cases.items():
            result = await client.call_tool("kimi_chat", arguments)
            assert result.is_error, name
            texts[name] = text_of(result)
        fine = await client.call_tool("kimi_chat", {"prompt": "x", "max_output_tokens": 5, "max_output_chars": 300})
    for name, text in texts.items():
        assert text.startswith("Error: Invalid arguments for kimi_chat: "), (name, text)
        for noise in (
            "errors.pydantic.dev",
            "type=",
            "input_value",
            "input_type",
            "validation error",
            "Error executing",
        ):
            assert noise not in text, (name, text)
    assert 'prompt must be a string of at least 1 character (got "")' in texts["empty prompt"]
    assert "prompt is required" in texts["no prompt"]
    assert "prompt must be a string" in texts["prompt not text"] and "(got 42)" in texts["prompt not text"]
    assert "thinking must be 'off', 'low', 'high' or 'max', or null (got \"extreme\")" in texts["thinking"]
    for name in ("tokens true", "tokens too many", "tokens fraction"):
        assert "max_output_tokens must be a whole number from 1 to 262144, or null" in texts[name], texts[name]
    assert "(got true)" in texts["tokens true"] and "(got 1000000000)" in texts["tokens too many"]
    assert "max_output_chars must be a whole number of at least 200, or null (got false)" in texts["chars false"]
    assert "(got 10)" in texts["chars small"]
    assert "include_thinking must be true or false" in texts["include flag"]
    assert "prompt must be" in texts["two at once"] and "thinking must be" in texts["two at once"]
    assert len(texts["long value"]) < 400 and "…" in texts["long value"]
    assert not fine.is_error and chat_meta(fine)["turn"] == 1
    sent = [r.json() for r in fake_kimi.messages_requests()]
    assert len(sent) == 1 and sent[0]["max_tokens"] == 5  # nothing refused ever reached Kimi


# -- resource URIs --------------------------------------------------------------------------------------------------


async def read_error(client: Client, uri: str) -> str:
    with pytest.raises(Exception) as caught:
        await client.read_resource(uri)
    return str(caught.value)


async def test_turn_numbers_are_ascii_digits_within_range(kimi_env: dict[str, str]) -> None:
    async with Client(server_for(kimi_env), mode="legacy") as client:
        uri = chat_meta(await client.call_tool("kimi_chat", {"prompt": "q"}))["full_text_uri"]
        ok = await client.read_resource(f"{uri}/turns/1")
        errors = {
            turn: await read_error(client, f"{uri}/turns/{turn}") for turn in ("١", "²", "0", "2", "01x", "9" * 5000)
        }
    assert ok.contents[0].text == "Fake Kimi reply to: q"
    for turn, message in errors.items():
        assert "has turns 1 to 1; no turn" in message, (turn, message)
        assert len(message) < 400, message
    assert "no turn '١'" in errors["١"] and "no turn '²'" in errors["²"]


async def test_an_unknown_uri_is_echoed_cut_to_64_characters(kimi_env: dict[str, str]) -> None:
    long_uri = "kimi://nothing/" + "x" * 5000
    async with Client(server_for(kimi_env), mode="legacy") as client:
        message = await read_error(client, long_uri)
        short = await read_error(client, "kimi://nothing/here")
    assert long_uri[:64] + "…" in message and long_uri[:65] not in message and len(message) < 400
    assert "kimi://nothing/here" in short


async def test_a_corrupt_database_is_a_readable_error_naming_the_file(kimi_env: dict[str, str]) -> None:
    path = Path(kimi_env["KIMI_MCP_HOME"]) / DB_FILE_NAME
    path.write_bytes(b"garbage, not SQLite\n" * 500)
    async with Client(server_for(kimi_env), mode="legacy") as client:
        new = await client.call_tool("kimi_chat", {"prompt": "new conversation"})
        continued = await client.call_tool("kimi_chat", {"prompt": "q", "conversation_id": "kc_0123456789abcdef"})
        listing = await read_error(client, "kimi://conversations")
        transcript = await read_error(client, "kimi://conversations/kc_0123456789abcdef")
    # A new conversation still gets Kimi's reply; the note says why it cannot be continued.
    assert not new.is_error and reply_of(new) == "Fake Kimi reply to: new conversation"
    assert continued.is_error
    for text in (chat_meta(new)["note"], text_of(continued), listing, transcript):
        assert f"The conversation store {path} is not a readable database" in text, text
        assert "Move it away" in text
