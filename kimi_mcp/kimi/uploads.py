"""MediaUploader: upload a file to Kimi once per content, and reuse its `ms://` id ever after.

Why it matters: Kimi's prompt cache hits only on a byte-identical prefix, and an image reference is part of it
(docs/kimi-api.md §6). Uploading the same bytes again gives a new id, so every turn would pay the whole prefix
again. The cache key is the content's sha256 and `settings.base_url`, never the token, so the id survives token
refreshes, a change of API key, new client objects and server restarts (the records live in the SQLite store).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kimi_mcp.kimi.files_api import UploadProgress, file_id_of
from kimi_mcp.store.locks import KeyedLocks
from kimi_mcp.store.uploads import CachedUpload, UploadCache

if TYPE_CHECKING:
    from kimi_mcp.kimi.client import KimiClient
    from kimi_mcp.kimi.media import LocalMedia, MediaType


@dataclass(frozen=True)
class UploadOutcome:
    """Where a piece of media is on Kimi's side, and whether this call had to upload it."""

    reference: str  # ms://<file_id>
    file_id: str
    media_type: MediaType
    bytes: int
    sha256: str
    cached: bool  # True: a recorded upload of the same content was reused, nothing was sent


class MediaUploader:
    """Uploads through `kimi`, remembering uploads in `cache` (None: no memory, every call uploads)."""

    def __init__(self, kimi: KimiClient, cache: UploadCache | None) -> None:
        self.kimi = kimi
        self.cache = cache
        # Two calls in this process with the same new content (a conversation and an explicit upload, say) upload
        # it once: the second waits, then finds the first one's record.
        self._locks = KeyedLocks()

    @property
    def base_url(self) -> str:
        return self.kimi.settings.base_url

    async def ensure(self, media: LocalMedia, on_progress: UploadProgress | None = None) -> UploadOutcome:
        """The id Kimi holds `media` under: a recorded upload of the same content, else a fresh upload."""
        async with self._locks.holding(media.sha256):
            if self.cache is not None and (known := await self.cache.get(media.sha256, self.base_url)) is not None:
                return _outcome(known.file_id, media, cached=True)
            return await self._upload(media, on_progress)

    async def known(self, reference: str) -> CachedUpload | None:
        """The record of an `ms://` reference this kimi-mcp uploaded to this service, or None."""
        file_id = file_id_of(reference)
        if file_id is None or self.cache is None:
            return None
        return await self.cache.by_file_id(file_id, self.base_url)

    async def current(self, reference: str) -> str:
        """The reference to send for `reference`: itself, or for an id Kimi lost, the id its content was uploaded
        again under (so a conversation stored before the loss can go on, with one stable prefix)."""
        file_id = file_id_of(reference)
        if file_id is None or self.cache is None:
            return reference
        live = await self.cache.current(file_id, self.base_url)
        return live.reference if live is not None else reference

    async def replace(
        self, reference: str, media: LocalMedia, on_progress: UploadProgress | None = None
    ) -> UploadOutcome:
        """Kimi said `reference` is gone: forget it and upload `media` again under a new id.

        If another call already replaced it meanwhile (two conversations found it gone at once), its new id is
        reused rather than uploading a third time.
        """
        async with self._locks.holding(media.sha256):
            gone = file_id_of(reference)
            if self.cache is not None:
                known = await self.cache.get(media.sha256, self.base_url)
                if known is not None and known.file_id != gone:
                    return _outcome(known.file_id, media, cached=True)
                if gone is not None:
                    await self.cache.drop(gone, self.base_url)
            return await self._upload(media, on_progress)

    async def _upload(self, media: LocalMedia, on_progress: UploadProgress | None) -> UploadOutcome:
        uploaded = await self.kimi.upload(media, on_progress)
        if self.cache is not None:
            # Recorded only once Kimi confirmed the upload: a failed one leaves no row behind.
            await self.cache.put(
                CachedUpload(
                    sha256=media.sha256,
                    base_url=self.base_url,
                    file_id=uploaded.id,
                    mime_type=media.media_type.mime_type,
                    bytes=media.size,
                    source_path=str(media.path) if media.path is not None else None,
                )
            )
        return _outcome(uploaded.id, media, cached=False)


def _outcome(file_id: str, media: LocalMedia, *, cached: bool) -> UploadOutcome:
    return UploadOutcome(
        reference=f"ms://{file_id}",
        file_id=file_id,
        media_type=media.media_type,
        bytes=media.size,
        sha256=media.sha256,
        cached=cached,
    )
