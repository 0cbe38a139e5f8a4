"""The warm-up follows the wire in effect (server/warmup.py): with KIMI_CODE_PROTOCOL=openai it never imports the
`anthropic` SDK (that wire never uses it: ~3 s and ~44 MiB for nothing), warms the OpenAI wire instead, and a call
afterwards still needs no SDK. What a fresh server imports is only visible in a fresh interpreter, so the main
check runs a script in a subprocess, as tests/server/test_warmup.py does."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import pytest
from mcp import Client

from kimi_mcp.server import warmup
from kimi_mcp.server.app import build_server
from kimi_mcp.server.state import AppState
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.mcp_results import reply_of

pytestmark = pytest.mark.anyio

WAIT_SECONDS = 120.0

FRESH_SERVER = """
import json, sys
import anyio
from mcp import Client
from kimi_mcp.server import warmup
from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings

warmup.SETTLE_SECONDS = 0
seen = []
_run = warmup.WarmUp.run

async def recording_run(self, state):
    seen.append(self)
    await _run(self, state)

warmup.WarmUp.run = recording_run

async def main():
    out = {}
    async with Client(build_server(Settings.from_env()), mode="legacy") as client:
        await client.list_tools()
        with anyio.fail_after(120):
            while not (seen and seen[0].done.is_set()):
                await anyio.sleep(0.02)
        out["failures"] = seen[0].failures
        out["after_warm_up"] = {m: m in sys.modules for m in ("anthropic", "kimi_mcp.kimi.openai_wire", "truststore")}
        result = await client.call_tool("kimi_chat", {"prompt": "after an openai warm-up"})
        out["text"] = "".join(block.text for block in result.content if block.type == "text")
        out["is_error"] = result.is_error
        out["anthropic_after_call"] = "anthropic" in sys.modules
    print(json.dumps(out))

anyio.run(main)
"""


async def test_an_openai_server_warms_its_own_wire_and_never_imports_the_anthropic_sdk(
    kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    env = {"PATH": os.environ.get("PATH", ""), **kimi_env, "KIMI_CODE_PROTOCOL": "openai"}
    with anyio.fail_after(WAIT_SECONDS + 60):
        done = await anyio.run_process([sys.executable, "-c", FRESH_SERVER], env=env, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    out: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert out["failures"] == []
    assert out["after_warm_up"] == {"anthropic": False, "kimi_mcp.kimi.openai_wire": True, "truststore": True}
    assert out["is_error"] is False and out["text"].startswith("Fake Kimi reply to: after an openai warm-up")
    assert out["anthropic_after_call"] is False
    assert len(fake_kimi.chat_completions_requests()) == 1 and fake_kimi.messages_requests() == []


@pytest.mark.parametrize(
    ("protocol", "dry_run"), [("openai", "wire dry run"), ("anthropic", "SDK dry run")], ids=["openai", "anthropic"]
)
async def test_the_warm_up_steps_follow_the_protocol(
    kimi_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, protocol: str, dry_run: str
) -> None:
    monkeypatch.setattr(warmup, "START_WITHOUT_LISTING_SECONDS", 3600.0)
    monkeypatch.setattr(warmup, "SETTLE_SECONDS", 0.0)
    steps: list[str] = []
    imported: list[tuple[str, ...]] = []
    runs: list[tuple[warmup.WarmUp, AppState]] = []
    started = anyio.Event()
    step, run, import_all = warmup.WarmUp._step, warmup.WarmUp.run, warmup.import_all

    async def recording_step(self: warmup.WarmUp, name: str, work: Any) -> None:
        steps.append(name)
        await step(self, name, work)

    async def recording_run(self: warmup.WarmUp, state: AppState) -> None:
        runs.append((self, state))
        started.set()
        await run(self, state)

    def recording_import_all(names: tuple[str, ...]) -> None:
        imported.append(names)
        import_all(names)

    monkeypatch.setattr(warmup.WarmUp, "_step", recording_step)
    monkeypatch.setattr(warmup.WarmUp, "run", recording_run)
    monkeypatch.setattr(warmup, "import_all", recording_import_all)
    settings = Settings.from_env({**kimi_env, "KIMI_CODE_PROTOCOL": protocol})
    async with Client(build_server(settings), mode="legacy") as client:
        await client.list_tools()
        with anyio.fail_after(WAIT_SECONDS):
            await started.wait()
            await runs[0][0].done.wait()
        result = await client.call_tool("kimi_chat", {"prompt": "warm"})
    assert steps == ["imports", dry_run, "Kimi client", "store"] and runs[0][0].failures == []
    expected = warmup.OPENAI_IMPORTS if protocol == "openai" else warmup.IMPORTS
    assert imported == [expected] and ("anthropic" in expected) is (protocol == "anthropic")
    assert not result.is_error and reply_of(result) == "Fake Kimi reply to: warm"


def test_the_openai_dry_run_reads_a_whole_reply_through_the_wire() -> None:
    result = warmup.dry_run_openai()
    assert (result.text, result.thinking, result.stop_reason) == ("ok", ".", "end_turn")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1, 1)
