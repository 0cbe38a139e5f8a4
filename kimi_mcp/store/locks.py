"""One `anyio.Lock` per key, made on first use and dropped when nobody holds or waits for it.

A long-running server sees thousands of conversation ids; keeping a lock for each would grow without bound.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass
class _Entry:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0  # holders and waiters: the entry goes when this drops to 0


class KeyedLocks:
    """Locks by key for tasks of one event loop. Waiters get the lock in the order they asked (anyio's is fair)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """How many keys have a lock right now (held or waited for)."""
        return len(self._entries)

    @asynccontextmanager
    async def holding(self, key: str, *, on_wait: Callable[[], Awaitable[None]] | None = None) -> AsyncIterator[None]:
        """Hold the lock of `key` for the block; `on_wait` is awaited first when someone else holds it.

        Released however the block ends (error, cancellation), and forgotten once unused.
        """
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        try:
            if on_wait is not None and entry.lock.locked():
                await on_wait()
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
