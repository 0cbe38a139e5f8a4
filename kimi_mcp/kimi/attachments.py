"""Media for one chat turn: which images go inline and which as uploads, within the service's request cap.

The policy (docs/kimi-api.md §7, docs/media.md): videos are always uploaded; an image over
KIMI_CODE_UPLOAD_THRESHOLD_BYTES is uploaded, a smaller one travels inline as base64; an image whose upload failed
goes inline if it can, and the turn's note says so. The whole request must stay under the 2,097,152-byte cap (§9),
inline images included: when it would not, the turn's inline images are uploaded instead, largest first, and if
even that is not enough the call fails before anything is sent.

An `ms://` reference names a file this kimi-mcp uploaded earlier (the upload cache knows its type). When Kimi
answers that a referenced file is gone, `Attachments.replace_gone` uploads it again once, from the file the call
named or the one it was first uploaded from, and the request is sent again with the new reference.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from kimi_mcp import errors
from kimi_mcp.kimi import wires
from kimi_mcp.kimi.files_api import UploadProgress
from kimi_mcp.kimi.media import LocalMedia, MediaType, media_type_for_mime
from kimi_mcp.kimi.models import Base64Source, ChatRequest, ImageBlock, MediaBlock, Message, UrlSource, VideoBlock
from kimi_mcp.kimi.uploads import MediaUploader, UploadOutcome
from kimi_mcp.kimi.upstream import MAX_REQUEST_BYTES
from kimi_mcp.settings import WireProtocol

logger = logging.getLogger(__name__)

MEDIA_REFERENCE_PREFIX = "ms://"

# Progress for the upload of the named media (its `LocalMedia.name`).
ProgressFor = Callable[[str], UploadProgress]
# Reopens a file an upload was first made from (by its recorded path), under the caller's file access policy; None
# when it is gone, unreadable, or no longer allowed.
Reopen = Callable[[str], Awaitable[LocalMedia | None]]


def block_for(media_type: MediaType, source: UrlSource | Base64Source) -> MediaBlock:
    if media_type.kind == "video":
        return VideoBlock(source=source)
    return ImageBlock(source=source)


def inline_source(media: LocalMedia, data: bytes) -> Base64Source:
    return Base64Source(media_type=media.media_type.mime_type, data=base64.b64encode(data).decode("ascii"))


def base64_size(size: int) -> int:
    return 4 * -(-size // 3)


@dataclass
class Attachments:
    """The media blocks of one user turn, and what is needed to change them before or after sending."""

    blocks: list[MediaBlock]
    notes: list[str] = field(default_factory=list)
    # The local content behind each block (by position), when the call named a file or sent data.
    sources: list[LocalMedia | None] = field(default_factory=list)

    def text_note(self) -> str | None:
        return " ".join(self.notes) or None


class MediaPolicy:
    """Turns the media a call names into content blocks for one turn (see the module docstring)."""

    def __init__(self, uploader: MediaUploader, *, threshold_bytes: int) -> None:
        self.uploader = uploader
        self.threshold_bytes = threshold_bytes

    async def attach(self, items: Sequence[LocalMedia | str], progress_for: ProgressFor | None = None) -> Attachments:
        """One block per item, in the order given."""
        attached = Attachments(blocks=[])
        for item in items:
            if isinstance(item, str):
                attached.blocks.append(await self._referenced(item))
                attached.sources.append(None)
            else:
                on_progress = progress_for(item.name) if progress_for is not None else None
                attached.blocks.append(await self._local(item, attached.notes, on_progress))
                attached.sources.append(item)
        return attached

    async def current_references(self, request: ChatRequest) -> ChatRequest:
        """`request` with each `ms://` id Kimi lost replaced by the id its content was uploaded again under."""
        for reference in sorted(_references(request)):
            live = await self.uploader.current(reference)
            if live != reference:
                request = with_reference(request, reference, live)
        return request

    async def _referenced(self, reference: str) -> MediaBlock:
        reference = await self.uploader.current(reference)
        known = await self.uploader.known(reference)
        media_type = media_type_for_mime(known.mime_type) if known is not None else None
        if media_type is None:
            raise errors.UnknownMediaId(reference)
        return block_for(media_type, UrlSource(url=reference))

    async def _local(self, media: LocalMedia, notes: list[str], on_progress: UploadProgress | None) -> MediaBlock:
        if media.media_type.kind == "image" and media.size <= self.threshold_bytes:
            return block_for(media.media_type, inline_source(media, await media.read_all()))
        try:
            outcome = await self.uploader.ensure(media, on_progress)
        except (errors.Unauthorized, errors.LoginRequired, errors.ServiceUnavailable):
            raise  # the chat itself would fail the same way: say so rather than send a larger request
        except errors.UpstreamError as exc:
            if media.media_type.kind == "video" or base64_size(media.size) >= MAX_REQUEST_BYTES:
                raise
            logger.info("upload of %s failed (%s); sending it inline", media.name, exc.message)
            notes.append(f"The upload of {media.name} failed ({exc.message}); the image was sent inline instead.")
            return block_for(media.media_type, inline_source(media, await media.read_all()))
        return block_for(media.media_type, UrlSource(url=outcome.reference))

    async def fit(
        self, attached: Attachments, build: Callable[[list[MediaBlock]], ChatRequest]
    ) -> tuple[ChatRequest, Attachments]:
        """The request `build(blocks)` makes, with inline images uploaded instead while it is over the cap.

        Raises `RequestOverBodyCap` (nothing sent) if it still does not fit: history and text alone are too large.
        """
        request = build(attached.blocks)
        inline = sorted(
            (i for i, block in enumerate(attached.blocks) if isinstance(block.source, Base64Source)),
            key=lambda i: len(attached.blocks[i].source.data),  # type: ignore[union-attr]
            reverse=True,
        )
        protocol = self.uploader.kimi.settings.protocol  # the cap is checked on the body the wire in use sends
        while _over_cap(protocol, request) and inline:
            index = inline.pop(0)
            media = attached.sources[index]
            if media is None:
                break
            outcome = await self.uploader.ensure(media)
            attached.blocks[index] = block_for(media.media_type, UrlSource(url=outcome.reference))
            attached.notes.append(
                f"{media.name} was uploaded rather than sent inline, to keep the request under the cap."
            )
            request = build(attached.blocks)
        wires.build_body(protocol, request)  # raises RequestOverBodyCap, naming the sizes, if it is still too large
        return request, attached

    async def replace_gone(
        self, request: ChatRequest, attached: Attachments, reference: str, reopen: Reopen
    ) -> tuple[ChatRequest, UploadOutcome] | None:
        """Kimi said `reference` is gone: upload it again once and return the request with the new reference.

        The content comes from this call's own media when one of them is that file, else from the file the
        upload was first made from (if it still exists with the same content). None when neither is available.
        """
        media = next(
            (
                source
                for block, source in zip(attached.blocks, attached.sources, strict=True)
                if source is not None and isinstance(block.source, UrlSource) and block.source.url == reference
            ),
            None,
        )
        if media is None:
            known = await self.uploader.known(reference)
            if known is None or known.source_path is None:
                return None
            media = await reopen(known.source_path)
            if media is None or media.sha256 != known.sha256:
                return None
        outcome = await self.uploader.replace(reference, media)
        for index, block in enumerate(attached.blocks):
            if isinstance(block.source, UrlSource) and block.source.url == reference:
                attached.blocks[index] = block_for(media.media_type, UrlSource(url=outcome.reference))
        return with_reference(request, reference, outcome.reference), outcome


def with_reference(request: ChatRequest, old: str, new: str) -> ChatRequest:
    """`request` with every block that refers to `old` referring to `new` instead (history included)."""

    def swap(message: Message) -> Message:
        content = [
            block.model_copy(update={"source": UrlSource(url=new)})
            if isinstance(block, (ImageBlock, VideoBlock))
            and isinstance(block.source, UrlSource)
            and block.source.url == old
            else block
            for block in message.content
        ]
        return message.model_copy(update={"content": content})

    return request.model_copy(update={"messages": [swap(message) for message in request.messages]})


def _over_cap(protocol: WireProtocol, request: ChatRequest) -> bool:
    try:
        wires.build_body(protocol, request)
    except errors.RequestOverBodyCap:
        return True
    return False


def _references(request: ChatRequest) -> set[str]:
    return {
        block.source.url
        for message in request.messages
        for block in message.content
        if isinstance(block, (ImageBlock, VideoBlock)) and isinstance(block.source, UrlSource)
    }
