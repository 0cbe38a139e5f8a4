"""Warm-up: pay a fresh server's one-off first-call costs in the background, once the server is serving.

A fresh server's first `kimi_chat` would import the `anthropic` SDK (about 3,000 modules: 2–4 s on a 2-core
machine), build the SDK's stream-event validators, load the TLS trust store and open the store, all on the
caller's clock. Hosts start their servers at session start, long before the first call, so this
module pays those costs while nobody waits (docs/architecture.md, "Start-up"):

- it warms the wire in effect (KIMI_CODE_PROTOCOL): with `openai` it never imports the `anthropic` SDK (which that
  wire never loads, ~3 s and ~44 MiB for nothing), only the OpenAI wire and httpx2's pieces, and its dry run
  streams a canned `chat.completion.chunk` reply through `openai_wire.read_reply`;

- it starts only once the host has listed the tools (or `START_WITHOUT_LISTING_SECONDS` after start), so
  `initialize` and `tools/list` are answered exactly as fast as without it;
- the work runs in a daemon thread: the event loop keeps answering (it shares the GIL, but gets it back at
  every switch interval), and a server told to exit does not wait for an import to finish;
- a call arriving meanwhile simply waits for the same import (Python's per-module import locks), then proceeds;
- it never touches the network; on disk it does what any first call does (the home folder, the device id, the
  store's schema), after the host has connected;
- no failure can reach the server: every step is logged at DEBUG and left for the first call to do again,
  which then reports its real error.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

if TYPE_CHECKING:
    from kimi_mcp.kimi.models import ChatResult
    from kimi_mcp.server.state import AppState

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A host that never lists the tools (or lists them before the lifespan began) still gets a warm server.
START_WITHOUT_LISTING_SECONDS = 3.0
SETTLE_SECONDS = 0.05
# What the first chat imports. `anthropic` is the big one; the rest are what its first client and first request
# load lazily (HTTP/1.1 connection pool, its anyio backend, the trust store, the streaming helpers).
IMPORTS = (
    "anthropic",
    "anthropic.lib.streaming",
    "kimi_mcp.kimi.client",
    "kimi_mcp.kimi.anthropic_wire",
    "kimi_mcp.auth.login",
    "kimi_mcp.store",
    "httpcore2",
    "httpcore2._backends.anyio",
    "truststore",
)
# The OpenAI wire (KIMI_CODE_PROTOCOL=openai) needs no SDK: its module, the client, and httpx2's lazy pieces.
OPENAI_IMPORTS = (
    "kimi_mcp.kimi.client",
    "kimi_mcp.kimi.openai_wire",
    "kimi_mcp.auth.login",
    "kimi_mcp.store",
    "httpcore2",
    "httpcore2._backends.anyio",
    "truststore",
)
_DRY_RUN_BASE_URL = "http://kimi-mcp-warm-up.invalid"  # never resolved: the dry run's transport is in memory


class WarmUp:
    """One per server lifespan: `observe` is the server middleware that sees the tools listed, `run` the task."""

    def __init__(self) -> None:
        self.listed = anyio.Event()
        self.done = anyio.Event()
        self.failures: list[str] = []  # the steps that failed (logged at DEBUG); for tests and the bench

    async def observe(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method == "tools/list":
            self.listed.set()
        return result

    async def run(self, state: AppState) -> None:
        """Wait until the host has listed the tools, then warm up step by step. Never raises (but cancellation)."""
        with anyio.move_on_after(START_WITHOUT_LISTING_SECONDS):
            await self.listed.wait()
        # Let the answer just produced (and a host's other list calls) go out before the work starts.
        await anyio.sleep(SETTLE_SECONDS)
        logger.debug("warm-up starting (%s)", "tools listed" if self.listed.is_set() else "no listing yet")
        openai = state.settings.protocol == "openai"
        try:
            with settled_garbage(first_heavy_import=not openai and "anthropic" not in sys.modules):
                imports = OPENAI_IMPORTS if openai else IMPORTS
                await self._step("imports", lambda: in_daemon_thread(lambda: import_all(imports)))
                if openai:
                    await self._step("wire dry run", lambda: in_daemon_thread(dry_run_openai))
                else:
                    await self._step("SDK dry run", lambda: in_daemon_thread(dry_run))
            await self._step("Kimi client", lambda: prepare_kimi(state))
            await self._step("store", lambda: open_store(state))
        finally:
            self.done.set()

    async def _step(self, name: str, step: Callable[[], Any]) -> None:
        started = time.perf_counter()
        try:
            await step()
        except Exception as exc:  # warm-up is best effort: the first call does this again and reports its own error
            self.failures.append(name)
            logger.debug("warm-up step %s failed (the first call will do it): %r", name, exc)
        else:
            logger.debug("warm-up step %s done in %.2f s", name, time.perf_counter() - started)


@contextmanager
def settled_garbage(*, first_heavy_import: bool) -> Iterator[None]:
    """Around this process's first import of the SDK: no cyclic garbage collection, then `gc.freeze()`.

    The import more than doubles the objects the collector tracks (~85,000 to ~205,000), and they live as long as
    the process. Each full collection walks them all holding the GIL (100-250 ms on a loaded 2-core machine): two
    would run during the import, stalling the event loop, and one soon after, most likely during the first call,
    the first thing to allocate much. Frozen, later collections skip them (a full one then takes under 1 ms).
    Only for the first heavy import: a process that already has the SDK (a test run) is left alone.
    """
    if not first_heavy_import:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


async def prepare_kimi(state: AppState) -> None:
    """Build the server's Kimi client before the first call needs it: loading the TLS trust store for its HTTP
    client takes ~50 ms. Like any call would, this makes the home folder and its device id (docs/kimi-api.md §2)."""
    from kimi_mcp.kimi.client import KimiClient

    client = await in_daemon_thread(lambda: KimiClient(state.settings))
    if not state.offer_kimi(client):
        await client.aclose()


async def open_store(state: AppState) -> None:
    """Open the conversation store (its schema checked, its worker thread started) and run its hourly expiry,
    as the first call would: its first append then finds the expiry done for the hour."""
    await state.store.expire_now_and_then()


def import_all(names: tuple[str, ...]) -> None:
    """Import each module; one that fails does not stop the others. Raises the first failure at the end."""
    first: Exception | None = None
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first


def dry_run() -> None:
    """Stream one canned reply through the real wire code and SDK over an in-memory transport.

    The SDK builds its stream-event validators, platform headers and JSON decoder on its first request; doing it
    here, in this thread and its own event loop, takes that off the first real call. No network, no disk.
    """
    anyio.run(_dry_run)


async def _dry_run() -> None:
    import httpx2

    from kimi_mcp.kimi import anthropic_wire
    from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"".join(_canned_stream()))

    request = ChatRequest(model="warm-up", messages=[Message(role="user", content=[TextBlock(text="warm-up")])])
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer), trust_env=False) as http:
        sdk = anthropic_wire.build_sdk(token="warm-up", base_url=_DRY_RUN_BASE_URL, http=http, max_retries=0)
        await anthropic_wire.stream_chat(sdk, anthropic_wire.build_body(request), None)


def dry_run_openai() -> ChatResult:
    """The OpenAI wire's dry run: build a body and read one canned SSE reply through `openai_wire.read_reply`
    (its pydantic chunk models validate for the first time here). No network, no disk, no anthropic SDK."""
    return anyio.run(_dry_run_openai)


async def _dry_run_openai() -> ChatResult:
    import httpx2

    from kimi_mcp.kimi import openai_wire, wires
    from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"".join(_canned_chunks()))

    request = ChatRequest(
        model="warm-up", thinking="high", messages=[Message(role="user", content=[TextBlock(text="warm-up")])]
    )
    body = openai_wire.build_body(request)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer), trust_env=False) as http:
        sent = http.build_request("POST", f"{_DRY_RUN_BASE_URL}{openai_wire.CHAT_PATH}", content=wires.encode(body))
        response = await http.send(sent, stream=True)
        try:
            return await openai_wire.read_reply(response, body["model"], None)
        finally:
            await response.aclose()


def _canned_chunks() -> Iterator[bytes]:
    base = {"id": "chatcmpl-warm-up", "object": "chat.completion.chunk", "created": 0, "model": "warm-up"}
    deltas: list[dict[str, Any]] = [
        {"index": 0, "delta": {"role": "assistant", "reasoning_content": "."}, "finish_reason": None},
        {"index": 0, "delta": {"content": "ok"}, "finish_reason": None},
        {
            "index": 0,
            "delta": {},
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, "cached_tokens": 0},
        },
    ]
    for choice in deltas:
        yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _canned_stream() -> Iterator[bytes]:
    usage = {"input_tokens": 1, "output_tokens": 1, "cache_read_input_tokens": 0}
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_warm_up",
                "type": "message",
                "role": "assistant",
                "model": "warm-up",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": usage},
        {"type": "message_stop"},
    ]
    for event in events:
        yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def in_daemon_thread(func: Callable[[], T]) -> T:
    """`func()` in a daemon thread. Unlike anyio's worker threads, it never holds up the process's exit: a host
    that closes the server mid-import gets a prompt exit. If the caller is cancelled, the thread is abandoned."""
    done = anyio.Event()
    token = anyio.lowlevel.current_token()
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, func()))
        except BaseException as exc:
            outcome.append((False, exc))
        try:
            anyio.from_thread.run_sync(done.set, token=token)
        except Exception:
            pass  # the loop is gone: nobody is waiting any more

    threading.Thread(target=target, name="kimi-mcp warm-up", daemon=True).start()
    await done.wait()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]
