"""KimiClient.upload against the fake Kimi: the multipart body on the wire, streaming, progress, 401 recovery,
retries of transient faults, readable errors, the concurrency slot and the deadline (docs/kimi-api.md §7, §9)."""

from __future__ import annotations

import hashlib
import json
import random
import sys
import textwrap
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import anyio
import httpx2
import pytest

from kimi_mcp import errors
from kimi_mcp.kimi import files_api
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.media import LocalMedia, inspect_data, inspect_path
from kimi_mcp.settings import Settings
from kimi_mcp.testing.client_setup import settings_for, store_issued_login
from kimi_mcp.testing.fake_kimi import DEFAULT_API_KEY, FakeKimi, Fault, RecordedRequest

pytestmark = pytest.mark.anyio

MiB = 1 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# An ISO-BMFF `ftyp` box (24 bytes: major brand isom, compatible isom + mp41): the head of an mp4.
MP4_HEAD = (24).to_bytes(4, "big") + b"ftypisom" + b"\x00\x00\x02\x00" + b"isommp41"


def write_media(path: Path, head: bytes, size: int, seed: int = 0) -> Path:
    path.write_bytes(head + random.Random(seed).randbytes(size - len(head)))
    return path


async def inspect(path: Path, settings: Settings) -> LocalMedia:
    return await anyio.to_thread.run_sync(partial(inspect_path, path, max_bytes=settings.max_media_bytes))


def upload_requests(fake: FakeKimi) -> list[RecordedRequest]:
    return [r for r in list(fake.requests) if r.method == "POST" and r.path.endswith("/v1/files")]


@pytest.mark.parametrize(
    ("head", "filename", "mime", "purpose"),
    [(PNG_SIGNATURE, "upload.png", "image/png", "image"), (MP4_HEAD, "upload.mp4", "video/mp4", "video")],
)
async def test_the_upload_on_the_wire_is_the_documented_multipart_form(
    fake_kimi: FakeKimi, tmp_path: Path, head: bytes, filename: str, mime: str, purpose: str
) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    path = write_media(tmp_path / "holiday-clip.bin", head, 3 * MiB + 17)  # the local name never reaches Kimi
    media = await inspect(path, settings)
    async with KimiClient(settings) as kimi:
        uploaded = await kimi.upload(media)

    (seen,) = fake_kimi.uploads
    assert seen.fields == ["file", "purpose"]
    assert (seen.filename, seen.content_type, seen.purpose) == (filename, mime, purpose)
    assert seen.size == path.stat().st_size == uploaded.bytes
    assert seen.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == media.sha256
    assert seen.complete and seen.status == 200
    assert seen.headers["authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert seen.headers["user-agent"].startswith("kimi-mcp/")
    assert "x-api-key" not in seen.headers
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    # An exact length, announced up front: no chunked transfer encoding.
    (request,) = upload_requests(fake_kimi)
    assert "transfer-encoding" not in request.headers
    assert int(request.headers["content-length"]) == request.body_size > seen.size
    assert uploaded.id == seen.file_id and uploaded.id in fake_kimi.files
    assert uploaded.reference == f"ms://{uploaded.id}"


async def test_the_multipart_body_is_byte_exact() -> None:
    data = PNG_SIGNATURE + b"pixels"
    media = inspect_data(data, max_bytes=1000, claimed_mime="image/png")
    body = files_api.MultipartBody(media, boundary="b0undary")
    sent = b"".join([chunk async for chunk in body.stream()])
    assert sent == (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="file"; filename="upload.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + data + b"\r\n"
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="purpose"\r\n\r\n'
        b"image\r\n"
        b"--b0undary--\r\n"
    )
    assert body.headers() == {
        "Content-Type": "multipart/form-data; boundary=b0undary",
        "Content-Length": str(len(sent)),
    }
    # Each upload gets its own random boundary.
    assert files_api.MultipartBody(media).boundary != files_api.MultipartBody(media).boundary


async def test_progress_is_throttled_monotonic_and_reaches_the_total(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    size = 5 * MiB + 123
    media = await inspect(write_media(tmp_path / "clip.mp4", MP4_HEAD, size), settings)
    seen: list[tuple[int, int]] = []

    async def on_progress(sent: int, total: int) -> None:
        seen.append((sent, total))

    async with KimiClient(settings) as kimi:
        await kimi.upload(media, on_progress)
    assert seen[-1] == (size, size)
    assert {total for _, total in seen} == {size}
    counts = [sent for sent, _ in seen]
    assert counts == sorted(set(counts))  # strictly increasing
    assert 5 <= len(seen) <= 7  # about one per MiB here (1% of 5 MiB is less), not one per chunk or byte


async def test_a_1_percent_step_bounds_the_notifications_of_a_large_file() -> None:
    seen: list[int] = []

    async def on_progress(sent: int, total: int) -> None:
        seen.append(sent)

    total = 512 * MiB
    meter = files_api.ProgressMeter(total, on_progress)
    for sent in range(64 * 1024, total + 1, 64 * 1024):  # chunks far smaller than the step
        await meter.advance(sent)
    assert seen[-1] == total
    assert 99 <= len(seen) <= 101


async def test_progress_stays_monotonic_across_a_retried_upload(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    size = 4 * MiB
    media = await inspect(write_media(tmp_path / "a.png", PNG_SIGNATURE, size), settings)
    fake_kimi.script_upload(Fault(503, "overloaded_error", "busy", retry_after=0))
    seen: list[int] = []

    async def on_progress(sent: int, total: int) -> None:
        seen.append(sent)

    async with KimiClient(settings) as kimi:
        await kimi.upload(media, on_progress)
    assert [u.status for u in fake_kimi.uploads] == [503, 200]
    assert seen == sorted(set(seen)) and seen[-1] == size


async def test_a_401_recovers_the_login_once_and_the_upload_is_sent_again(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store_issued_login(fake_kimi, home)
    settings = Settings(home=home, base_url=fake_kimi.base_url, oauth_host=fake_kimi.oauth_host)
    media = await inspect(write_media(tmp_path / "a.png", PNG_SIGNATURE, 2 * MiB), settings)
    fake_kimi.oauth.revoke_access()  # the stored access token is dead; its refresh token still works
    async with KimiClient(settings) as kimi:
        uploaded = await kimi.upload(media)
    first, second = fake_kimi.uploads
    assert (first.status, second.status) == (401, 200)
    assert first.complete and second.complete and second.size == media.size  # the body was rebuilt, whole
    assert first.headers["authorization"] != second.headers["authorization"]
    assert fake_kimi.count("/api/oauth/token", grant_type="refresh_token") == 1
    assert uploaded.id == second.file_id


async def test_a_rejected_api_key_is_one_attempt_and_a_clear_error(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = Settings(api_key="sk-kimi-revoked", home=tmp_path / "home", base_url=fake_kimi.base_url)
    media = inspect_data(PNG_SIGNATURE + b"x" * 100, max_bytes=1000, claimed_mime=None)
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.Unauthorized) as caught:
            await kimi.upload(media)
    assert [u.status for u in fake_kimi.uploads] == [401]
    assert "KIMI_API_KEY" in str(caught.value) and "sk-kimi-revoked" not in str(caught.value)


async def test_413_is_a_readable_error_naming_the_file_and_its_size(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    path = write_media(tmp_path / "long.mp4", MP4_HEAD, 3 * MiB + 5)
    media = await inspect(path, settings)
    fake_kimi.script_upload(Fault.too_large())
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.UploadTooLarge) as caught:
            await kimi.upload(media)
    message = str(caught.value)
    assert str(path) in message and f"{3 * MiB + 5:,} bytes" in message and "413" in message
    assert "Nothing was stored" in message
    assert len(fake_kimi.uploads) == 1 and not fake_kimi.files  # never retried


async def test_transient_faults_are_retried_up_to_the_limit(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home", KIMI_MCP_MAX_RETRIES="2")
    media = inspect_data(PNG_SIGNATURE + b"y" * 5000, max_bytes=10_000, claimed_mime="image/png")
    fake_kimi.script_upload(
        Fault(503, "overloaded_error", "try later", retry_after=0),
        Fault(429, "rate_limit_reached_error", "slow down", retry_after=0),
    )
    async with KimiClient(settings) as kimi:
        uploaded = await kimi.upload(media)
        assert [u.status for u in fake_kimi.uploads] == [503, 429, 200]
        assert uploaded.id == fake_kimi.uploads[-1].file_id

        fake_kimi.script_upload(*[Fault(502, "api_error", "bad gateway", retry_after=0)] * 3)
        with pytest.raises(errors.ServiceUnavailable) as caught:
            await kimi.upload(media)
    assert [u.status for u in fake_kimi.uploads[3:]] == [502, 502, 502]  # 1 + KIMI_MCP_MAX_RETRIES, no more
    assert "bad gateway" in str(caught.value)


async def test_the_busy_403_is_retried_and_a_dropped_connection_too(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    media = inspect_data(MP4_HEAD + b"z" * 5000, max_bytes=10_000, claimed_mime=None)
    fake_kimi.script_upload(Fault.busy(retry_after=0), Fault(500, drop_connection=True))
    async with KimiClient(settings) as kimi:
        uploaded = await kimi.upload(media)
    assert len(fake_kimi.uploads) == 3 and fake_kimi.uploads[-1].file_id == uploaded.id


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(429, "rate_limit_reached_error", "wait", retry_after=3600), errors.RateLimited),
        (Fault(429, "exceeded_current_quota_error", "quota used up"), errors.QuotaExceeded),
        (Fault(400, "invalid_request_error", "unsupported purpose"), errors.BadRequest),
    ],
)
async def test_faults_that_retrying_cannot_fix_are_not_retried(
    fake_kimi: FakeKimi, tmp_path: Path, fault: Fault, error: type[Exception]
) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    media = inspect_data(PNG_SIGNATURE + b"q" * 100, max_bytes=1000, claimed_mime=None)
    fake_kimi.script_upload(fault)
    async with KimiClient(settings) as kimi:
        with pytest.raises(error):
            await kimi.upload(media)
    assert len(fake_kimi.uploads) == 1


async def test_a_file_that_changed_since_its_check_is_not_uploaded(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home")
    path = write_media(tmp_path / "growing.mp4", MP4_HEAD, 3 * MiB)
    media = await inspect(path, settings)
    with path.open("r+b") as file:
        file.truncate(2 * MiB)
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.MediaChanged) as caught:
            await kimi.upload(media)
    assert str(path) in str(caught.value)
    assert not fake_kimi.files  # Kimi never got a complete body, so it gave no id


@pytest.mark.parametrize(
    "answer",
    [b"<html>ok</html>", b"[]", b'{"object": "file"}', b'{"id": "x y"}', b'{"id": 7}', b'{"id": "f1", "bytes": 3}'],
)
def test_an_answer_without_a_usable_file_object_is_a_clear_error(answer: bytes) -> None:
    media = inspect_data(PNG_SIGNATURE + b"p" * 92, max_bytes=1000, claimed_mime=None)
    with pytest.raises(errors.UploadAnswerMalformed) as caught:
        files_api.uploaded_file(httpx2.Response(201, content=answer), media)
    assert "201" in str(caught.value) and "nothing was stored" in str(caught.value)
    good = httpx2.Response(201, content=json.dumps({"id": "file-abc.1", "object": "file", "bytes": 100}).encode())
    assert files_api.uploaded_file(good, media) == files_api.UploadedFile("file-abc.1", 100)


def test_references_round_trip() -> None:
    assert files_api.UploadedFile("fakefile000001", 5).reference == "ms://fakefile000001"
    assert files_api.file_id_of("ms://fakefile000001") == "fakefile000001"
    for bad in ("fakefile000001", "ms://", "ms://a b", "https://x/y", "ms://../etc"):
        assert files_api.file_id_of(bad) is None


async def test_an_upload_waits_for_a_concurrency_slot_within_the_timeout(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home", KIMI_MCP_MAX_CONCURRENCY="1", KIMI_MCP_TIMEOUT="0.5")
    media = inspect_data(PNG_SIGNATURE + b"s" * 100, max_bytes=1000, claimed_mime=None)
    async with KimiClient(settings) as kimi:
        slots = kimi._slot_pool()
        await slots.acquire()  # a chat holds the only slot
        with pytest.raises(errors.ServiceUnavailable) as caught:
            await kimi.upload(media)
        assert "no free slot" in str(caught.value) and "KIMI_MCP_MAX_CONCURRENCY" in str(caught.value)
        assert not fake_kimi.uploads
        slots.release()
        await kimi.upload(media)  # and once it is free, the upload goes through
    assert len(fake_kimi.uploads) == 1


async def test_an_upload_that_stalls_ends_at_the_timeout(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(fake_kimi, tmp_path / "home", KIMI_MCP_TIMEOUT="1")
    checked = inspect_data(PNG_SIGNATURE + b"t" * 100, max_bytes=1000, claimed_mime=None)

    class StalledMedia(LocalMedia):
        async def chunks(self, chunk_size: int = MiB) -> AsyncIterator[bytes]:
            yield PNG_SIGNATURE
            await anyio.sleep_forever()  # a disk that stops answering

    media = StalledMedia(checked.name, checked.media_type, checked.size, checked.sha256, data=checked.data)
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.ServiceUnavailable) as caught:
            await kimi.upload(media)
        assert "the upload of the inline data did not finish within 1 s" in str(caught.value)
        assert kimi._slot_pool().value == settings.max_concurrency  # the slot was given back
    assert not fake_kimi.files


_MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from functools import partial
    from pathlib import Path
    import anyio
    from kimi_mcp.kimi.client import KimiClient
    from kimi_mcp.kimi.media import inspect_path
    from kimi_mcp.settings import Settings

    def peak_kib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    async def main():
        settings = Settings.from_env()
        check = partial(inspect_path, max_bytes=settings.max_media_bytes)
        steps = []
        async def progress(sent, total):
            steps.append(sent)
        async with KimiClient(settings) as kimi:
            await kimi.upload(await anyio.to_thread.run_sync(check, Path(sys.argv[2])))  # imports, pool: warm
            before = peak_kib()
            media = await anyio.to_thread.run_sync(check, Path(sys.argv[1]))
            uploaded = await kimi.upload(media, progress)
            after = peak_kib()
        print(json.dumps({"before_kib": before, "after_kib": after, "id": uploaded.id, "steps": len(steps),
                          "last": steps[-1], "sha256": media.sha256}))

    anyio.run(main)
    """
)


async def test_a_200_mb_upload_keeps_memory_flat(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    size = 200_000_000
    big = tmp_path / "long-recording.mp4"
    with big.open("wb") as file:  # sparse: a valid mp4 head, then a hole
        file.write(MP4_HEAD)
        file.truncate(size)
    small = write_media(tmp_path / "warm-up.png", PNG_SIGNATURE, 1000)
    env = {
        "KIMI_API_KEY": DEFAULT_API_KEY,
        "KIMI_CODE_BASE_URL": fake_kimi.base_url,
        "KIMI_MCP_HOME": str(tmp_path / "home"),
        "KIMI_MCP_MAX_MEDIA_BYTES": str(300_000_000),  # raised: the default 100 MB would refuse the file
        "PATH": "/usr/bin:/bin",
    }
    # A fresh process: the peaks of earlier tests in this one would hide any growth.
    done = await anyio.run_process([sys.executable, "-c", _MEASURE, str(big), str(small)], env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)
    growth_mib = (result["after_kib"] - result["before_kib"]) / 1024
    print(f"RSS growth uploading {size:,} bytes: {growth_mib:.1f} MiB")
    assert growth_mib < 64, f"peak RSS grew {growth_mib:.1f} MiB while uploading a {size:,}-byte file"
    seen = fake_kimi.uploads[-1]
    assert (seen.size, seen.sha256, seen.file_id) == (size, result["sha256"], result["id"])
    assert result["last"] == size and result["steps"] <= 101


@pytest.mark.parametrize(("given", "said"), [(10, "now 10"), (500, "now more")])
async def test_a_source_that_gives_other_than_its_size_stops_the_body(given: int, said: str) -> None:
    checked = inspect_data(PNG_SIGNATURE + bytes(100), max_bytes=1000, claimed_mime=None)

    class WrongSize(LocalMedia):
        async def chunks(self, chunk_size: int = MiB) -> AsyncIterator[bytes]:
            yield PNG_SIGNATURE + bytes(given - len(PNG_SIGNATURE))

    media = WrongSize(checked.name, checked.media_type, checked.size, checked.sha256, data=checked.data)
    parts: list[bytes] = []
    with pytest.raises(errors.MediaChanged, match=f"108 bytes when checked, {said}"):
        async for part in files_api.MultipartBody(media).stream():
            parts.append(part)
    assert not parts[-1].endswith(b"--\r\n")  # the closing boundary never went out
