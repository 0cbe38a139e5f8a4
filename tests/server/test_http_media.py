"""Files over streamable HTTP (issue 10 item 5, docs/http.md "Files and media"): a remote client sends the bytes
(`data_base64`), a `path` names the server's disk under its file access policy, client roots cannot widen it, and a
body over KIMI_MCP_HTTP_MAX_BODY_BYTES gets a readable 413 while the server keeps serving. All through a real `mcp`
client against a `kimi-mcp serve --transport http` child process."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError
from mcp_types import ListRootsResult, Root

from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.http_child import http_child, http_client
from kimi_mcp.testing.mcp_results import text_of

pytestmark = pytest.mark.anyio

TOKEN = "test-token-0123456789abcdef"
BODY_CAP = 65_536
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"


def png(size: int, seed: str = "png") -> bytes:
    """`size` bytes that start like a real PNG; the rest depends on `seed`."""
    filler = hashlib.sha256(seed.encode()).digest()
    return PNG_HEAD + (filler * (size // len(filler) + 1))[: size - len(PNG_HEAD)]


def png_file(folder: Path, name: str, size: int = 300) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(png(size, name))
    return path


def uploaded(result: Any) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    return dict(json.loads(text_of(result)))


def allowed_folders(result: Any) -> str:
    """The allowed folders a refusal names (errors.FileAccessDenied)."""
    return text_of(result).split("inside the allowed folders: ", 1)[1].split(" (the MCP client's", 1)[0]


def roots_answering(folders: list[Path], asked: list[str]) -> Any:
    """A `list_roots_callback` offering `folders`, noting each time the server asks."""

    async def roots(_context: Any) -> ListRootsResult:
        asked.append(",".join(map(str, folders)))
        return ListRootsResult(roots=[Root(uri=folder.as_uri()) for folder in folders])

    return roots


def user_content(fake: FakeKimi) -> list[dict[str, Any]]:
    """The content blocks of the last user message of the last /v1/messages request."""
    return list(fake.messages_requests()[-1].json()["messages"][-1]["content"])


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """The one folder the server may read (KIMI_MCP_ALLOWED_DIRS)."""
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


@pytest.fixture
def media_env(kimi_env: dict[str, str], files: Path) -> dict[str, str]:
    return {
        **kimi_env,
        "KIMI_MCP_HTTP_TOKEN": TOKEN,
        "KIMI_MCP_ALLOWED_DIRS": str(files),
        "KIMI_MCP_HTTP_MAX_BODY_BYTES": str(BODY_CAP),
    }


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_upload_by_data_base64_then_chat_with_its_id(
    mode: str, media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    data = png(20_000)
    arguments = {"data_base64": base64.b64encode(data).decode(), "mime_type": "image/png"}
    async with http_child(media_env) as child, http_client(child.url, TOKEN, mode=mode) as client:
        first = uploaded(await client.call_tool("kimi_upload_media", arguments))
        again = uploaded(await client.call_tool("kimi_upload_media", arguments))
        chat = await client.call_tool("kimi_chat", {"prompt": "What is in it?", "media": [first["media_id"]]})
    # The fake received exactly these bytes, once: the second upload of the same content is the cached id.
    assert len(fake_kimi.uploads) == 1
    upload = fake_kimi.uploads[0]
    assert (upload.size, upload.sha256, upload.purpose) == (len(data), hashlib.sha256(data).hexdigest(), "image")
    assert first["media_id"] == upload.reference and first["media_id"].startswith("ms://")
    assert first["cached"] is False and again == {**first, "cached": True}
    assert not chat.is_error, text_of(chat)
    assert user_content(fake_kimi) == [
        {"type": "image", "source": {"type": "url", "url": first["media_id"]}},
        {"type": "text", "text": "What is in it?"},
    ]


async def test_a_path_names_the_servers_disk_and_outside_the_allowed_folders_is_refused(
    media_env: dict[str, str], fake_kimi: FakeKimi, files: Path, tmp_path: Path
) -> None:
    inside = png_file(files, "inside.png")
    outside = png_file(tmp_path / "elsewhere", "outside.png")
    async with http_child(media_env) as child, http_client(child.url, TOKEN) as client:
        refused_upload = await client.call_tool("kimi_upload_media", {"path": str(outside)})
        refused_chat = await client.call_tool("kimi_chat", {"prompt": "look", "media": [str(outside)]})
        accepted = uploaded(await client.call_tool("kimi_upload_media", {"path": str(inside)}))
        chat = await client.call_tool("kimi_chat", {"prompt": "look", "media": [str(inside)]})
    for result in (refused_upload, refused_chat):
        assert result.is_error
        assert text_of(result).startswith(f"Error: Cannot read {outside}") and str(files) in text_of(result)
    assert [u.sha256 for u in fake_kimi.uploads] == [hashlib.sha256(inside.read_bytes()).hexdigest()]
    assert accepted["media_id"] == fake_kimi.uploads[0].reference
    assert not chat.is_error, text_of(chat)
    assert len(fake_kimi.messages_requests()) == 1  # the refused chat never reached Kimi


async def test_client_roots_over_http_narrow_but_never_widen_the_allowed_folders(
    media_env: dict[str, str], fake_kimi: FakeKimi, files: Path, tmp_path: Path
) -> None:
    in_project = png_file(files / "project", "in.png")
    beside = png_file(files / "other", "beside.png")
    outside = png_file(tmp_path / "elsewhere", "outside.png")
    wider = [tmp_path, tmp_path / "elsewhere"]  # a parent of KIMI_MCP_ALLOWED_DIRS and a folder beside it
    asked: list[str] = []
    look = {"prompt": "look"}
    async with http_child(media_env) as child:
        # Roots exist only in the 2025-era protocol (SEP-2577 removed them): a legacy-mode session offers them.
        async with http_client(child.url, TOKEN, mode="legacy", list_roots_callback=roots_answering(wider, asked)) as c:
            widening = await c.call_tool("kimi_chat", {**look, "media": [str(outside)]})
            still_allowed = await c.call_tool("kimi_chat", {**look, "media": [str(beside)]})
        project = roots_answering([files / "project"], asked)
        async with http_client(child.url, TOKEN, mode="legacy", list_roots_callback=project) as c:
            narrowed = await c.call_tool("kimi_chat", {**look, "media": [str(beside)]})
            in_root = await c.call_tool("kimi_chat", {**look, "media": [str(in_project)]})
    # The server did ask each client for its roots, over HTTP.
    assert set(asked) == {f"{tmp_path},{tmp_path / 'elsewhere'}", str(files / "project")}
    # Roots wider than KIMI_MCP_ALLOWED_DIRS, or beside it, open nothing outside it...
    assert widening.is_error and text_of(widening).startswith(f"Error: Cannot read {outside}")
    assert allowed_folders(widening) == str(files)
    assert not still_allowed.is_error, text_of(still_allowed)
    # ...while a root inside it narrows what may be read.
    assert narrowed.is_error and allowed_folders(narrowed) == str(files / "project")
    assert not in_root.is_error, text_of(in_root)
    assert len(fake_kimi.messages_requests()) == 2


async def test_without_allowed_dirs_roots_over_http_narrow_the_working_folder_instead_of_replacing_it(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, files: Path, tmp_path: Path
) -> None:
    # Over stdio the host's roots replace the working-folder default (the host is the user's own); over HTTP the
    # roots come from whoever holds the token and name folders on their machine, so they only narrow it.
    env = {**kimi_env, "KIMI_MCP_HTTP_TOKEN": TOKEN}
    in_project = png_file(files / "project", "in.png")
    beside = png_file(files / "other", "beside.png")
    outside = png_file(tmp_path / "elsewhere", "outside.png")
    asked: list[str] = []
    roots = roots_answering([tmp_path / "elsewhere", files / "project"], asked)
    async with http_child(env, cwd=files) as child:
        async with http_client(child.url, TOKEN, mode="legacy", list_roots_callback=roots) as client:
            elsewhere = await client.call_tool("kimi_chat", {"prompt": "look", "media": [str(outside)]})
            beside_project = await client.call_tool("kimi_chat", {"prompt": "look", "media": [str(beside)]})
            in_root = await client.call_tool("kimi_chat", {"prompt": "look", "media": [str(in_project)]})
    assert asked
    for refused in (elsewhere, beside_project):
        assert refused.is_error and allowed_folders(refused) == str(files / "project")
    assert not in_root.is_error, text_of(in_root)
    assert len(fake_kimi.messages_requests()) == 1


async def test_a_body_over_the_cap_gets_a_readable_413_and_the_session_goes_on(
    media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    # 4 MiB of image, ~5.6 MB of base64: far past the cap and past what the kernel's socket buffers absorb, so the
    # 413 only reaches the client if the server reads the body it refuses (a reset would lose the answer).
    too_big = base64.b64encode(png(4 << 20, "big")).decode()
    small = base64.b64encode(png(2_000, "small")).decode()
    statuses: list[int] = []
    async with http_child(media_env) as child:
        async with http_client(child.url, TOKEN, statuses=statuses) as client:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("kimi_upload_media", {"data_base64": too_big, "mime_type": "image/png"})
            after = uploaded(
                await client.call_tool("kimi_upload_media", {"data_base64": small, "mime_type": "image/png"})
            )
    message = str(refused.value)
    assert "larger than this server accepts (65,536 bytes, KIMI_MCP_HTTP_MAX_BODY_BYTES)" in message
    assert 413 in statuses
    assert after["media_id"] == fake_kimi.uploads[0].reference  # the same session still works
    assert len(fake_kimi.uploads) == 1  # the refused bytes never reached Kimi
    assert "Traceback" not in child.stderr
