"""Images and video through a real `mcp.Client`: kimi_upload_media, kimi_chat's media, the upload cache, the
request cap, the file access policy and a file Kimi lost (issue: media; docs/media.md).

What reaches Kimi is checked on both wires (the `wire` fixture, tests/conftest.py), read wire-neutrally through
kimi_mcp/testing/wire_views.py; the exact blocks and parts of each wire once, in the first test."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import ListRootsResult, Root

from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.client_setup import store_issued_login
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault
from kimi_mcp.testing.mcp_results import chat_meta, text_of
from kimi_mcp.testing.wire_views import answered_views, chat_views

pytestmark = pytest.mark.anyio
MiB = 1 << 20
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2\x00\x00\x00\x08free"


def media_file(folder: Path, name: str, size: int, head: bytes = PNG_HEAD) -> Path:
    """A file of exactly `size` bytes that starts like a real PNG (or `head`); its content depends on its name."""
    filler = hashlib.sha256(name.encode()).digest()
    body = (filler * (size // len(filler) + 1))[: size - len(head)]
    path = folder / name
    path.write_bytes(head + body)
    return path


def server_for(env: dict[str, str], **extra: str) -> Any:
    return build_server(Settings.from_env({**env, **extra}))


@pytest.fixture
def media_env(kimi_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The fake's environment with tmp_path/files as the one folder kimi-mcp may read."""
    (tmp_path / "files").mkdir()
    return {**kimi_env, "KIMI_MCP_ALLOWED_DIRS": str(tmp_path / "files")}


def user_content(fake: FakeKimi, index: int = -1) -> list[dict[str, Any]]:
    """The content blocks of the last user message of the `index`-th /v1/messages request."""
    body = fake.messages_requests()[index].json()
    return body["messages"][-1]["content"]


def last_media(fake: FakeKimi) -> list[dict[str, Any]]:
    """The media of the last chat request's new user turn, wire-neutrally: `{"image": url}`, `{"video": url}`."""
    return chat_views(fake)[-1].last_user_media


def inline(path: Path, mime: str = "image/png") -> str:
    """The data URL an inline image is sent as (a `base64` source on the Anthropic wire, wire_views.py)."""
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def media_block(wire: str, kind: str, url: str) -> dict[str, Any]:
    """One image or video exactly as `wire` sends it (docs/kimi-api.md §7)."""
    if wire == "openai":
        return {"type": f"{kind}_url", f"{kind}_url": {"url": url}}
    if url.startswith("data:"):
        mime, _, data = url.removeprefix("data:").partition(";base64,")
        return {"type": kind, "source": {"type": "base64", "media_type": mime, "data": data}}
    return {"type": kind, "source": {"type": "url", "url": url}}


def upload_payload(result: Any) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    document = json.loads(text_of(result))
    assert document == result.meta["kimi-mcp/upload"]
    return document


async def test_threshold_and_exact_blocks_on_the_wire(
    wire: str, media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    small = media_file(files, "small.png", MiB - 1)
    large = media_file(files, "large.png", MiB + 1)
    video = media_file(files, "clip.mp4", 4096, MP4_HEAD)
    async with Client(server_for(media_env)) as client:
        result = await client.call_tool(
            "kimi_chat", {"prompt": "Describe these.", "media": [str(small), str(large), str(video)]}
        )
    assert not result.is_error, text_of(result)
    assert [(u.filename, u.purpose, u.size) for u in fake_kimi.uploads] == [
        ("upload.png", "image", MiB + 1),
        ("upload.mp4", "video", 4096),
    ]
    image_id, video_id = (u.file_id for u in fake_kimi.uploads)
    [sent] = fake_kimi.chat_requests()
    assert sent.json()["messages"][-1]["content"] == [
        media_block(wire, "image", inline(small)),
        media_block(wire, "image", f"ms://{image_id}"),
        media_block(wire, "video", f"ms://{video_id}"),
        {"type": "text", "text": "Describe these."},
    ]


async def test_same_image_is_uploaded_once_across_turns_restarts_and_token_refreshes(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    env = {key: value for key, value in kimi_env.items() if key != "KIMI_API_KEY"}
    env["KIMI_MCP_ALLOWED_DIRS"] = str(tmp_path)
    store_issued_login(fake_kimi, Path(env["KIMI_MCP_HOME"]))
    image = media_file(tmp_path, "screen.png", 2 * MiB)
    metas = []
    async with Client(server_for(env)) as client:
        system = "You describe screenshots for a developer. " * 100  # long enough to fill cache chunks
        first = await client.call_tool(
            "kimi_chat", {"prompt": "What is on screen?", "media": [str(image)], "system": system}
        )
        metas.append(chat_meta(first))
        cid = metas[0]["conversation_id"]
        second = await client.call_tool(
            "kimi_chat", {"prompt": "And this, again?", "media": [str(image)], "conversation_id": cid}
        )
        metas.append(chat_meta(second))
    refreshes_before = fake_kimi.count("/oauth/token", grant_type="refresh_token")
    fake_kimi.oauth.revoke_access()  # the next request gets 401 and the server refreshes its token
    async with Client(server_for(env)) as client:  # a restart: a new server over the same home folder
        third = await client.call_tool(
            "kimi_chat", {"prompt": "Once more.", "media": [str(image)], "conversation_id": cid}
        )
        metas.append(chat_meta(third))
        upload = upload_payload(await client.call_tool("kimi_upload_media", {"path": str(image)}))
    assert fake_kimi.count("/oauth/token", grant_type="refresh_token") == refreshes_before + 1
    assert len(fake_kimi.uploads) == 1
    reference = f"ms://{fake_kimi.uploads[0].file_id}"
    assert upload["media_id"] == reference and upload["cached"] is True
    assert upload["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    views = answered_views(fake_kimi)
    assert len(views) == 3 and {url for view in views for url in view.media_urls} == {reference}
    assert [len(view.media_urls) for view in views] == [1, 2, 3]  # each turn's image, replayed in later turns
    # From turn 2 on the whole previous prompt, image reference included, is read from the emulated cache.
    for previous, current in ((metas[0], metas[1]), (metas[1], metas[2])):
        previous_prompt = previous["usage"]["input_tokens"] + previous["usage"]["cache_read_tokens"]
        assert current["usage"]["cache_read_tokens"] >= 0.9 * previous_prompt - 256, (previous, current)


async def test_a_sparse_file_over_the_limit_is_refused_before_any_byte_is_sent(
    media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    sparse = files / "huge.mp4"
    with sparse.open("wb") as handle:
        handle.write(MP4_HEAD)
        handle.truncate(300_000_000)
    async with Client(server_for(media_env)) as client:
        upload = await client.call_tool("kimi_upload_media", {"path": str(sparse)})
        chat = await client.call_tool("kimi_chat", {"prompt": "watch", "media": [str(sparse)]})
    for result in (upload, chat):
        assert result.is_error
        assert "300,000,000 bytes" in text_of(result) and "KIMI_MCP_MAX_MEDIA_BYTES" in text_of(result)
    assert fake_kimi.uploads == [] and fake_kimi.messages_requests() == []


async def test_paths_outside_the_allowed_folders_are_refused_naming_them(
    media_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    allowed = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    outside = media_file(tmp_path, "outside.png", 100)
    (allowed / "link.png").symlink_to(outside)
    attempts = ["relative.png", str(outside), str(allowed / "link.png"), f"{allowed}/../outside.png", str(allowed)]
    async with Client(server_for(media_env)) as client:
        for attempt in attempts:
            result = await client.call_tool("kimi_chat", {"prompt": "look", "media": [attempt]})
            assert result.is_error, attempt
            assert text_of(result).startswith("Error: Cannot read") and str(allowed) in text_of(result), attempt
        listed = await client.list_tools()  # the server keeps serving
    assert {tool.name for tool in listed.tools} >= {"kimi_chat", "kimi_upload_media"}
    assert fake_kimi.messages_requests() == [] and fake_kimi.uploads == []


async def test_client_roots_narrow_the_allowed_folders(media_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    (files / "project").mkdir()
    (files / "other").mkdir()
    inside = media_file(files / "project", "in.png", 200)
    beside = media_file(files / "other", "beside.png", 200)

    async def roots(_context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=(files / "project").as_uri())])

    # The 2025-11-25 era: 2026-07-28 sessions give a server no back channel to ask for roots (SEP-2577).
    async with Client(server_for(media_env), list_roots_callback=roots, mode="legacy") as client:
        ok = await client.call_tool("kimi_chat", {"prompt": "look", "media": [str(inside)]})
        refused = await client.call_tool("kimi_chat", {"prompt": "look", "media": [str(beside)]})
    assert not ok.is_error, text_of(ok)
    assert refused.is_error and str(files / "project") in text_of(refused)
    assert len(fake_kimi.messages_requests()) == 1


async def test_a_file_kimi_lost_is_uploaded_again_once_and_the_call_succeeds(
    wire: str, media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    image = media_file(files, "lost.png", 2 * MiB)
    async with Client(server_for(media_env)) as client:
        first = upload_payload(await client.call_tool("kimi_upload_media", {"path": str(image)}))
        fake_kimi.forget_file(first["media_id"].removeprefix("ms://"))
        result = await client.call_tool("kimi_chat", {"prompt": "still there?", "media": [first["media_id"]]})
        again = upload_payload(await client.call_tool("kimi_upload_media", {"path": str(image)}))
    assert not result.is_error, text_of(result)
    assert len(fake_kimi.uploads) == 2
    assert [r.status for r in fake_kimi.chat_requests()] == [400, 200]
    new_reference = f"ms://{fake_kimi.uploads[1].file_id}"
    assert last_media(fake_kimi) == [{"image": new_reference}]
    assert again == {**first, "media_id": new_reference, "cached": True}


async def test_an_upload_refused_with_413_is_a_readable_error_and_nothing_is_stored(
    media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    video = media_file(files, "long.mp4", 3 * MiB, MP4_HEAD)
    fake_kimi.script_upload(Fault(status=413, error_type="request_too_large", message="Request Entity Too Large"))
    fake_kimi.script_upload(Fault(status=413, error_type="request_too_large", message="Request Entity Too Large"))
    async with Client(server_for(media_env)) as client:
        upload = await client.call_tool("kimi_upload_media", {"path": str(video)})
        chat = await client.call_tool("kimi_chat", {"prompt": "watch this", "media": [str(video)]})
        later = upload_payload(await client.call_tool("kimi_upload_media", {"path": str(video)}))
    for result in (upload, chat):
        assert result.is_error and "413" in text_of(result) and "too large" in text_of(result)
    assert fake_kimi.messages_requests() == []  # the chat never went out with a video it could not upload
    assert later["cached"] is False  # the refused upload left no id behind
    with sqlite3.connect(Path(media_env["KIMI_MCP_HOME"]) / "kimi-mcp.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM turns").fetchone() == (0,)


async def test_a_failed_image_upload_falls_back_to_inline_and_says_so(
    wire: str, media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    image = media_file(files, "diagram.png", 50_000)
    fake_kimi.script_upload(Fault(status=400, error_type="invalid_request_error", message="bad upload"))
    async with Client(server_for(media_env, KIMI_CODE_UPLOAD_THRESHOLD_BYTES="1000")) as client:
        result = await client.call_tool("kimi_chat", {"prompt": "explain", "media": [str(image)]})
    assert not result.is_error, text_of(result)
    assert "sent inline instead" in text_of(result)
    assert last_media(fake_kimi) == [{"image": inline(image)}]


async def test_inline_images_over_the_request_cap_are_uploaded_instead(
    wire: str, media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    images = [media_file(files, f"part{i}.png", 900_000 + i) for i in range(2)]  # 2 × 1.2 MB of base64
    async with Client(server_for(media_env)) as client:
        result = await client.call_tool("kimi_chat", {"prompt": "compare", "media": [str(p) for p in images]})
    assert not result.is_error, text_of(result)
    assert [u.size for u in fake_kimi.uploads] == [900_001]  # the larger one went up; the other fits inline
    assert last_media(fake_kimi) == [{"image": inline(images[0])}, {"image": f"ms://{fake_kimi.uploads[0].file_id}"}]
    assert "to keep the request under the cap" in text_of(result)
    [sent] = fake_kimi.chat_requests()
    assert len(sent.body) <= 2_097_152


async def test_a_request_still_over_the_cap_fails_before_sending_naming_the_sizes(
    wire: str, media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    image = media_file(files, "inline.png", MiB - 1)
    async with Client(server_for(media_env)) as client:
        first = await client.call_tool("kimi_chat", {"prompt": "look", "media": [str(image)]})
        cid = chat_meta(first)["conversation_id"]
        result = await client.call_tool("kimi_chat", {"prompt": "x" * 800_000, "conversation_id": cid})
    assert result.is_error
    text = text_of(result)
    assert "over the 2,097,152 bytes" in text and "inline images" in text and "nothing was sent" in text
    assert len(fake_kimi.chat_requests()) == 1


async def test_upload_reports_progress_up_to_the_file_size(media_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    video = media_file(files, "progress.mp4", 8 * MiB, MP4_HEAD)
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with Client(server_for(media_env)) as client:
        result = await client.call_tool("kimi_upload_media", {"path": str(video)}, progress_callback=on_progress)
    assert upload_payload(result)["bytes"] == 8 * MiB
    assert seen and seen[-1] == (8 * MiB, 8 * MiB)
    assert [p for p, _ in seen] == sorted({p for p, _ in seen})  # strictly increasing


async def test_data_base64_uploads_and_a_wrong_mime_type_is_refused(
    media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    data = PNG_HEAD + os.urandom(5000)
    encoded = base64.b64encode(data).decode()
    async with Client(server_for(media_env)) as client:
        wrong = await client.call_tool("kimi_upload_media", {"data_base64": encoded, "mime_type": "video/mp4"})
        neither = await client.call_tool("kimi_upload_media", {})
        ok = upload_payload(
            await client.call_tool("kimi_upload_media", {"data_base64": encoded, "mime_type": "image/png"})
        )
        chat = await client.call_tool("kimi_chat", {"prompt": "what is it?", "media": [ok["media_id"]]})
    assert wrong.is_error and "image/png" in text_of(wrong) and "video/mp4" in text_of(wrong)
    assert neither.is_error and "path" in text_of(neither) and "data_base64" in text_of(neither)
    assert ok["mime_type"] == "image/png" and ok["bytes"] == len(data)
    assert fake_kimi.uploads[0].sha256 == hashlib.sha256(data).hexdigest()
    assert not chat.is_error, text_of(chat)
    assert user_content(fake_kimi)[0] == {"type": "image", "source": {"type": "url", "url": ok["media_id"]}}


async def test_an_unknown_media_id_is_a_clear_error(media_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    async with Client(server_for(media_env)) as client:
        result = await client.call_tool("kimi_chat", {"prompt": "see", "media": ["ms://never-uploaded"]})
    assert result.is_error and "kimi_upload_media" in text_of(result)
    assert fake_kimi.messages_requests() == []


async def test_a_conversation_whose_earlier_image_kimi_lost_goes_on_with_one_new_id(
    wire: str, media_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    files = Path(media_env["KIMI_MCP_ALLOWED_DIRS"])
    image = media_file(files, "early.png", 2 * MiB)
    system = "You read screenshots. " * 200
    async with Client(server_for(media_env)) as client:
        first = await client.call_tool("kimi_chat", {"prompt": "look", "media": [str(image)], "system": system})
        cid = chat_meta(first)["conversation_id"]
        fake_kimi.forget_file(fake_kimi.uploads[0].file_id)
        second = await client.call_tool("kimi_chat", {"prompt": "and now?", "conversation_id": cid})
        third = await client.call_tool("kimi_chat", {"prompt": "and then?", "conversation_id": cid})
    assert not second.is_error and not third.is_error, (text_of(second), text_of(third))
    # One 400 (the lost id), one re-upload from the file it came from; the third turn goes straight through.
    assert [r.status for r in fake_kimi.chat_requests()] == [200, 400, 200, 200]
    assert len(fake_kimi.uploads) == 2
    new_reference = f"ms://{fake_kimi.uploads[1].file_id}"
    assert chat_views(fake_kimi)[-1].media_urls == [new_reference]
    # Turn 3 repeats turn 2's prompt, the new id included, so the emulated cache serves it.
    assert chat_meta(third)["usage"]["cache_read_tokens"] >= chat_meta(second)["usage"]["input_tokens"] // 2
