"""The warm-up (kimi_mcp/server/warmup.py): a fresh server pays the first call's one-off costs after it is serving,
a call arriving meanwhile still works, and a failing warm-up never breaks the server.

What a fresh server imports can only be seen in a fresh interpreter (this test process has long imported
`anthropic`), so those checks run a small script in a `python -c` subprocess that prints what it saw as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from kimi_mcp.server import warmup
from kimi_mcp.server.app import build_server
from kimi_mcp.server.state import AppState
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.mcp_results import reply_of, text_of

pytestmark = pytest.mark.anyio

WAIT_SECONDS = 120.0  # generous: importing `anthropic` takes 2-4 s on an idle 2-core machine, far more when loaded

# Shared by the scripts: record each server's WarmUp and state, and read a few facts about this interpreter.
PRELUDE = """
import gc, json, sys, threading, time
import anyio
from mcp import Client
from kimi_mcp.server import warmup
from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings

warmup.START_WITHOUT_LISTING_SECONDS = 3600  # here only tools/list may start the warm-up
warmup.SETTLE_SECONDS = 0  # and once started, it starts at once
seen = []
_run = warmup.WarmUp.run

async def recording_run(self, state):
    seen.append((self, state))
    await _run(self, state)

warmup.WarmUp.run = recording_run

def warm_thread_alive():
    return any(t.name == "kimi-mcp warm-up" for t in threading.enumerate())

async def until(condition, seconds=120.0):
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.02)
"""

AFTER_SERVING = """
async def main():
    out = {"anthropic_at_start": "anthropic" in sys.modules}
    async with Client(build_server(Settings.from_env()), mode="legacy") as client:
        await client.list_resources()
        await client.list_prompts()
        await anyio.wait_all_tasks_blocked()  # a warm-up that did not wait would have started its thread by now
        out["before_tools_list"] = {"anthropic": "anthropic" in sys.modules, "thread": warm_thread_alive()}
        await client.list_tools()
        await until(lambda: seen and seen[0][0].done.is_set())
        out["listed_during_warm_up"] = len((await client.list_tools()).tools)
        warm, state = seen[0]
        out["after"] = {"anthropic": "anthropic" in sys.modules, "kimi_client": state._kimi is not None,
                        "store": state._store is not None, "failures": warm.failures}
        out["gc"] = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count() > 0}
    print(json.dumps(out))

anyio.run(main)
"""

CALL_DURING_WARM_UP = """
async def main():
    out = {}
    async with Client(build_server(Settings.from_env()), mode="legacy") as client:
        await client.list_tools()
        await until(warm_thread_alive)
        result = await client.call_tool("kimi_chat", {"prompt": "during warm-up"})
        out["is_error"] = result.is_error
        out["text"] = "".join(block.text for block in result.content if block.type == "text")
        await until(lambda: seen[0][0].done.is_set())
        out["failures"] = seen[0][0].failures
        again = await client.call_tool("kimi_chat", {"prompt": "after warm-up"})
        out["again_is_error"] = again.is_error
    print(json.dumps(out))

anyio.run(main)
"""


async def run_script(body: str, env: dict[str, str]) -> dict[str, Any]:
    child_env = {"PATH": os.environ.get("PATH", ""), **env}
    with anyio.fail_after(WAIT_SECONDS + 60):
        done = await anyio.run_process([sys.executable, "-c", PRELUDE + body], env=child_env, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


async def test_a_fresh_server_warms_up_after_the_tools_are_listed_without_any_call(
    kimi_env: dict[str, str],
) -> None:
    out = await run_script(AFTER_SERVING, kimi_env)
    # Serving comes first: nothing of the SDK is loaded, and no warm-up thread runs, while the host connects.
    assert out["anthropic_at_start"] is False
    assert out["before_tools_list"] == {"anthropic": False, "thread": False}
    # Then, with no kimi_chat call at all, the SDK is imported and the server's client and store are made.
    assert out["after"] == {"anthropic": True, "kimi_client": True, "store": True, "failures": []}
    assert out["listed_during_warm_up"] == 3
    # The SDK's objects are frozen out of later full collections, and the collector runs again.
    assert out["gc"] == {"enabled": True, "frozen": True}


async def test_a_call_arriving_during_the_warm_up_waits_for_the_same_import_and_succeeds(
    kimi_env: dict[str, str],
) -> None:
    out = await run_script(CALL_DURING_WARM_UP, kimi_env)
    assert out["is_error"] is False, out["text"]
    assert out["text"].startswith("Fake Kimi reply to: during warm-up")
    assert out["again_is_error"] is False
    assert out["failures"] == []  # the warm-up's own import did not trip over the call's


# -- in process: failures ------------------------------------------------------------------------------------------


class WarmUps:
    """Every server's WarmUp and state, as its warm-up starts."""

    def __init__(self) -> None:
        self.seen: list[tuple[warmup.WarmUp, AppState]] = []
        self.started = anyio.Event()

    async def first(self) -> tuple[warmup.WarmUp, AppState]:
        with anyio.fail_after(WAIT_SECONDS):
            await self.started.wait()
        return self.seen[0]

    async def first_done(self) -> warmup.WarmUp:
        warm, _ = await self.first()
        with anyio.fail_after(WAIT_SECONDS):
            await warm.done.wait()
        return warm


@pytest.fixture
async def warm_ups(monkeypatch: pytest.MonkeyPatch) -> WarmUps:
    recorded = WarmUps()
    run = warmup.WarmUp.run

    async def recording_run(self: warmup.WarmUp, state: AppState) -> None:
        recorded.seen.append((self, state))
        recorded.started.set()
        await run(self, state)

    monkeypatch.setattr(warmup.WarmUp, "run", recording_run)
    return recorded


async def warmed(client: Client, warm_ups: WarmUps) -> warmup.WarmUp:
    """List the tools (which starts the warm-up) and wait until it is over."""
    await client.list_tools()
    return await warm_ups.first_done()


async def test_a_failing_import_is_skipped_and_the_server_keeps_serving(
    kimi_env: dict[str, str], warm_ups: WarmUps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warmup, "IMPORTS", ("kimi_mcp_no_such_module", *warmup.IMPORTS))
    async with Client(build_server(Settings.from_env(kimi_env)), mode="legacy") as client:
        warm = await warmed(client, warm_ups)
        result = await client.call_tool("kimi_chat", {"prompt": "still here"})
    assert warm.failures == ["imports"]
    assert not result.is_error and reply_of(result) == "Fake Kimi reply to: still here"


async def test_an_unusable_home_fails_the_warm_up_quietly_and_the_call_reports_it(
    fake_kimi: FakeKimi, tmp_path: Path, warm_ups: WarmUps
) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("a file where the home folder should be")
    env = {"KIMI_API_KEY": "sk-kimi-test-key", "KIMI_CODE_BASE_URL": fake_kimi.base_url, "KIMI_MCP_HOME": str(home)}
    async with Client(build_server(Settings.from_env(env)), mode="legacy") as client:
        warm = await warmed(client, warm_ups)
        state = warm_ups.seen[0][1]
        assert state._kimi is None  # nothing half-built is left behind: the call builds (and fails) for itself
        result = await client.call_tool("kimi_chat", {"prompt": "q"})
        tools = await client.list_tools()
    assert warm.failures == ["Kimi client", "store"]
    assert result.is_error and str(home) in text_of(result)
    assert {tool.name for tool in tools.tools} >= {"kimi_chat"}
    assert fake_kimi.requests == []  # the warm-up never talks to Kimi


async def test_a_warm_up_step_that_raises_anything_never_reaches_the_server(
    kimi_env: dict[str, str], warm_ups: WarmUps, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("broken warm-up step")

    async def broken_async(*_: object) -> None:
        raise ValueError("broken warm-up step")

    monkeypatch.setattr(warmup, "import_all", broken)
    monkeypatch.setattr(warmup, "dry_run", broken)
    monkeypatch.setattr(warmup, "prepare_kimi", broken_async)
    monkeypatch.setattr(warmup, "open_store", broken_async)
    async with Client(build_server(Settings.from_env(kimi_env)), mode="legacy") as client:
        warm = await warmed(client, warm_ups)
        result = await client.call_tool("kimi_chat", {"prompt": "works anyway"})
    assert warm.failures == ["imports", "SDK dry run", "Kimi client", "store"]
    assert not result.is_error and reply_of(result) == "Fake Kimi reply to: works anyway"


async def test_the_warm_up_waits_for_tools_list(
    kimi_env: dict[str, str], warm_ups: WarmUps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warmup, "START_WITHOUT_LISTING_SECONDS", 3600.0)
    monkeypatch.setattr(warmup, "SETTLE_SECONDS", 0.0)
    steps: list[str] = []
    step = warmup.WarmUp._step

    async def recording_step(self: warmup.WarmUp, name: str, work: Any) -> None:
        steps.append(name)
        await step(self, name, work)

    monkeypatch.setattr(warmup.WarmUp, "_step", recording_step)
    async with Client(build_server(Settings.from_env(kimi_env)), mode="legacy") as client:
        await client.list_resources()
        await client.list_prompts()
        warm, state = await warm_ups.first()
        await anyio.wait_all_tasks_blocked()  # a warm-up that did not wait would have begun its first step by now
        assert steps == [] and state._kimi is None
        await warmed(client, warm_ups)
    assert steps == ["imports", "SDK dry run", "Kimi client", "store"]
    assert state._kimi is not None and warm.failures == []


async def test_without_a_listing_the_warm_up_starts_on_its_own(
    kimi_env: dict[str, str], warm_ups: WarmUps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warmup, "START_WITHOUT_LISTING_SECONDS", 0.1)
    async with Client(build_server(Settings.from_env(kimi_env)), mode="legacy"):
        warm = await warm_ups.first_done()
        state = warm_ups.seen[0][1]
    assert not warm.listed.is_set() and state._kimi is not None and warm.failures == []


async def test_a_server_built_without_warm_up_leaves_everything_to_the_first_call(
    kimi_env: dict[str, str], warm_ups: WarmUps
) -> None:
    async with Client(build_server(Settings.from_env(kimi_env), warm_up=False), mode="legacy") as client:
        await client.list_tools()
        result = await client.call_tool("kimi_chat", {"prompt": "cold"})
    assert warm_ups.seen == [] and not result.is_error


async def test_a_server_closed_during_its_warm_up_exits_cleanly(kimi_env: dict[str, str]) -> None:
    """A host that lists the tools and closes at once (an inspector, a health check) catches the warm-up mid-import:
    the server still exits by itself, with status 0 and nothing alarming on stderr."""
    env = {"PATH": os.environ.get("PATH", ""), **kimi_env, "KIMI_CODE_DEBUG": "1"}
    kimi_mcp = Path(sys.executable).parent / "kimi-mcp"
    initialize = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    stderr = bytearray()
    started = anyio.Event()
    async with await anyio.open_process([str(kimi_mcp), "serve"], env=env) as process:
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        err = process.stderr

        async def read_stderr() -> None:
            async for chunk in err:
                stderr.extend(chunk)
                if b"warm-up starting" in stderr:
                    started.set()

        async with anyio.create_task_group() as readers:
            readers.start_soon(read_stderr)
            await process.stdin.send("".join(json.dumps(line) + "\n" for line in lines).encode())
            with anyio.fail_after(WAIT_SECONDS):
                await started.wait()  # the SDK import has just begun: it takes seconds
            await process.stdin.aclose()
            with anyio.fail_after(WAIT_SECONDS):
                code = await process.wait()
    text = stderr.decode(errors="replace")
    assert code == 0, text[-4000:]
    assert "warm-up step imports done" not in text  # it really was closed mid-import
    assert "Traceback" not in text and "Fatal" not in text and "Exception in thread" not in text, text[-4000:]
