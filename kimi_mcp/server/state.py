"""The state every tool and resource shares: one Kimi client, one store, one login manager per server.

Members are made on first use, so a server answers `initialize` before touching the disk or the network; once it
is serving, the warm-up (warmup.py) may make the Kimi client and open the store ahead of the first call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from anyio.abc import TaskGroup

from kimi_mcp.server.warmup import WarmUp
from kimi_mcp.settings import Settings

if TYPE_CHECKING:
    from kimi_mcp.auth.login import LoginManager
    from kimi_mcp.kimi.attachments import MediaPolicy
    from kimi_mcp.kimi.client import KimiClient
    from kimi_mcp.kimi.uploads import MediaUploader
    from kimi_mcp.store import ConversationStore


@dataclass
class AppState:
    """What every tool call shares. Members are created lazily, on first use."""

    settings: Settings
    task_group: TaskGroup
    # How callers reach us: over HTTP a client's roots may only narrow the readable folders (server/local_files.py).
    transport: Literal["stdio", "http"] = "stdio"
    _kimi: KimiClient | None = field(default=None, init=False)
    _store: ConversationStore | None = field(default=None, init=False)
    _login: LoginManager | None = field(default=None, init=False)
    _uploader: MediaUploader | None = field(default=None, init=False)
    warmup: WarmUp = field(default_factory=WarmUp, init=False)

    @property
    def kimi(self) -> KimiClient:
        if self._kimi is None:
            from kimi_mcp.kimi.client import KimiClient

            self._kimi = KimiClient(self.settings)
        return self._kimi

    def offer_kimi(self, client: KimiClient) -> bool:
        """Take a client built ahead of time (warm-up) unless a call already made one. True when taken."""
        if self._kimi is not None:
            return False
        self._kimi = client
        return True

    @property
    def store(self) -> ConversationStore:
        if self._store is None:
            from kimi_mcp.store import ConversationStore

            max_age = self.settings.conversation_max_age_days * 86_400
            self._store = ConversationStore(self.settings.home, max_age_seconds=max_age)
        return self._store

    @property
    def login(self) -> LoginManager:
        if self._login is None:
            from kimi_mcp.auth.login import LoginManager

            self._login = LoginManager(self.settings, self.kimi.http, self.kimi.tokens)  # type: ignore[arg-type]
        return self._login

    @property
    def uploader(self) -> MediaUploader:
        """Uploads to Kimi's Files API, cached by content in the store (kimi/uploads.py)."""
        if self._uploader is None:
            from kimi_mcp.kimi.uploads import MediaUploader

            self._uploader = MediaUploader(self.kimi, self.store.uploads)
        return self._uploader

    @property
    def media_policy(self) -> MediaPolicy:
        from kimi_mcp.kimi.attachments import MediaPolicy

        return MediaPolicy(self.uploader, threshold_bytes=self.settings.upload_threshold_bytes)

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()
        if self._kimi is not None:
            await self._kimi.aclose()
