"""Blocking work (a DNS lookup, a SQLite integrity check) in a daemon thread that a timed-out check leaves behind.

Not `anyio.to_thread` or the loop's executor: `anyio.run` and the interpreter wait for those threads on the way
out, so a resolver that hangs (no DNS server answering) or a check of a huge store would hold the report back
for as long as it lasts, whatever the doctor's bounds. A daemon thread is simply abandoned.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")


async def run_abandonable(work: Callable[[], T], name: str) -> T:
    """`work()`'s result (or exception); the caller bounds the wait (cancelling it abandons the thread)."""
    token = anyio.lowlevel.current_token()
    done = anyio.Event()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except Exception as exc:
            failure.append(exc)
        with contextlib.suppress(Exception):  # the loop may be gone when abandoned work finally ends
            anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=target, name=f"kimi-mcp doctor: {name}", daemon=True).start()
    await done.wait()
    if failure:
        raise failure[0]
    return outcome[0]
