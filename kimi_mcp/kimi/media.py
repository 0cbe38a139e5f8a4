"""Images and videos for Kimi: the type by content, the size limit, and the bytes, hashed and read in chunks.

Kimi takes images jpeg, png, gif, webp and video mp4, mpeg, mov, webm, mkv, avi, flv, 3gp (docs/kimi-api.md §7).
The type is decided by the content's magic bytes, never by a file name or a caller's word: a mislabelled file is
refused here with a clear message rather than by Kimi mid-conversation. Media over KIMI_MCP_MAX_MEDIA_BYTES and
empty files are refused before any content is read. The sha256 of the content keys the upload cache
(kimi/uploads.py), so it is computed over exactly the bytes that are later sent, and checked again as they are.

Nothing here imports MCP; `inspect_path` blocks (callers run it in a worker thread).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import anyio

from kimi_mcp.access import open_regular
from kimi_mcp.errors import (
    FileAccessDenied,
    MediaChanged,
    MediaEmpty,
    MediaNotBase64,
    MediaTooLarge,
    MediaTypeMismatch,
    MediaTypeUnsupported,
)

MediaKind = Literal["image", "video"]

# Enough for every signature below: the EBML header with its DocType, and three MPEG-TS packets.
SNIFF_BYTES = 4096
CHUNK_BYTES = 1 << 20  # reads while hashing and uploading: big enough to be fast, small enough to keep memory flat


@dataclass(frozen=True)
class MediaType:
    mime_type: str
    kind: MediaKind
    extension: str  # the upload's file name is upload.<extension> (docs/kimi-api.md §7)


JPEG = MediaType("image/jpeg", "image", "jpg")
PNG = MediaType("image/png", "image", "png")
GIF = MediaType("image/gif", "image", "gif")
WEBP = MediaType("image/webp", "image", "webp")
MP4 = MediaType("video/mp4", "video", "mp4")
MPEG = MediaType("video/mpeg", "video", "mpeg")
MOV = MediaType("video/quicktime", "video", "mov")
WEBM = MediaType("video/webm", "video", "webm")
MKV = MediaType("video/x-matroska", "video", "mkv")
AVI = MediaType("video/x-msvideo", "video", "avi")
FLV = MediaType("video/x-flv", "video", "flv")
THREE_GP = MediaType("video/3gpp", "video", "3gp")
MEDIA_TYPES = (JPEG, PNG, GIF, WEBP, MP4, MPEG, MOV, WEBM, MKV, AVI, FLV, THREE_GP)

# Names callers use for the same types (file-extension habits, older registrations, one container's variants).
_MIME_ALIASES = {
    "image/jpg": JPEG,
    "image/pjpeg": JPEG,
    "image/x-png": PNG,
    "video/x-m4v": MP4,
    "video/mov": MOV,
    "video/x-quicktime": MOV,
    "video/mp2t": MPEG,  # MPEG transport stream, which detect() calls video/mpeg
    "video/x-mpeg": MPEG,
    "video/matroska": MKV,
    "video/mkv": MKV,
    "video/x-mkv": MKV,
    "video/avi": AVI,
    "video/msvideo": AVI,
    "video/flv": FLV,
    "video/3gp": THREE_GP,
    "video/3gpp2": THREE_GP,  # 3GPP2 (.3g2) is sniffed as 3gp as well
}
_BY_MIME = {t.mime_type: t for t in MEDIA_TYPES} | _MIME_ALIASES


def media_type_for_mime(mime: str) -> MediaType | None:
    """The supported type a MIME type names (parameters and case ignored), or None."""
    return _BY_MIME.get(mime.split(";", 1)[0].strip().lower())


# -- detection ---------------------------------------------------------------------------------------------------

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = 0x4282
_TS_PACKET = 188
# ISO-BMFF brands that are not video Kimi takes: HEIF/AVIF stills, audio-only MP4, camera raw.
_STILL_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
# A QuickTime file older than the `ftyp` box starts directly with an atom: `wide` (always 8 bytes) or `pnot` (20),
# or `moov`/`mdat`, whose sizes vary; for those a zero first byte (size under 16 MiB, or 1 for a 64-bit size) keeps
# text, which never starts with NUL, from passing.
_LEGACY_QT_SIZES = {b"wide": 8, b"pnot": 20}
_LEGACY_QT_ATOMS = {b"moov", b"mdat"}
# Real `ftyp` boxes are a few dozen bytes; the bound also keeps four ASCII letters (>= 0x20202020) from being a size.
_FTYP_MAX = SNIFF_BYTES


def detect(head: bytes) -> MediaType | None:
    """The supported type whose magic bytes `head` (the first SNIFF_BYTES of the content) starts with, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"AVI "):
        return WEBP if head[8:12] == b"WEBP" else AVI
    if head.startswith(b"FLV\x01"):
        return FLV
    if head.startswith(_EBML_MAGIC):
        return {b"webm": WEBM, b"matroska": MKV}.get(_ebml_doctype(head) or b"")
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3") or _is_mpeg_ts(head):
        return MPEG
    return _iso_bmff(head)


def _iso_bmff(head: bytes) -> MediaType | None:
    """mp4, mov or 3gp by the major brand of the leading `ftyp` box (ISO/IEC 14496-12 §4.3); mov also by a
    pre-`ftyp` QuickTime first atom."""
    box_size = int.from_bytes(head[:4], "big")
    atom = head[4:8]
    legacy_size_ok = head[:1] == b"\0" and (box_size == 1 or box_size >= 8)
    if _LEGACY_QT_SIZES.get(atom) == box_size or (atom in _LEGACY_QT_ATOMS and legacy_size_ok):
        return MOV
    # size, "ftyp", major brand, minor version: at least 16 bytes, and brands come in 4s.
    if atom != b"ftyp" or not 16 <= box_size <= _FTYP_MAX or box_size % 4 or len(head) < 16:
        return None
    brand = head[8:12]
    if not all(0x20 <= b < 0x7F for b in brand) or brand in _STILL_BRANDS or brand in _AUDIO_BRANDS:
        return None
    if brand == b"qt  ":
        return MOV
    if brand.startswith(b"3g"):  # 3gp4..3gp6, 3g2a, 3ge6, 3gg6, ...
        return THREE_GP
    return MP4  # isom, iso2.., mp41, mp42, avc1, M4V, dash, ...


def _is_mpeg_ts(head: bytes) -> bool:
    """Transport stream: a 0x47 sync byte every 188 bytes, at least three packets' worth (all within `head`)."""
    return len(head) > 2 * _TS_PACKET and all(head[i] == 0x47 for i in range(0, len(head), _TS_PACKET))


def _ebml_doctype(head: bytes) -> bytes | None:
    """The DocType ("webm", "matroska") among the children of the EBML header element (RFC 8794 §11.2)."""
    header = _read_vint(head, len(_EBML_MAGIC), keep_marker=False)
    if header is None:
        return None
    size, pos = header
    end = min(pos + size, len(head))
    while pos < end:
        element = _read_vint(head, pos, keep_marker=True)
        if element is None:
            return None
        element_id, pos = element
        length = _read_vint(head, pos, keep_marker=False)
        if length is None:
            return None
        size, pos = length
        if element_id == _EBML_DOCTYPE:
            return head[pos : pos + size].rstrip(b"\0")
        pos += size
    return None


def _read_vint(buf: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at `pos`: (value, position after it). IDs keep their length marker."""
    if pos >= len(buf) or buf[pos] == 0:
        return None
    length = 9 - buf[pos].bit_length()
    if pos + length > len(buf):
        return None
    value = buf[pos] if keep_marker else buf[pos] & (0xFF >> length)
    for byte in buf[pos + 1 : pos + length]:
        value = value << 8 | byte
    return value, pos + length


# What common unsupported content is, so the refusal can say more than "unknown".
_OTHER_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x7fELF", "an executable program"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"OggS", "an Ogg file"),
    (b"ID3", "MP3 audio"),
    (b"fLaC", "FLAC audio"),
)


def _what_it_is(head: bytes) -> str | None:
    """A short noun phrase for content detect() refused, or None when it is not recognisable."""
    for magic, what in _OTHER_SIGNATURES:
        if head.startswith(magic):
            return what
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "WAV audio"
    if head[4:8] == b"ftyp" and head[8:12] in _STILL_BRANDS:
        return "a HEIF or AVIF image"
    if head[4:8] == b"ftyp" and head[8:12] in _AUDIO_BRANDS:
        return "audio-only MP4 (M4A)"
    if head.startswith(_EBML_MAGIC):
        return "a Matroska-style file that is neither WebM nor MKV"
    if _looks_like_text(head):
        return "text"
    return None


def _looks_like_text(head: bytes) -> bool:
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a cut last character is fine
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\n\r\f" for ch in text)


def _unsupported(name: str, head: bytes) -> MediaTypeUnsupported:
    what = _what_it_is(head)
    return MediaTypeUnsupported(name, f"it looks like {what}" if what else "its first bytes match no supported format")


# -- content -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalMedia:
    """Checked media: its type by content, size and sha256, and where its bytes are (a file or memory)."""

    name: str  # for messages: the path as given, or "the inline data"
    media_type: MediaType
    size: int
    sha256: str  # hex digest of the whole content
    path: Path | None = None  # exactly one of path / data is set
    data: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("LocalMedia needs exactly one of path and data")
        if self.data is not None and len(self.data) != self.size:
            raise ValueError("LocalMedia.size must be the length of data")

    async def chunks(self, chunk_size: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        """The content in order, `size` bytes in all: slices of `data`, or the file read in a worker thread per
        chunk. A file that no longer holds the checked content raises `MediaChanged` before its last chunk is
        given out, so a consumer never completes an upload of other bytes under this sha256."""
        if self.data is not None:
            for start in range(0, self.size, chunk_size):
                yield self.data[start : start + chunk_size]
            return
        reader = await anyio.to_thread.run_sync(_CheckedReader, self)
        try:
            while not reader.done:
                yield await anyio.to_thread.run_sync(reader.read, chunk_size)
        finally:
            reader.close()

    async def read_all(self) -> bytes:
        """The whole content in memory (for inline images, which are small)."""
        if self.data is not None:
            return self.data
        return b"".join([chunk async for chunk in self.chunks()])


class _CheckedReader:
    """Reads a LocalMedia's file again, verifying length and sha256 against what inspect_path recorded."""

    def __init__(self, media: LocalMedia) -> None:
        assert media.path is not None
        self.media = media
        self.offset = 0
        self._digest = hashlib.sha256()
        try:
            self._file: BinaryIO = open_regular(media.path)
        except FileAccessDenied as exc:
            raise MediaChanged(media.name, exc.reason) from None

    @property
    def done(self) -> bool:
        return self.offset >= self.media.size

    def read(self, chunk_size: int) -> bytes:
        media = self.media
        try:
            chunk = self._file.read(min(chunk_size, media.size - self.offset))
        except OSError as exc:
            raise MediaChanged(media.name, exc.strerror or type(exc).__name__) from None
        if not chunk:
            raise MediaChanged(media.name, f"it was {media.size:,} bytes when checked, now {self.offset:,}")
        self._digest.update(chunk)
        self.offset += len(chunk)
        if self.done and self._digest.hexdigest() != media.sha256:
            raise MediaChanged(media.name, "its content is no longer what was checked")
        return chunk

    def close(self) -> None:
        self._file.close()


def inspect_path(path: Path, *, max_bytes: int, name: str | None = None) -> LocalMedia:
    """Check and hash the media file at `path` (resolved by access.FileAccessPolicy). BLOCKING.

    The size comes from fstat on the open file and is checked before any content is read, so an oversized or
    empty file costs nothing; then the head decides the type; then the content is hashed a chunk at a time, so
    memory stays flat whatever the size. `name` (default: the path) is for messages.
    """
    label = str(path) if name is None else name
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        _check_size(label, size, max_bytes)
        head = file.read(min(SNIFF_BYTES, size))
        media_type = detect(head)
        if media_type is None:
            raise _unsupported(label, head)
        digest = hashlib.sha256(head)
        done = len(head)
        while done < size:  # exactly `size` bytes: what is appended meanwhile is not part of this media
            chunk = file.read(min(CHUNK_BYTES, size - done))
            if not chunk:
                raise MediaChanged(label, f"it was {size:,} bytes when checked, now {done:,}")
            digest.update(chunk)
            done += len(chunk)
    return LocalMedia(name=label, media_type=media_type, size=size, sha256=digest.hexdigest(), path=path)


def inspect_data(data: bytes, *, max_bytes: int, claimed_mime: str | None, name: str = "the inline data") -> LocalMedia:
    """Check media given as bytes. A `claimed_mime` must name a supported type, and the content must be that type."""
    _check_size(name, len(data), max_bytes)
    claimed = None
    if claimed_mime is not None:
        claimed = media_type_for_mime(claimed_mime)
        if claimed is None:
            raise MediaTypeUnsupported(name, f"its claimed type {claimed_mime!r} is not one Kimi takes")
    head = data[:SNIFF_BYTES]
    detected = detect(head)
    if claimed_mime is not None and detected != claimed:
        raise MediaTypeMismatch(
            claimed_mime, detected.mime_type if detected else _what_it_is(head) or "of no type kimi-mcp recognises"
        )
    if detected is None:
        raise _unsupported(name, head)
    return LocalMedia(name, detected, len(data), hashlib.sha256(data).hexdigest(), data=bytes(data))


_DATA_URL = re.compile(r"data:[^,]*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def decode_base64(text: str, *, max_bytes: int, name: str = "the inline data") -> bytes:
    """Strict base64 (an optional `data:<mime>;base64,` prefix and whitespace allowed), refused before decoding
    when the result would be over `max_bytes`."""
    body = text.strip()
    prefix = _DATA_URL.match(body)
    if prefix:
        body = body[prefix.end() :]
    elif body[:5].lower() == "data:":
        raise MediaNotBase64(name, "a data: URL here must be base64, `data:<mime>;base64,...`")
    body = _WHITESPACE.sub("", body)
    size = len(body) * 3 // 4 - body[-2:].count("=")
    if size > max_bytes:
        raise MediaTooLarge(name, size, max_bytes)
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaNotBase64(name, str(exc) or "malformed") from None


def _check_size(name: str, size: int, max_bytes: int) -> None:
    if size == 0:
        raise MediaEmpty(name)
    if size > max_bytes:
        raise MediaTooLarge(name, size, max_bytes)
