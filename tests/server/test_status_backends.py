"""Backends end to end (docs/backends.md): Moonshot's pay-as-you-go platform (the fake's "platform" profile: no
/coding, OpenAI wire only, its own models and context lengths, no /v1/usages) through a real `mcp.Client`, and
`kimi-mcp status` as a subprocess. Chat works, the reply budget follows the listed context length, the status
reports what the backend supports instead of failing, and the two usual misconfigurations say what to set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import PLATFORM_MODEL, FakeKimi
from kimi_mcp.testing.mcp_results import reply_of, status_of, text_of

pytestmark = pytest.mark.anyio

KEY = "sk-kimi-test-key"
PLATFORM_IDS = ["kimi-k2-0905-preview", "kimi-k2-thinking", "moonshot-v1-128k", "moonshot-v1-8k", "moonshot-v1-auto"]
SCRIPT = Path(sys.executable).parent / "kimi-mcp"


@pytest.fixture
def platform() -> Iterator[FakeKimi]:
    with FakeKimi(profile="platform") as fake:
        yield fake


@pytest.fixture
def platform_env(platform: FakeKimi, tmp_path: Path) -> dict[str, str]:
    """The pay-as-you-go recipe of docs/backends.md, pointed at the fake (the base URL written with /v1)."""
    return {
        "KIMI_CODE_BASE_URL": f"{platform.base_url}/v1",
        "KIMI_CODE_PROTOCOL": "openai",
        "KIMI_MCP_MODEL": PLATFORM_MODEL,
        "KIMI_API_KEY": KEY,
        "KIMI_MCP_HOME": str(tmp_path / "home"),
    }


def server(env: dict[str, str], **changes: str | None) -> Any:
    merged = {**env, **changes}
    return build_server(Settings.from_env({k: v for k, v in merged.items() if v is not None}), warm_up=False)


async def test_the_platform_recipe_chats_and_the_status_says_usage_is_not_available_there(
    platform: FakeKimi, platform_env: dict[str, str]
) -> None:
    async with Client(server(platform_env), mode="legacy") as client:
        chat = await client.call_tool("kimi_chat", {"prompt": "hello platform"})
        status = await client.call_tool("kimi_login_status", {})
    assert not chat.is_error, text_of(chat)
    assert reply_of(chat) == "Fake Kimi reply to: hello platform"
    [sent] = platform.chat_requests()
    assert sent.path == "/v1/chat/completions" and sent.json()["model"] == PLATFORM_MODEL
    assert not status.is_error, text_of(status)
    report = status_of(status)
    assert json.loads(text_of(status)) == report
    assert report["quota_available"] is False
    assert "not available on this backend" in report["quota_note"] and "/v1/usages" in report["quota_note"]
    assert "quota" not in report and "quota_error" not in report
    backend = report["backend"]
    assert backend["kind"] == "openai_compatible" and "404" in backend["inferred_from"]
    assert backend["wire"] == "openai" and backend["chat_url"] == f"{platform.base_url}/v1/chat/completions"
    assert backend["model"] == PLATFORM_MODEL and backend["model_listed"] is True
    assert backend["context_tokens"] == 262_144 and backend["context_source"] == "/v1/models"
    assert backend["credential_works"] is True and backend["advice"] == []
    assert "listed_models" not in backend  # only shown when the model is not among them
    assert KEY not in text_of(status)
    # The model list was read once and shared by the chat and the status; no /v1/messages was ever tried.
    assert platform.count("/v1/models") == 1 and platform.count("/v1/messages") == 0


@pytest.mark.parametrize(
    ("model", "window", "source", "extra"),
    [
        ("moonshot-v1-8k", 8192, "/v1/models", {}),
        ("moonshot-v1-128k", 131_072, "/v1/models", {}),
        ("moonshot-v1-auto", 262_144, "default", {}),  # listed without a context length
        ("moonshot-v1-auto", 32_768, "KIMI_MCP_CONTEXT_TOKENS", {"KIMI_MCP_CONTEXT_TOKENS": "32768"}),
    ],
)
async def test_the_reply_budget_follows_the_models_context_length(
    platform: FakeKimi, platform_env: dict[str, str], model: str, window: int, source: str, extra: dict[str, str]
) -> None:
    async with Client(server(platform_env, KIMI_MCP_MODEL=model, **extra), mode="legacy") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "a short question"})
        second = await client.call_tool("kimi_chat", {"prompt": "another"})
        status = status_of(await client.call_tool("kimi_login_status", {}))
    assert not first.is_error and not second.is_error, text_of(first) + text_of(second)
    budgets = [request.json()["max_completion_tokens"] for request in platform.chat_requests()]
    # What the window leaves after a short prompt (~3 bytes a token): just under the window, never over it.
    assert all(window - 200 < budget < window for budget in budgets), budgets
    assert status["backend"]["context_tokens"] == window and status["backend"]["context_source"] == source
    assert platform.count("/v1/models") == 1  # one cached lookup, not one per call


async def test_a_prompt_that_fills_a_small_window_still_leaves_room_for_a_reply(
    platform: FakeKimi, platform_env: dict[str, str]
) -> None:
    async with Client(server(platform_env, KIMI_MCP_MODEL="moonshot-v1-8k"), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "word " * 6000})  # ~30 KB: past the 8k window
    assert not result.is_error, text_of(result)
    assert platform.chat_requests()[0].json()["max_completion_tokens"] == 4096  # half the window, not 262,144


@pytest.mark.parametrize("model", [PLATFORM_MODEL, "kimi-for-coding"])
async def test_forgetting_the_openai_protocol_on_the_platform_says_to_set_it(
    platform: FakeKimi, platform_env: dict[str, str], model: str
) -> None:
    async with Client(server(platform_env, KIMI_CODE_PROTOCOL=None, KIMI_MCP_MODEL=model), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "q"})
        status = status_of(await client.call_tool("kimi_login_status", {}))
    assert result.is_error
    message = text_of(result)
    assert message.startswith("Error: ") and "KIMI_CODE_PROTOCOL=openai" in message
    assert "/v1/messages answered 404" in message
    if model == PLATFORM_MODEL:
        assert "KIMI_MCP_MODEL" not in message
    else:  # both are wrong: one error says both
        assert f"KIMI_MCP_MODEL to one of the models it lists ({model} is not one)" in message
        assert all(model_id in message for model_id in PLATFORM_IDS)
    assert KEY not in message
    # The server kept serving, and its status points at the fix too (the backend has no /v1/usages).
    assert status["backend"]["wire"] == "anthropic" and status["quota_available"] is False
    assert any("KIMI_CODE_PROTOCOL=openai" in note for note in status["backend"]["advice"])
    assert platform.count("/v1/messages") == 1  # a 404 is not retried


async def test_a_model_the_backend_does_not_list_gets_the_listed_ones_named(
    platform: FakeKimi, platform_env: dict[str, str]
) -> None:
    async with Client(server(platform_env, KIMI_MCP_MODEL="kimi-for-coding"), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", {"prompt": "q"})
        status = status_of(await client.call_tool("kimi_login_status", {}))
    assert result.is_error
    message = text_of(result)
    assert "'kimi-for-coding'" in message and "Set KIMI_MCP_MODEL to one of the models its /v1/models lists" in message
    assert all(model_id in message for model_id in PLATFORM_IDS)
    assert "KIMI_CODE_PROTOCOL" not in message  # the wire was right
    backend = status["backend"]
    assert backend["model_listed"] is False and backend["listed_models"] == PLATFORM_IDS
    assert backend["context_source"] == "default"
    assert any("KIMI_MCP_MODEL" in note for note in backend["advice"])


async def test_on_a_kimi_code_plan_the_status_shows_the_plan_its_quota_and_the_allow_list_advice(
    fake_kimi: FakeKimi, kimi_env: dict[str, str]
) -> None:
    async with Client(server(kimi_env), mode="legacy") as client:
        anthropic = status_of(await client.call_tool("kimi_login_status", {}))
    async with Client(server(kimi_env, KIMI_CODE_PROTOCOL="openai"), mode="legacy") as client:
        openai = status_of(await client.call_tool("kimi_login_status", {}))
    assert anthropic["quota_available"] is True and anthropic["quota"]["five_hour"]["limit"] == 50
    backend = anthropic["backend"]
    assert backend["kind"] == "kimi_code" and backend["description"] == "Kimi Code plan"
    assert "/v1/usages answered" in backend["inferred_from"]
    assert backend["model"] == "kimi-for-coding" and backend["model_listed"] is True
    assert backend["thinking_efforts"] == ["low", "high", "max"] and backend["context_tokens"] == 262_144
    assert backend["chat_url"].endswith("/coding/v1/messages") and backend["advice"] == []
    assert openai["backend"]["chat_url"].endswith("/coding/v1/chat/completions")
    assert any(
        "allow-listed" in note and "KIMI_CODE_PROTOCOL=anthropic" in note for note in openai["backend"]["advice"]
    )


async def test_a_rejected_key_on_the_platform_is_a_quota_error_not_a_crash(
    platform: FakeKimi, platform_env: dict[str, str]
) -> None:
    async with Client(server(platform_env, KIMI_API_KEY="sk-not-the-key"), mode="legacy") as client:
        result = await client.call_tool("kimi_login_status", {})
    assert not result.is_error
    report = status_of(result)
    assert "rejected the API key" in report["quota_error"] and report["backend"]["credential_works"] is False
    assert "sk-not-the-key" not in text_of(result)


# -- kimi-mcp status -----------------------------------------------------------------------------------------------


def run_status(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": env["KIMI_MCP_HOME"]}
    return subprocess.run(
        [str(SCRIPT), "status"], env={**base, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def test_status_on_the_platform_exits_0_and_says_usage_is_not_available(
    platform: FakeKimi, platform_env: dict[str, str]
) -> None:
    done = run_status(platform_env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Kimi API:  {platform.base_url} (openai wire, model {PLATFORM_MODEL})"
    assert lines[1] == "Login:     API key (KIMI_API_KEY)"
    assert lines[2].startswith("Backend:   OpenAI-compatible backend") and "/v1/usages answered 404" in lines[2]
    assert lines[3] == f"Model:     {PLATFORM_MODEL}, listed by /v1/models; context 262,144 tokens (listed)"
    assert lines[4].startswith("Quota:     not available on this backend")
    assert lines[5].startswith("Store:     no conversations yet")  # the conversation store's line comes last
    assert len(lines) == 6 and KEY not in done.stdout + done.stderr


def test_status_names_the_listed_models_and_exits_1_for_a_rejected_key(
    platform: FakeKimi, platform_env: dict[str, str]
) -> None:
    wrong_model = run_status({**platform_env, "KIMI_MCP_MODEL": "kimi-for-coding", "KIMI_CODE_PROTOCOL": "anthropic"})
    assert wrong_model.returncode == 0  # the credential works: the settings need a change, which the notes say
    assert "kimi-for-coding, NOT listed by /v1/models (it lists kimi-k2-0905-preview," in wrong_model.stdout
    assert "Note:      Backends without /v1/usages are usually OpenAI-compatible only" in wrong_model.stdout
    assert "set KIMI_MCP_MODEL to one of kimi-k2-0905-preview" in wrong_model.stdout
    rejected = run_status({**platform_env, "KIMI_API_KEY": "sk-not-the-key"})
    assert rejected.returncode == 1
    assert "Quota:     unavailable: Kimi rejected the API key" in rejected.stdout
    assert "a platform key for Moonshot's platform" in rejected.stdout  # not only "a Kimi Code API key"
