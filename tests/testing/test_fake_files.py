"""The fake Kimi's Files API over real HTTP: uploads streamed and recorded, ms:// references checked, 413s."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from kimi_mcp.testing.fake_kimi import MESSAGES_BODY_LIMIT, FakeKimi, Fault, Reply

pytestmark = pytest.mark.anyio

AUTH = {"authorization": "Bearer sk-kimi-test-key"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
BOUNDARY = "kimi-test-boundary-0123456789"


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=60) as client:
        yield client


async def _upload(
    http: httpx2.AsyncClient,
    fake: FakeKimi,
    data: bytes = PNG,
    *,
    purpose: str = "image",
    filename: str = "upload.png",
    mime: str = "image/png",
    headers: dict[str, str] = AUTH,
) -> httpx2.Response:
    files = {"file": (filename, data, mime)}
    return await http.post(f"{fake.base_url}/v1/files", data={"purpose": purpose}, files=files, headers=headers)


def _multipart(*parts: tuple[str, bytes, str | None], close: bool = True) -> bytes:
    """A multipart/form-data body by hand: (field name, content, filename or None) in the order given."""
    body = b""
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        body += b"Content-Type: video/mp4\r\n" if filename else b""
        body += b"\r\n" + content + b"\r\n"
    return body + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


async def _post_raw(http: httpx2.AsyncClient, fake: FakeKimi, body: bytes) -> httpx2.Response:
    headers = {**AUTH, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    return await http.post(f"{fake.base_url}/v1/files", content=body, headers=headers)


def _chat(*content: dict[str, Any], text: str = "what is in the picture?") -> dict[str, Any]:
    blocks = [*content, {"type": "text", "text": text}]
    return {"model": "kimi-for-coding", "max_tokens": 64, "messages": [{"role": "user", "content": blocks}]}


def _image(reference: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "url", "url": reference}}


async def _messages(http: httpx2.AsyncClient, fake: FakeKimi, body: dict[str, Any]) -> httpx2.Response:
    return await http.post(f"{fake.base_url}/v1/messages", json=body, headers=AUTH)


async def test_upload_is_recorded_and_answered_with_a_file_object(
    fake_kimi: FakeKimi, http: httpx2.AsyncClient
) -> None:
    response = await _upload(http, fake_kimi, headers={**AUTH, "user-agent": "kimi-mcp/test"})
    assert response.status_code == 200
    answer = response.json()
    assert isinstance(answer.pop("created_at"), int)
    assert answer == {
        "id": "fakefile000001",
        "object": "file",
        "bytes": len(PNG),
        "filename": "upload.png",
        "purpose": "image",
    }
    [upload] = fake_kimi.uploads
    assert upload.fields == ["purpose", "file"]
    assert (upload.filename, upload.content_type, upload.purpose) == ("upload.png", "image/png", "image")
    assert upload.size == len(PNG) and upload.sha256 == hashlib.sha256(PNG).hexdigest()
    assert upload.headers["authorization"] == AUTH["authorization"]
    assert upload.headers["user-agent"] == "kimi-mcp/test"
    assert (upload.file_id, upload.status, upload.complete) == ("fakefile000001", 200, True)
    assert upload.reference == "ms://fakefile000001"
    assert fake_kimi.files == {"fakefile000001": upload}

    [request] = fake_kimi.requests
    assert (request.method, request.path, request.status) == ("POST", "/coding/v1/files", 200)
    assert request.body == b"" and request.body_size == int(request.headers["content-length"]) > len(PNG)
    assert fake_kimi.count("/v1/files") == 1

    # The same bytes again get a new id, as on the service: caching ids is the client's job.
    again = await _upload(http, fake_kimi, b"\x00\x00\x00\x18ftypmp42", purpose="video", filename="upload.mp4")
    assert again.json()["id"] == "fakefile000002" and again.json()["purpose"] == "video"
    assert list(fake_kimi.files) == ["fakefile000001", "fakefile000002"]


async def test_field_order_is_recorded_as_sent(fake_kimi: FakeKimi, http: httpx2.AsyncClient) -> None:
    body = _multipart(("file", b"movie", "upload.mp4"), ("purpose", b"video", None), ("extra", b"x", None))
    response = await _post_raw(http, fake_kimi, body)
    assert response.status_code == 200 and response.json()["bytes"] == 5
    [upload] = fake_kimi.uploads
    assert upload.fields == ["file", "purpose", "extra"]
    assert (upload.filename, upload.content_type, upload.purpose) == ("upload.mp4", "video/mp4", "video")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_multipart(("purpose", b"image", None)), "missing multipart field: file"),
        (_multipart(("file", b"png", "upload.png")), "missing multipart field: purpose"),
        (_multipart(("purpose", b"file-extract", None), ("file", b"png", "a.png")), "invalid purpose 'file-extract'"),
        (_multipart(("purpose", b"image", None), ("file", b"a", "a.png"), ("file", b"b", "b.png")), "only one file"),
        (_multipart(("purpose", b"image", None), ("file", b"png" * 1000, "a.png"), close=False), "malformed"),
    ],
)
async def test_bad_uploads_are_refused_with_400(
    fake_kimi: FakeKimi, http: httpx2.AsyncClient, body: bytes, message: str
) -> None:
    fake_kimi.script_upload(Fault.too_large())
    response = await _post_raw(http, fake_kimi, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and message in error["message"]
    assert fake_kimi.uploads[0].status == 400 and fake_kimi.uploads[0].file_id is None and fake_kimi.files == {}
    assert (await _upload(http, fake_kimi)).status_code == 413  # the scripted fault waited for a valid upload


async def test_a_body_that_is_not_multipart_is_refused(fake_kimi: FakeKimi, http: httpx2.AsyncClient) -> None:
    response = await http.post(f"{fake_kimi.base_url}/v1/files", json={"purpose": "image"}, headers=AUTH)
    assert response.status_code == 400 and "multipart/form-data" in response.json()["error"]["message"]
    assert fake_kimi.uploads[0].fields == [] and fake_kimi.requests[0].body_size > 0


async def test_uploads_need_a_bearer_token(fake_kimi: FakeKimi, http: httpx2.AsyncClient) -> None:
    fake_kimi.script_upload(Fault(500))
    assert (await _upload(http, fake_kimi, headers={})).status_code == 401
    key_only = await _upload(http, fake_kimi, headers={"x-api-key": "sk-kimi-test-key"})
    assert key_only.status_code == 401 and key_only.json()["error"]["message"] == "invalid x-api-key"
    wrong = await _upload(http, fake_kimi, headers={"authorization": "Bearer sk-kimi-wrong"})
    assert wrong.json() == {"type": "error", "error": {"type": "authentication_error", "message": "invalid token"}}
    assert [u.status for u in fake_kimi.uploads] == [401, 401, 401]
    assert all(u.complete and u.size == len(PNG) for u in fake_kimi.uploads)  # the body was read, not cut off
    assert fake_kimi.files == {}
    assert (await _upload(http, fake_kimi)).status_code == 500  # the fault was kept for an authorised upload


async def test_scripted_upload_faults_come_in_order_then_uploads_succeed(
    fake_kimi: FakeKimi, http: httpx2.AsyncClient
) -> None:
    fake_kimi.script(Reply(text="for messages only"))
    fake_kimi.script_upload(
        Fault.too_large("file exceeds the upload limit"),
        Fault(503, "overloaded_error", "busy", retry_after=3),
        Fault.nginx_too_large(),
    )
    big = bytes(3 << 20)
    too_large = await _upload(http, fake_kimi, big, purpose="video", filename="upload.mp4", mime="video/mp4")
    assert too_large.status_code == 413
    assert too_large.json()["error"] == {"type": "request_too_large", "message": "file exceeds the upload limit"}
    busy = await _upload(http, fake_kimi)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "3"
    nginx = await _upload(http, fake_kimi)
    assert nginx.status_code == 413 and nginx.headers["content-type"].startswith("text/html")
    assert "413 Request Entity Too Large" in nginx.text
    ok = await _upload(http, fake_kimi)
    assert ok.status_code == 200 and ok.json()["id"] == "fakefile000001"

    assert [(u.status, u.file_id) for u in fake_kimi.uploads] == [
        (413, None),
        (503, None),
        (413, None),
        (200, "fakefile000001"),
    ]
    assert fake_kimi.uploads[0].size == len(big)
    message = (await _messages(http, fake_kimi, _chat())).json()
    assert message["content"][0]["text"] == "for messages only"  # the messages script was left alone


async def test_dropped_upload_connection_gets_no_response(fake_kimi: FakeKimi, http: httpx2.AsyncClient) -> None:
    fake_kimi.script_upload(Fault(500, drop_connection=True))
    with pytest.raises(httpx2.TransportError):
        await _upload(http, fake_kimi)
    assert fake_kimi.uploads[0].status is None and fake_kimi.files == {}
    assert (await _upload(http, fake_kimi)).status_code == 200


async def test_media_references_must_name_known_files(fake_kimi: FakeKimi, http: httpx2.AsyncClient) -> None:
    first = (await _upload(http, fake_kimi)).json()["id"]
    second = (await _upload(http, fake_kimi)).json()["id"]
    video = {"type": "video", "source": {"type": "url", "url": f"ms://{second}"}}
    inline = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    assert (await _messages(http, fake_kimi, _chat(_image(f"ms://{first}"), video, inline))).status_code == 200

    fake_kimi.script(Reply(text="kept for a valid request"))
    fake_kimi.forget_file(f"ms://{second}")
    assert set(fake_kimi.files) == {first}
    refused = await _messages(http, fake_kimi, _chat(_image(f"ms://{first}"), video))
    assert refused.status_code == 400
    assert refused.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": f"file not found: ms://{second}"},
    }

    # Anywhere in the messages: inside a tool result, and as the OpenAI wire's parts.
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": [_image("ms://fakefile999999")]}
    openai_image = {"type": "image_url", "image_url": {"url": "ms://fakefile999998"}}
    openai_video = {"type": "video_url", "video_url": {"url": f"ms://{second}"}}
    for part, missing in [
        (tool_result, "ms://fakefile999999"),
        (openai_image, "ms://fakefile999998"),
        (openai_video, f"ms://{second}"),
    ]:
        response = await _messages(http, fake_kimi, _chat(part))
        assert response.json()["error"]["message"] == f"file not found: {missing}"
    assert fake_kimi.messages_requests()[-1].status == 400

    answer = await _messages(http, fake_kimi, _chat({"type": "image_url", "image_url": {"url": f"ms://{first}"}}))
    assert answer.json()["content"][0]["text"] == "kept for a valid request"
    with pytest.raises(KeyError):
        fake_kimi.forget_file(second)


async def test_messages_body_over_the_cap_is_refused_with_413(fake_kimi: FakeKimi, http: httpx2.AsyncClient) -> None:
    fake_kimi.script(Reply(text="scripted"))
    empty = json.dumps(_chat(text="")).encode()

    def body_of(size: int) -> bytes:
        body = json.dumps(_chat(text="x" * (size - len(empty)))).encode()
        assert len(body) == size
        return body

    url = f"{fake_kimi.base_url}/v1/messages"
    json_auth = {**AUTH, "content-type": "application/json"}
    over = await http.post(url, content=body_of(MESSAGES_BODY_LIMIT + 1), headers=json_auth)
    assert over.status_code == 413 and over.json()["error"]["type"] == "request_too_large"
    assert str(MESSAGES_BODY_LIMIT + 1) in over.json()["error"]["message"]
    unauthenticated = await http.post(url, content=body_of(MESSAGES_BODY_LIMIT + 1))
    assert unauthenticated.status_code == 413  # the size is checked first, as by the proxy in front
    at_cap = await http.post(url, content=body_of(MESSAGES_BODY_LIMIT), headers=json_auth)
    assert at_cap.status_code == 200 and at_cap.json()["content"][0]["text"] == "scripted"


async def test_prompt_cache_prefix_includes_media_references(fake_kimi: FakeKimi, http: httpx2.AsyncClient) -> None:
    first = (await _upload(http, fake_kimi)).json()["id"]
    second = (await _upload(http, fake_kimi)).json()["id"]
    question = "describe every detail of this picture " * 100

    async def cache_read(reference: str) -> int:
        response = await _messages(http, fake_kimi, _chat(_image(reference), text=question))
        assert response.status_code == 200
        return response.json()["usage"]["cache_read_input_tokens"]

    assert await cache_read(f"ms://{first}") == 0
    assert await cache_read(f"ms://{first}") >= 768  # the same id replayed: the whole prefix hits
    assert await cache_read(f"ms://{second}") == 0  # another id for the same bytes: a miss from the start


_STATUS = Path("/proc/self/status")
_LARGE = 128 << 20


def _rss() -> int:
    line = next(line for line in _STATUS.read_text().splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def _zeros_sha256(size: int) -> str:
    digest, block = hashlib.sha256(), bytes(1 << 20)
    for _ in range(size // len(block)):
        digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def sparse_video(tmp_path: Path) -> Path:
    if not _STATUS.exists():
        pytest.skip("measures memory through /proc/self/status (Linux)")
    video = tmp_path / "big.mp4"
    with video.open("wb") as sparse:  # a hole reads as zeros: no disk space, no time to write
        sparse.truncate(_LARGE)
    return video


async def test_a_large_upload_streams_through_in_flat_memory(
    fake_kimi: FakeKimi, http: httpx2.AsyncClient, sparse_video: Path
) -> None:
    peak, done = _rss(), threading.Event()
    before = peak

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, _rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with sparse_video.open("rb") as file:  # httpx2 streams a file object in chunks
            files = {"file": ("upload.mp4", file, "video/mp4")}
            response = await http.post(
                f"{fake_kimi.base_url}/v1/files", data={"purpose": "video"}, files=files, headers=AUTH
            )
    finally:
        done.set()
        sampler.join()
    assert response.status_code == 200 and response.json()["bytes"] == _LARGE
    upload = fake_kimi.uploads[0]
    assert upload.size == _LARGE and upload.sha256 == _zeros_sha256(_LARGE)
    assert fake_kimi.requests[0].body_size > _LARGE
    # Client and fake share this process; either keeping the body would add 128 MiB.
    assert peak - before < 48 << 20, f"RSS grew by {(peak - before) >> 20} MiB during a 128 MiB upload"


async def test_curl_uploads_to_the_fake(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    """curl -F, as the P3 benchmark runs it; over 1 MiB curl first asks `Expect: 100-continue`."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    video = tmp_path / "clip.mp4"
    video.write_bytes(PNG * 1000)
    form = f"file=@{video};filename=upload.mp4;type=video/mp4"
    url = f"{fake_kimi.base_url}/v1/files"
    command = [curl, "-sS", "-F", "purpose=video", "-F", form, "-H", f"Authorization: {AUTH['authorization']}", url]
    result = await anyio.run_process(command)
    answer = json.loads(result.stdout)
    assert answer["id"] == "fakefile000001" and answer["bytes"] == len(PNG) * 1000
    upload = fake_kimi.uploads[0]
    assert (upload.fields, upload.filename, upload.content_type) == (["purpose", "file"], "upload.mp4", "video/mp4")
    assert upload.sha256 == hashlib.sha256(PNG * 1000).hexdigest()
