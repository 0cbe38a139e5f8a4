"""Backends at the KimiClient level (kimi/backend.py, docs/backends.md): how the kind is inferred, where the context
window comes from, that the /v1/models lookup is made once (shared, and a failed one not repeated), and what a 404
or a used-up balance says on a backend that is not a Kimi Code plan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from kimi_mcp import errors
from kimi_mcp.kimi import backend, client
from kimi_mcp.kimi.backend import ContextWindow, context_window, infer_kind, probe
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock
from kimi_mcp.kimi.quota import ModelInfo, parse_models
from kimi_mcp.kimi.wires import output_budget
from kimi_mcp.settings import Settings
from kimi_mcp.testing.client_setup import settings_for
from kimi_mcp.testing.fake_kimi import PLATFORM_MODEL, FakeKimi, Fault

pytestmark = pytest.mark.anyio


@pytest.fixture
def platform() -> Iterator[FakeKimi]:
    with FakeKimi(profile="platform") as fake:
        yield fake


def ask(text: str = "q", *, model: str = PLATFORM_MODEL, **fields: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content=[TextBlock(text=text)])], **fields)


def platform_settings(fake: FakeKimi, home: Path, **extra: str) -> Settings:
    env = {"KIMI_CODE_PROTOCOL": "openai", "KIMI_MCP_MODEL": PLATFORM_MODEL, **extra}
    return settings_for(fake, home, **env)


@pytest.mark.parametrize(
    ("base_url", "usages", "kind"),
    [
        ("https://api.kimi.com/coding", None, "kimi_code"),
        ("https://api.kimi.ai/coding", False, "kimi_code"),  # the host is certain; a 404 does not overrule it
        ("https://api.moonshot.ai", None, "moonshot_platform"),
        ("https://API.moonshot.cn", True, "moonshot_platform"),
        ("https://gateway.example/kimi", True, "kimi_code"),  # only a plan (or a gateway in front of one) has usages
        ("https://gateway.example/kimi", False, "openai_compatible"),
        ("http://127.0.0.1:8080/coding", None, "kimi_code"),  # usages unknown: the path decides
        ("https://gateway.example", None, "unknown"),
    ],
)
def test_the_backend_kind_is_inferred_from_the_host_then_usages_then_the_path(
    base_url: str, usages: bool | None, kind: str
) -> None:
    inferred, how = infer_kind(base_url, usages)
    assert inferred == kind and how


def test_the_context_window_is_the_setting_then_the_listed_length_then_the_default() -> None:
    listed = ModelInfo(id="m", context_length=8192)
    unlisted_length = ModelInfo(id="m")
    assert context_window(listed, None) == ContextWindow(8192, "/v1/models")
    assert context_window(listed, 4096) == ContextWindow(4096, "KIMI_MCP_CONTEXT_TOKENS")
    assert context_window(unlisted_length, None) == ContextWindow(262_144, "default")
    assert context_window(None, None) == ContextWindow(262_144, "default")


def test_a_listed_context_length_that_is_not_a_positive_number_counts_as_not_listed() -> None:
    values: list[Any] = [131072, "8192", " 32768 ", "lots", -1, 0, True, None, 1.5, {"tokens": 1}]
    models = parse_models({"data": [{"id": f"m{i}", "context_length": v} for i, v in enumerate(values)]})
    assert [m.context_length for m in models] == [131072, 8192, 32768, None, None, None, None, None, None, None]


def test_the_output_budget_fits_a_small_window() -> None:
    assert output_budget(3000, None, 8192) == 8192 - 1000
    assert output_budget(3 * 8192, None, 8192) == 4096  # the floor, half of a small window
    assert output_budget(3 * 4096, None, 4096) == 2048
    assert output_budget(300, 1000, 8192) == 1000  # a smaller requested budget wins
    assert output_budget(300, None) == 262_144 - 100  # without a window: the default one


async def test_concurrent_first_chats_share_one_model_lookup(platform: FakeKimi, tmp_path: Path) -> None:
    platform.models_delay = 0.3  # the lookup is still running when the other calls arrive
    async with KimiClient(platform_settings(platform, tmp_path, KIMI_MCP_MODEL="moonshot-v1-8k")) as kimi:
        async with anyio.create_task_group() as group:
            for n in range(5):
                group.start_soon(kimi.chat, ask(f"q{n}", model="moonshot-v1-8k"))
        assert await kimi.context_window() == ContextWindow(8192, "/v1/models")
    assert platform.count("/v1/models") == 1
    assert all(r.json()["max_completion_tokens"] < 8192 for r in platform.chat_requests())


class NoModelList(httpx2.AsyncBaseTransport):
    """A gateway without GET /v1/models: 404 for it, everything else passed on to the fake over real HTTP."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.refused = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/v1/models"):
            self.refused += 1
            return httpx2.Response(404, json={"error": {"type": "not_found", "message": "no such route"}})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("retry_after", [300.0, 0.0])
async def test_without_a_model_list_chats_use_the_default_window_and_no_effort_and_do_not_ask_again(
    platform: FakeKimi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, retry_after: float
) -> None:
    monkeypatch.setattr(client, "_MODELS_RETRY_SECONDS", retry_after)
    transport = NoModelList()
    settings = platform_settings(platform, tmp_path)
    async with KimiClient(settings, http=httpx2.AsyncClient(transport=transport)) as kimi:
        for n in range(3):
            result = await kimi.chat(ask(f"q{n}", model=PLATFORM_MODEL, thinking="high"))
            assert result.text == f"Fake Kimi reply to: q{n}"
        report = await probe(kimi)
    bodies = [r.json() for r in platform.chat_requests()]
    assert all(262_144 - 200 < body["max_completion_tokens"] < 262_144 for body in bodies)
    assert all(body["thinking"] == {"type": "enabled"} for body in bodies)  # no list, no effort (§5)
    # One failed lookup for the three chats while the retry window lasts (the probe asks on its own); with no
    # window, every chat asks again: the window is what saves a request per call.
    assert transport.refused == (2 if retry_after else 4)
    assert report.model_listed is None and report.models_problem and "404" in report.models_problem
    assert report.quota_available is False and report.credential_works is False  # nothing answered with the key
    assert report.advice[0].startswith("The credential could not be checked")


async def test_a_used_up_balance_on_the_platform_does_not_talk_of_a_5_hour_window(
    platform: FakeKimi, tmp_path: Path
) -> None:
    platform.script(Fault(429, "exceeded_current_quota_error", "Your account is suspended: insufficient balance"))
    async with KimiClient(platform_settings(platform, tmp_path)) as kimi:
        with pytest.raises(errors.QuotaExceeded) as caught:
            await kimi.chat(ask(model=PLATFORM_MODEL))
    message = caught.value.message
    assert "insufficient balance" in message and "no /v1/usages" in message and "console" in message
    assert "5-hour" not in message and "Kimi Code plan" not in message
    assert len(platform.chat_requests()) == 1 and platform.count("/v1/usages") == 1  # not retried


async def test_on_a_kimi_code_plan_a_used_up_quota_still_names_the_window(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    fake_kimi.script(Fault(429, "exceeded_current_quota_error", "quota used up"))
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        with pytest.raises(errors.QuotaExceeded, match="The 5-hour window resets at "):
            await kimi.chat(ask(model="kimi-for-coding"))


async def test_the_openai_wire_at_a_wrong_path_says_to_check_the_base_url(platform: FakeKimi, tmp_path: Path) -> None:
    settings = settings_for(
        platform, tmp_path, KIMI_CODE_PROTOCOL="openai", KIMI_CODE_BASE_URL=f"{platform.base_url}/api"
    )
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.ChatEndpointMissing, match="Check KIMI_CODE_BASE_URL") as caught:
            await kimi.chat(ask(model=PLATFORM_MODEL))
    assert f"POST {platform.base_url}/api/v1/chat/completions answered 404" in caught.value.message
    assert "https://api.moonshot.ai/v1" in caught.value.message


def kimi_code_answers(model_error: str) -> httpx2.MockTransport:
    """Kimi Code's host (no network: a mock): a model list with `kimi-for-coding`; every chat a 404."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/coding/v1/models":
            return httpx2.Response(200, json={"data": [{"id": "kimi-for-coding", "context_length": 262144}]})
        return httpx2.Response(
            404, json={"type": "error", "error": {"type": "not_found_error", "message": model_error}}
        )

    return httpx2.MockTransport(answer)


@pytest.mark.parametrize(
    ("model", "expected"),
    [("kimi-for-coding", errors.BadRequest), ("kimi-k2-typo", errors.ModelNotListed)],
)
async def test_on_kimi_codes_own_host_a_404_is_never_blamed_on_the_wire(
    tmp_path: Path, model: str, expected: type[errors.UpstreamError]
) -> None:
    settings = Settings(api_key="sk-kimi-test-key", home=tmp_path, base_url="https://api.kimi.com/coding")
    async with KimiClient(settings, http=httpx2.AsyncClient(transport=kimi_code_answers("not found"))) as kimi:
        with pytest.raises(errors.UpstreamError) as caught:
            await kimi.chat(ask(model=model))
    assert type(caught.value) is expected
    assert "KIMI_CODE_PROTOCOL" not in caught.value.message


def test_the_backend_module_names_moonshots_hosts() -> None:
    assert backend.kind_of_url("https://api.moonshot.ai/v1") == "moonshot_platform"
    assert backend.kind_of_url("https://api.kimi.com/coding") == "kimi_code"
    assert backend.kind_of_url("http://127.0.0.1:1") is None
