"""MediaUploader against the fake Kimi: the same bytes keep one `ms://` id across calls, new client and store
objects (a restart), API keys and token refreshes; failures leave no record; a gone id is replaced once."""

from __future__ import annotations

import random
import sqlite3
from functools import partial
from pathlib import Path

import anyio
import httpx2
import pytest

from kimi_mcp import errors
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.media import LocalMedia, inspect_data, inspect_path
from kimi_mcp.kimi.uploads import MediaUploader
from kimi_mcp.settings import Settings
from kimi_mcp.store import DB_FILE_NAME, ConversationStore
from kimi_mcp.testing.client_setup import settings_for, store_issued_login
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault

pytestmark = pytest.mark.anyio

HOUR = 3600.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MP4_HEAD = (24).to_bytes(4, "big") + b"ftypisom" + b"\x00\x00\x02\x00" + b"isommp41"


def write_png(path: Path, size: int = 300_000, seed: int = 0) -> Path:
    path.write_bytes(PNG_SIGNATURE + random.Random(seed).randbytes(size - len(PNG_SIGNATURE)))
    return path


async def inspect(path: Path, settings: Settings) -> LocalMedia:
    return await anyio.to_thread.run_sync(partial(inspect_path, path, max_bytes=settings.max_media_bytes))


def upload_rows(home: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(home / DB_FILE_NAME) as db:
        return db.execute("SELECT sha256, base_url, file_id FROM uploads").fetchall()


async def ensure_once(settings: Settings, path: Path) -> tuple[str, bool]:
    """What a fresh server process does: new client, new store over the same home, check the file, ensure it."""
    store = ConversationStore(settings.home, max_age_seconds=HOUR)
    try:
        async with KimiClient(settings) as kimi:
            outcome = await MediaUploader(kimi, store.uploads).ensure(await inspect(path, settings))
    finally:
        await store.aclose()
    return outcome.reference, outcome.cached


async def test_the_same_bytes_twice_are_uploaded_once(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    path = write_png(tmp_path / "shot.png")
    store = ConversationStore(settings.home, max_age_seconds=HOUR)
    async with KimiClient(settings) as kimi:
        uploader = MediaUploader(kimi, store.uploads)
        first = await uploader.ensure(await inspect(path, settings))
        # The same content under another name, and as inline data: still the same file on Kimi's side.
        copy = tmp_path / "copy-of-shot.png"
        copy.write_bytes(path.read_bytes())
        second = await uploader.ensure(await inspect(copy, settings))
        third = await uploader.ensure(inspect_data(path.read_bytes(), max_bytes=10**6, claimed_mime="image/png"))
    await store.aclose()
    assert len(fake_kimi.uploads) == 1
    assert first.reference == second.reference == third.reference == f"ms://{fake_kimi.uploads[0].file_id}"
    assert (first.cached, second.cached, third.cached) == (False, True, True)
    assert first.sha256 == second.sha256 and first.bytes == path.stat().st_size
    assert first.media_type.mime_type == "image/png"


async def test_after_a_restart_the_same_bytes_are_not_uploaded_again(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    path = write_png(tmp_path / "shot.png")
    first = await ensure_once(settings, path)
    again = await ensure_once(settings, path)
    assert first == (again[0], False) and again[1] is True
    assert len(fake_kimi.uploads) == 1


async def test_another_api_key_of_the_account_reuses_the_id(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = write_png(tmp_path / "shot.png")
    fake_kimi.api_keys.add("sk-kimi-second-key")
    first = await ensure_once(settings_for(fake_kimi, home, KIMI_API_KEY="sk-kimi-test-key"), path)
    again = await ensure_once(settings_for(fake_kimi, home, KIMI_API_KEY="sk-kimi-second-key"), path)
    assert again == (first[0], True)
    assert len(fake_kimi.uploads) == 1
    # The key is not part of the record: nothing in the row names either key.
    assert all("sk-kimi" not in value for row in upload_rows(home) for value in row)


async def test_a_token_refresh_keeps_the_id(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store_issued_login(fake_kimi, home)
    settings = Settings(home=home, base_url=fake_kimi.base_url, oauth_host=fake_kimi.oauth_host)
    path = write_png(tmp_path / "shot.png")
    first = await ensure_once(settings, path)
    fake_kimi.oauth.revoke_access()  # the 15-minute token ran out
    async with KimiClient(settings) as kimi:
        await kimi.quota()  # any call: 401, one refresh, a new token stored
    assert fake_kimi.count("/api/oauth/token", grant_type="refresh_token") == 1
    again = await ensure_once(settings, path)
    assert again == (first[0], True)
    assert len(fake_kimi.uploads) == 1
    refreshed = [r for r in fake_kimi.requests if r.path.endswith("/v1/usages")][-1]
    assert refreshed.headers["authorization"] != fake_kimi.uploads[0].headers["authorization"]


async def test_two_calls_with_the_same_new_bytes_upload_once(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    media = await inspect(write_png(tmp_path / "shot.png", size=2_000_000), settings)
    store = ConversationStore(settings.home, max_age_seconds=HOUR)
    outcomes = []
    async with KimiClient(settings) as kimi:
        uploader = MediaUploader(kimi, store.uploads)

        async def ensure() -> None:
            outcomes.append(await uploader.ensure(media))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(ensure)
    await store.aclose()
    assert len(fake_kimi.uploads) == 1
    assert len({o.reference for o in outcomes}) == 1 and sorted(o.cached for o in outcomes) == [False, True, True]


async def test_an_upload_refused_with_413_leaves_no_record(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    path = tmp_path / "talk.mp4"
    path.write_bytes(MP4_HEAD + bytes(1_500_000))
    media = await inspect(path, settings)
    store = ConversationStore(settings.home, max_age_seconds=HOUR)
    fake_kimi.script_upload(Fault.too_large())
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.UploadTooLarge) as caught:
            await MediaUploader(kimi, store.uploads).ensure(media)
    assert f"{path.stat().st_size:,} bytes" in str(caught.value) and "Nothing was stored" in str(caught.value)
    assert await store.uploads.get(media.sha256, settings.base_url) is None
    await store.aclose()
    assert upload_rows(settings.home) == []


async def test_a_malformed_answer_leaves_no_record(tmp_path: Path) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"object": "file", "bytes": 108})  # no id

    settings = Settings(api_key="sk-kimi-test-key", home=tmp_path / "home", base_url="http://127.0.0.1:9/coding")
    media = inspect_data(PNG_SIGNATURE + bytes(100), max_bytes=1000, claimed_mime=None)
    store = ConversationStore(settings.home, max_age_seconds=HOUR)
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    async with KimiClient(settings, http=http) as kimi:
        with pytest.raises(errors.UploadAnswerMalformed, match="no id"):
            await MediaUploader(kimi, store.uploads).ensure(media)
    assert await store.uploads.get(media.sha256, settings.base_url) is None
    await store.aclose()


async def test_a_gone_id_is_replaced_by_one_new_upload(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    media = await inspect(write_png(tmp_path / "shot.png"), settings)
    store = ConversationStore(settings.home, max_age_seconds=HOUR)
    async with KimiClient(settings) as kimi:
        uploader = MediaUploader(kimi, store.uploads)
        old = await uploader.ensure(media)
        fake_kimi.forget_file(old.file_id)  # Kimi expired it
        new = await uploader.replace(old.reference, media)
        # A second conversation that also found the old id gone gets the new one, without a third upload.
        also = await uploader.replace(old.reference, media)
        later = await uploader.ensure(media)
        assert await uploader.known(old.reference) is None
        known = await uploader.known(new.reference)
    await store.aclose()
    assert new.reference != old.reference and not new.cached
    assert new.file_id in fake_kimi.files
    assert also.reference == later.reference == new.reference and also.cached and later.cached
    assert len(fake_kimi.uploads) == 2
    assert known is not None and known.file_id == new.file_id and known.sha256 == media.sha256


async def test_known_tells_what_this_kimi_mcp_uploaded(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    path = tmp_path / "talk.mp4"
    path.write_bytes(MP4_HEAD + bytes(5000))
    store = ConversationStore(settings.home, max_age_seconds=HOUR)
    async with KimiClient(settings) as kimi:
        uploader = MediaUploader(kimi, store.uploads)
        from_file = await uploader.ensure(await inspect(path, settings))
        inline = await uploader.ensure(inspect_data(PNG_SIGNATURE + bytes(50), max_bytes=1000, claimed_mime=None))
        video = await uploader.known(from_file.reference)
        image = await uploader.known(inline.reference)
        assert await uploader.known("ms://fakefile999999") is None
        assert await uploader.known("fakefile000001") is None  # not a reference
        assert await uploader.known("ms://../../etc/passwd") is None
    await store.aclose()
    assert video is not None and (video.mime_type, video.bytes, video.source_path) == ("video/mp4", 5024, str(path))
    assert image is not None and (image.mime_type, image.source_path) == ("image/png", None)


async def test_without_a_cache_every_call_uploads(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    media = inspect_data(PNG_SIGNATURE + bytes(50), max_bytes=1000, claimed_mime=None)
    async with KimiClient(settings) as kimi:
        uploader = MediaUploader(kimi, None)
        first, second = await uploader.ensure(media), await uploader.ensure(media)
        assert await uploader.known(first.reference) is None
    assert not first.cached and not second.cached and first.reference != second.reference
    assert len(fake_kimi.uploads) == 2
