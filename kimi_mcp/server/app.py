"""MCPServer construction and the state its tools share (one Kimi client, one store, one login at a time).

Nothing here touches the disk or the network at start: a host's `initialize` is answered at once, and the
Kimi client, the store and the login manager are made on first use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from mcp.server import MCPServer

from kimi_mcp._version import __version__
from kimi_mcp.settings import Settings

if TYPE_CHECKING:
    from kimi_mcp.auth.login import LoginManager
    from kimi_mcp.kimi.client import KimiClient
    from kimi_mcp.store import ConversationStore

INSTRUCTIONS = (
    "kimi-mcp lets you delegate work to Kimi (model kimi-for-coding, 262k-token context): a second opinion, "
    "a review, a long-document read, a parallel worker. Kimi sees only what you put in the call. "
    "Continue a thread by passing the conversation_id returned by kimi_chat."
)


@dataclass
class AppState:
    """What every tool call shares. Members are created lazily, on first use."""

    settings: Settings
    task_group: TaskGroup
    _kimi: KimiClient | None = field(default=None, init=False)
    _store: ConversationStore | None = field(default=None, init=False)
    _login: LoginManager | None = field(default=None, init=False)

    @property
    def kimi(self) -> KimiClient:
        if self._kimi is None:
            from kimi_mcp.kimi.client import KimiClient

            self._kimi = KimiClient(self.settings)
        return self._kimi

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

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()
        if self._kimi is not None:
            await self._kimi.aclose()


def build_server(settings: Settings) -> MCPServer[AppState]:
    running: list[AppState] = []

    def current_state() -> AppState:
        if not running:
            raise RuntimeError("kimi-mcp server state is used outside the server's lifespan")
        return running[-1]

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        async with anyio.create_task_group() as task_group:
            state = AppState(settings=settings, task_group=task_group)
            running.append(state)
            try:
                yield state
            finally:
                running.remove(state)
                task_group.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await state.aclose()

    server: MCPServer[AppState] = MCPServer(
        "kimi-mcp",
        title="Kimi (kimi-for-coding)",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="DEBUG" if settings.debug else "INFO",
    )
    from kimi_mcp.server import resources, tools

    tools.register(server)
    resources.register(server, current_state)
    return server
