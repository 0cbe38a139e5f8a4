"""`kimi-mcp serve --transport http` as a child process, and an `mcp` client connected to it (tests, bench).

The child binds port 0 and says where it serves in one stderr line ("kimi-mcp: serving MCP on URL"); `http_child`
waits for that line, not for a fixed time, and keeps reading stderr so the child never blocks on a full pipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from mcp import Client
from mcp.client.session import ListRootsFnT
from mcp.client.streamable_http import streamable_http_client

KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
SERVING = "kimi-mcp: serving MCP on "
STOPPING = "kimi-mcp: stopping"
READY_SECONDS = 90.0
CALL_TIMEOUT = 60.0


@dataclass
class HttpChild:
    process: Process
    url: str = ""
    lines: list[str] = field(default_factory=list)
    stopping: anyio.Event = field(default_factory=anyio.Event)  # set once the child says it is stopping

    @property
    def base(self) -> str:
        return self.url.rsplit("/", 1)[0] if self.url.count("/") > 2 else self.url

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def wait(self, seconds: float = READY_SECONDS) -> int:
        with anyio.fail_after(seconds):
            return await self.process.wait()


async def _pump(child: HttpChild, ready: anyio.Event) -> None:
    assert child.process.stderr is not None
    pending = ""
    async for chunk in TextReceiveStream(child.process.stderr, errors="replace"):
        pending += chunk
        *complete, pending = pending.split("\n")
        for line in complete:
            child.lines.append(line)
            if line.startswith(STOPPING):
                child.stopping.set()
            if line.startswith(SERVING) and not child.url:
                child.url = line[len(SERVING) :].strip()
                ready.set()
    if pending:
        child.lines.append(pending)
    ready.set()  # the child ended without serving: let the waiter see that


@asynccontextmanager
async def http_child(
    env: dict[str, str], *args: str, port: str = "0", cwd: Path | None = None
) -> AsyncIterator[HttpChild]:
    """A serving child (`--port 0` unless given in `args`, in `cwd` if given); terminated on exit unless it already
    ended."""
    command = [str(KIMI_MCP), "serve", "--transport", "http", *(() if "--port" in args else ("--port", port)), *args]
    process = await anyio.open_process(
        command,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    child = HttpChild(process)
    ready = anyio.Event()
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_pump, child, ready)
            with anyio.fail_after(READY_SECONDS):
                await ready.wait()
            try:
                yield child
            finally:
                if process.returncode is None:
                    process.terminate()
                with anyio.fail_after(READY_SECONDS), anyio.CancelScope(shield=True):
                    await process.wait()
    finally:
        print(f"--- kimi-mcp serve --transport http stderr ---\n{child.stderr}")


@asynccontextmanager
async def http_client(
    url: str,
    token: str | None,
    *,
    mode: str = "auto",
    list_roots_callback: ListRootsFnT | None = None,
    statuses: list[int] | None = None,
) -> AsyncIterator[Client]:
    """An `mcp` Client over streamable HTTP, sending `Authorization: Bearer <token>` when a token is given.

    `list_roots_callback` offers roots (legacy-mode sessions only: 2026-07-28 has no roots); `statuses`, when given,
    collects the HTTP status of every response, which the MCP client itself does not show."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = httpx2.Timeout(30.0, read=CALL_TIMEOUT * 2)

    async def note_status(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    async with httpx2.AsyncClient(headers=headers, timeout=timeout, event_hooks={"response": [note_status]}) as http:
        async with Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            read_timeout_seconds=CALL_TIMEOUT,
            list_roots_callback=list_roots_callback,
        ) as client:
            yield client


@contextmanager
def serving_http(command: list[str], env: dict[str, str], ready_seconds: float = 120.0) -> Iterator[str]:
    """`command` (a `kimi-mcp serve --transport http`) running until the block ends, for synchronous callers (the
    host and recipe tests); yields its URL once it says where it serves, not after a fixed time, and keeps reading
    its stderr (printed at the end, for a failing test's output) so the child never blocks on a full pipe."""
    process = subprocess.Popen(
        command,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
    )
    lines: list[str] = []
    ready = threading.Event()
    url: list[str] = []

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if line.startswith(SERVING) and not url:
                url.append(line[len(SERVING) :].strip())
                ready.set()
        ready.set()  # ended without serving: let the waiter see it

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        ready.wait(ready_seconds)
        if not url:
            raise RuntimeError("kimi-mcp serve --transport http did not start:\n" + "\n".join(lines))
        yield url[0]
    finally:
        process.terminate()
        try:
            process.wait(ready_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(ready_seconds)
        print("--- kimi-mcp serve --transport http stderr ---\n" + "\n".join(lines))
