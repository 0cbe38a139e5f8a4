"""Media: the type by magic bytes (docs/kimi-api.md §7), limits checked before reading, sha256 and chunked reads.

The header samples are built here byte by byte, the smallest each format's signature needs.
"""

from __future__ import annotations

import base64
import hashlib
import random
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from kimi_mcp.access import open_regular
from kimi_mcp.errors import (
    MediaChanged,
    MediaEmpty,
    MediaRefused,
    MediaTooLarge,
    MediaTypeMismatch,
    MediaTypeUnsupported,
)
from kimi_mcp.kimi import media
from kimi_mcp.kimi.media import (
    MEDIA_TYPES,
    SNIFF_BYTES,
    LocalMedia,
    decode_base64,
    detect,
    inspect_data,
    inspect_path,
    media_type_for_mime,
)

MiB = 1 << 20


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08free"


def ebml(doctype: bytes, *, long_size: bool = False) -> bytes:
    """An EBML header as mkvmerge writes it: version fields, then DocType, then the Segment's start."""
    children = (
        b"\x42\x86\x81\x01"  # EBMLVersion 1
        b"\x42\xf7\x81\x01"  # EBMLReadVersion 1
        b"\x42\xf2\x81\x04"  # EBMLMaxIDLength 4
        b"\x42\xf3\x81\x08"  # EBMLMaxSizeLength 8
        + b"\x42\x82"
        + bytes([0x80 | len(doctype)])
        + doctype
        + b"\x42\x87\x81\x04"  # DocTypeVersion 4
        b"\x42\x85\x81\x02"  # DocTypeReadVersion 2
    )
    size = b"\x01" + len(children).to_bytes(7, "big") if long_size else bytes([0x80 | len(children)])
    return b"\x1a\x45\xdf\xa3" + size + children + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"


def riff(form: bytes) -> bytes:
    return b"RIFF" + (1000).to_bytes(4, "little") + form + b"LIST\x04\x00\x00\x00"


TS_PACKET = b"\x47\x40\x00\x10" + bytes(184)

SAMPLES = {
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", "image/jpeg"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00", "image/png"),
    "gif87a": (b"GIF87a\x01\x00\x01\x00\x80\x00\x00", "image/gif"),
    "gif89a": (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", "image/gif"),
    "webp": (riff(b"WEBP"), "image/webp"),
    "mp4 isom": (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
    "mp4 mp42": (ftyp(b"mp42", b"mp42", b"isom"), "video/mp4"),
    "m4v": (ftyp(b"M4V ", b"M4V ", b"M4A ", b"mp42"), "video/mp4"),
    "dash": (ftyp(b"dash", b"iso6", b"mp41"), "video/mp4"),
    "mov": (ftyp(b"qt  ", b"qt  "), "video/quicktime"),
    "mov before ftyp": (b"\x00\x00\x00\x08wide\x00\x10\x00\x00mdat", "video/quicktime"),
    "3gp": (ftyp(b"3gp5", b"3gp5", b"isom"), "video/3gpp"),
    "3g2": (ftyp(b"3g2a", b"3g2a"), "video/3gpp"),
    "webm": (ebml(b"webm"), "video/webm"),
    "mkv": (ebml(b"matroska"), "video/x-matroska"),
    "mkv 8-byte sizes": (ebml(b"matroska", long_size=True), "video/x-matroska"),
    "mpeg program stream": (b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x01\x89\xc3\xf8", "video/mpeg"),
    "mpeg video stream": (b"\x00\x00\x01\xb3\x14\x00\xf0\x13\xff\xff\xe0\x18", "video/mpeg"),
    "mpeg transport stream": (TS_PACKET * 3, "video/mpeg"),
    "avi": (riff(b"AVI "), "video/x-msvideo"),
    "flv": (b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00", "video/x-flv"),
}

NOT_MEDIA = {
    "text": b"Hello, Kimi. This is a plain text file.\n",
    "text that starts like a box": b"abcdftypisom and more text after it",
    "json": b'{"moov": "mdat", "ftyp": "isom"}',
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
    "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
    "elf": b"\x7fELF\x02\x01\x01\x00" + bytes(8),
    "wav": riff(b"WAVE"),
    "heic": ftyp(b"heic", b"mif1", b"heic"),
    "avif": ftyp(b"avif", b"avif", b"mif1"),
    "m4a audio": ftyp(b"M4A ", b"M4A ", b"mp42"),
    "ftyp with a bad size": b"\x00\x00\x00\x0bftypisom\x00\x00\x02\x00",
    "ebml of another doctype": ebml(b"other"),
    "two ts packets": TS_PACKET * 2,
    "ts packets then something else": TS_PACKET * 3 + b"\x00" * 200,
    "truncated jpeg": b"\xff\xd8",
    "truncated gif": b"GIF8",
    "empty": b"",
}


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# -- detection ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_each_supported_type_is_detected_from_its_header(name: str) -> None:
    head, mime = SAMPLES[name]
    detected = detect(head)
    assert detected is not None and detected.mime_type == mime
    # A longer head changes nothing (a transport stream goes on with more packets, not with zeros).
    longer = TS_PACKET * 30 if name == "mpeg transport stream" else head + bytes(SNIFF_BYTES)
    assert detect(longer[:SNIFF_BYTES]) == detected


@pytest.mark.parametrize("name", NOT_MEDIA)
def test_other_content_is_not_detected(name: str) -> None:
    assert detect(NOT_MEDIA[name]) is None


def test_random_bytes_are_not_detected() -> None:
    for seed in range(200):
        assert detect(random.Random(seed).randbytes(SNIFF_BYTES)) is None, seed


def test_the_type_table_matches_the_services_list() -> None:
    # docs/kimi-api.md §7: images jpeg png gif webp; video mp4 mpeg mov webm mkv avi flv 3gp.
    assert {(t.kind, t.extension) for t in MEDIA_TYPES} == {
        *(("image", e) for e in ("jpg", "png", "gif", "webp")),
        *(("video", e) for e in ("mp4", "mpeg", "mov", "webm", "mkv", "avi", "flv", "3gp")),
    }
    for sample, mime in SAMPLES.values():
        assert media_type_for_mime(mime) == detect(sample)


def test_media_type_for_mime_knows_aliases_and_ignores_case_and_parameters() -> None:
    assert media_type_for_mime("image/jpg") == media_type_for_mime("image/jpeg")
    assert media_type_for_mime(" Image/PNG; charset=binary ") == media_type_for_mime("image/png")
    assert media_type_for_mime("video/mov") == media_type_for_mime("video/quicktime")
    assert media_type_for_mime("video/x-mkv") == media_type_for_mime("video/x-matroska")
    for unknown in ("application/pdf", "text/plain", "image/heic", "audio/mp4", ""):
        assert media_type_for_mime(unknown) is None


# -- files -------------------------------------------------------------------------------------------------------


def test_inspect_path_types_by_content_and_hashes_the_whole_file(tmp_path: Path) -> None:
    content = ftyp(b"isom", b"isom") + random.Random(1).randbytes(3 * MiB + 12345)
    path = write(tmp_path / "named-like-an-image.png", content)
    found = inspect_path(path, max_bytes=10 * MiB, name="clip as given")
    assert found.media_type.mime_type == "video/mp4"
    assert (found.size, found.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert (found.name, found.path, found.data) == ("clip as given", path, None)
    assert inspect_path(path, max_bytes=10 * MiB).name == str(path)


def test_inspect_path_refuses_an_empty_file(tmp_path: Path) -> None:
    with pytest.raises(MediaEmpty, match="empty"):
        inspect_path(write(tmp_path / "empty.png", b""), max_bytes=MiB)


def test_inspect_path_refuses_unsupported_content_and_says_what_it_looks_like(tmp_path: Path) -> None:
    with pytest.raises(MediaTypeUnsupported) as info:
        inspect_path(write(tmp_path / "notes.png", NOT_MEDIA["text"]), max_bytes=MiB)
    assert "looks like text" in str(info.value) and "notes.png" in str(info.value)
    with pytest.raises(MediaTypeUnsupported, match="PDF"):
        inspect_path(write(tmp_path / "doc.mp4", NOT_MEDIA["pdf"]), max_bytes=MiB)
    with pytest.raises(MediaTypeUnsupported, match="match no supported format"):
        inspect_path(write(tmp_path / "noise.gif", random.Random(2).randbytes(5000)), max_bytes=MiB)


@pytest.mark.parametrize(
    ("sample", "looks_like"),
    [
        ("heic", "a HEIF or AVIF image"),
        ("m4a audio", "audio-only MP4"),
        ("zip", "a ZIP archive"),
        ("elf", "an executable"),
    ],
)
def test_a_refusal_says_what_the_content_looks_like(sample: str, looks_like: str) -> None:
    with pytest.raises(MediaTypeUnsupported, match=f"it looks like {looks_like}"):
        inspect_data(NOT_MEDIA[sample], max_bytes=MiB, claimed_mime=None)


class SpyFile:
    """Wraps a file from open_regular and records every read, so a test can tell what was read and when."""

    def __init__(self, inner: BinaryIO, reads: list[int]) -> None:
        self._inner = inner
        self.reads = reads

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        return self._inner.read(size)

    def fileno(self) -> int:
        return self._inner.fileno()

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> SpyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every read inspect_path and LocalMedia.chunks make (a read of everything is -1)."""
    sizes: list[int] = []

    def spy_open(path: Path) -> BinaryIO:
        return SpyFile(open_regular(path), sizes)  # type: ignore[return-value]

    monkeypatch.setattr(media, "open_regular", spy_open)
    return sizes


def sparse_mp4(path: Path, size: int) -> Path:
    """A valid mp4 head, then zeros up to `size` that take no disk space."""
    with path.open("wb") as file:
        file.write(ftyp(b"isom", b"isom", b"mp41"))
        file.truncate(size)
    return path


def test_an_oversized_file_is_refused_before_any_content_is_read(tmp_path: Path, reads: list[int]) -> None:
    path = sparse_mp4(tmp_path / "huge.mp4", 300_000_000)
    with pytest.raises(MediaTooLarge) as info:
        inspect_path(path, max_bytes=100_000_000)
    assert (info.value.size, info.value.limit) == (300_000_000, 100_000_000)
    assert "300,000,000" in str(info.value) and "KIMI_MCP_MAX_MEDIA_BYTES" in str(info.value)
    assert reads == []  # not even the head
    # The same spy sees the reads when the file is allowed, so the empty list above means something.
    inspect_path(sparse_mp4(tmp_path / "ok.mp4", 3 * MiB), max_bytes=100_000_000)
    assert reads


def test_hashing_a_large_file_keeps_memory_flat(tmp_path: Path, reads: list[int]) -> None:
    size = 64 * MiB + 4321
    path = sparse_mp4(tmp_path / "long.mp4", size)
    tracemalloc.start()
    try:
        found = inspect_path(path, max_bytes=size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with path.open("rb") as file:
        assert found.sha256 == hashlib.file_digest(file, "sha256").hexdigest()
    assert peak < 8 * MiB, f"inspect_path held {peak:,} bytes at once for a {size:,}-byte file"
    assert sum(reads) == size and all(0 < n <= 4 * MiB for n in reads)


# -- reading the content back ------------------------------------------------------------------------------------


async def collect(found: LocalMedia, chunk_size: int) -> list[bytes]:
    return [chunk async for chunk in found.chunks(chunk_size)]


@pytest.mark.anyio
async def test_chunks_of_a_file_reassemble_to_its_content(tmp_path: Path) -> None:
    content = SAMPLES["png"][0] + random.Random(3).randbytes(5 * MiB + 7)
    found = inspect_path(write(tmp_path / "a.png", content), max_bytes=10 * MiB)
    chunks = await collect(found, 1 << 16)
    assert b"".join(chunks) == content
    assert max(map(len, chunks)) == 1 << 16
    assert await found.read_all() == content


@pytest.mark.anyio
async def test_chunks_of_inline_data_are_its_slices() -> None:
    content = SAMPLES["gif89a"][0] + bytes(1000)
    found = inspect_data(content, max_bytes=MiB, claimed_mime=None)
    chunks = await collect(found, 300)
    assert [len(c) for c in chunks] == [300, 300, 300, 113]
    assert b"".join(chunks) == content and await found.read_all() == content


@pytest.mark.anyio
async def test_chunks_stop_before_the_last_chunk_when_the_content_changed(tmp_path: Path) -> None:
    content = SAMPLES["png"][0] + bytes(2 * MiB)
    path = write(tmp_path / "a.png", content)
    found = inspect_path(path, max_bytes=10 * MiB)
    with path.open("r+b") as file:  # same size, one byte different in the second half
        file.seek(len(content) - 10)
        file.write(b"\x01")
    given: list[bytes] = []
    with pytest.raises(MediaChanged, match="no longer what was checked"):
        async for chunk in found.chunks(MiB + 100):
            given.append(chunk)
    assert len(given) == 1  # the consumer never got a complete body to send under the old sha256


@pytest.mark.anyio
async def test_chunks_refuse_a_file_that_shrank_and_send_only_the_checked_bytes_of_one_that_grew(
    tmp_path: Path,
) -> None:
    content = SAMPLES["jpeg"][0] + bytes(100_000)
    path = write(tmp_path / "a.jpg", content)
    found = inspect_path(path, max_bytes=MiB)
    with path.open("ab") as file:
        file.write(b"appended later")
    assert b"".join(await collect(found, 4096)) == content
    path.write_bytes(content[:5000])
    with pytest.raises(MediaChanged, match="100,020 bytes when checked"):
        await found.read_all()
    path.unlink()
    with pytest.raises(MediaChanged, match="no such file"):
        await found.read_all()


def test_local_media_holds_exactly_one_source(tmp_path: Path) -> None:
    jpeg = media_type_for_mime("image/jpeg")
    assert jpeg is not None
    with pytest.raises(ValueError):
        LocalMedia("x", jpeg, 1, "0" * 64)
    with pytest.raises(ValueError):
        LocalMedia("x", jpeg, 1, "0" * 64, path=tmp_path, data=b"x")


# -- inline data -------------------------------------------------------------------------------------------------


def test_inspect_data_accepts_the_claimed_type_and_its_aliases() -> None:
    content = SAMPLES["jpeg"][0]
    for claimed in (None, "image/jpeg", "image/jpg", "IMAGE/JPEG"):
        found = inspect_data(content, max_bytes=MiB, claimed_mime=claimed)
        assert found.media_type.mime_type == "image/jpeg"
        assert (found.data, found.path, found.name) == (content, None, "the inline data")
        assert found.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    ("content", "claimed", "detected"),
    [
        (SAMPLES["png"][0], "image/jpeg", "image/png"),
        (SAMPLES["mov"][0], "video/mp4", "video/quicktime"),
        (NOT_MEDIA["text"], "image/png", "text"),
        (NOT_MEDIA["zip"], "video/mp4", "a ZIP archive"),
    ],
)
def test_bytes_that_are_not_the_claimed_type_are_refused(content: bytes, claimed: str, detected: str) -> None:
    with pytest.raises(MediaTypeMismatch) as info:
        inspect_data(content, max_bytes=MiB, claimed_mime=claimed)
    assert claimed in str(info.value) and detected in str(info.value)


def test_inspect_data_refuses_unknown_claims_unsupported_content_empty_and_oversized_data() -> None:
    with pytest.raises(MediaTypeUnsupported, match="application/pdf"):
        inspect_data(NOT_MEDIA["pdf"], max_bytes=MiB, claimed_mime="application/pdf")
    with pytest.raises(MediaTypeUnsupported, match="looks like text"):
        inspect_data(NOT_MEDIA["text"], max_bytes=MiB, claimed_mime=None, name="the pasted data")
    with pytest.raises(MediaEmpty, match="the inline data is empty"):
        inspect_data(b"", max_bytes=MiB, claimed_mime="image/png")
    with pytest.raises(MediaTooLarge):
        inspect_data(SAMPLES["png"][0] + bytes(100), max_bytes=100, claimed_mime=None)


# -- base64 ------------------------------------------------------------------------------------------------------


def test_decode_base64_accepts_whitespace_and_a_data_url() -> None:
    content = SAMPLES["png"][0] + bytes(range(256))
    encoded = base64.b64encode(content).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert decode_base64(f"  {wrapped}\n", max_bytes=MiB) == content
    assert decode_base64(f"data:image/png;base64,{encoded}", max_bytes=MiB) == content
    assert decode_base64(f"DATA:image/png;name=a.png;base64,{encoded}", max_bytes=MiB) == content


@pytest.mark.parametrize(
    "text",
    ["not base64!", "=QUJD", "QQ==QUJD", "QUJDRA", "QU-D", "Q\u00e9JD", "data:image/png,QUJD", "data:image/png;base64"],
)
def test_decode_base64_refuses_malformed_input(text: str) -> None:
    with pytest.raises(MediaRefused, match="not valid base64"):
        decode_base64(text, max_bytes=MiB)


def test_decode_base64_refuses_oversized_input_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded = base64.b64encode(bytes(3000)).decode()
    decoded: list[object] = []
    real: Callable[..., bytes] = base64.b64decode
    monkeypatch.setattr(media.base64, "b64decode", lambda *a, **k: decoded.append(a) or real(*a, **k))
    with pytest.raises(MediaTooLarge) as info:
        decode_base64(encoded, max_bytes=2999)
    assert (info.value.size, decoded) == (3000, [])
    assert len(decode_base64(encoded, max_bytes=3000)) == 3000 and decoded
