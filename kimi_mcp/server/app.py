"""MCPServer construction and lifespan.

Nothing here touches the disk or the network at start: a host's `initialize` is answered at once, and the
Kimi client, the store and the login manager (`state.AppState`) are made on first use. Once the host has listed
the tools, the warm-up (warmup.py) pays the first call's one-off costs in the background.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from kimi_mcp._version import __version__
from kimi_mcp.server import resources, tools
from kimi_mcp.server.state import AppState
from kimi_mcp.settings import Settings

INSTRUCTIONS = (
    "kimi-mcp lets you delegate work to Kimi (model kimi-for-coding, 262k-token context): a second opinion, "
    "a review, a long-document read, a parallel worker. Kimi sees only what you put in the call. "
    "Continue a thread by passing the conversation_id returned by kimi_chat."
)


def build_server(
    settings: Settings, *, warm_up: bool = True, transport: Literal["stdio", "http"] = "stdio"
) -> MCPServer[AppState]:
    """The kimi-mcp server. `warm_up=False` leaves every one-off cost to the first call (bench baseline)."""
    running: list[AppState] = []

    def current_state() -> AppState:
        if not running:
            raise RuntimeError("kimi-mcp server state is used outside the server's lifespan")
        return running[-1]

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        async with anyio.create_task_group() as task_group:
            state = AppState(settings=settings, task_group=task_group, transport=transport)
            running.append(state)
            if warm_up:
                task_group.start_soon(state.warmup.run, state, name="kimi-mcp warm-up")
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
        middleware=[_observe_for_warmup],
        log_level="DEBUG" if settings.debug else "INFO",
    )
    tools.register(server, settings)
    resources.register(server, current_state)
    return server


async def _observe_for_warmup(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    state = ctx.lifespan_context
    if isinstance(state, AppState):
        return await state.warmup.observe(ctx, call_next)
    return await call_next(ctx)
