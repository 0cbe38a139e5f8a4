"""KimiClient on the wire, against the fake Kimi over real HTTP (docs/kimi-api.md §2, §4, §9).

How answers are read (usage, stream cleaning, a cut or unfinished stream) and every error of §9 is checked on both
wires (the `wire` fixture, tests/conftest.py); identity and the SDK's environment on the Anthropic wire here, on the
OpenAI wire in test_openai_wire.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kimi_mcp import errors
from kimi_mcp._version import __version__
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.settings import Settings
from kimi_mcp.testing.client_setup import ask, settings_for
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, Reply

pytestmark = pytest.mark.anyio
KEY = "sk-kimi-test-key"
WireSettings = Callable[..., Settings]


async def test_request_carries_bearer_identity_and_no_api_key_header(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        result = await kimi.chat(ask())
    assert result.text == "Fake Kimi reply to: What is 2+2?"
    assert result.stop_reason == "end_turn"
    [sent] = fake_kimi.messages_requests()
    headers = sent.headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert "x-api-key" not in headers
    assert headers["user-agent"] == f"kimi-mcp/{__version__}"
    for name in ("x-msh-platform", "x-msh-version", "x-msh-device-name", "x-msh-device-model", "x-msh-os-version"):
        assert headers[name].isascii() and headers[name].isprintable() and headers[name]
    assert headers["x-msh-platform"] == "kimi_mcp"
    assert len(headers["x-msh-device-id"]) == 32
    body = sent.json()
    assert body["model"] == "kimi-for-coding"
    assert body["stream"] is True
    assert sent.path == "/coding/v1/messages"


async def test_usage_includes_cache_reads(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    long_text = "x" * 20_000
    async with KimiClient(wire_settings()) as kimi:
        first = await kimi.chat(ask(long_text))
        second = await kimi.chat(ask(long_text))
    assert first.usage.cache_read_tokens == 0 and first.usage.input_tokens > 4000
    assert second.usage.cache_read_tokens >= 4096
    assert second.usage.output_tokens > 0


async def test_anthropic_environment_never_reaches_kimi(
    fake_kimi: FakeKimi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinels = {
        "ANTHROPIC_API_KEY": "SENTINEL-anthropic-api-key",
        "ANTHROPIC_AUTH_TOKEN": "SENTINEL-anthropic-auth-token",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:1/SENTINEL-base",
        "ANTHROPIC_CUSTOM_HEADERS": (
            "X-Sentinel: SENTINEL-custom-header\nAuthorization: Bearer SENTINEL-auth-header\nContent-Type: text/plain"
        ),
        "OPENAI_API_KEY": "SENTINEL-openai",
    }
    for name, value in sentinels.items():
        monkeypatch.setenv(name, value)
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        await kimi.chat(ask())
        await kimi.models()
    assert len(fake_kimi.requests) == 2
    assert fake_kimi.messages_requests()[0].headers["content-type"] == "application/json"
    for recorded in fake_kimi.requests:
        assert recorded.headers["authorization"] == f"Bearer {KEY}"
        wire = json.dumps(recorded.headers) + recorded.body.decode() + recorded.path
        assert "SENTINEL" not in wire


async def test_custom_headers_add_but_never_override_identity(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    custom = "X-Gateway: team-a\nUser-Agent: KimiCLI/1.0\nX-Msh-Platform: kimi_cli\nAuthorization: Bearer nope"
    async with KimiClient(settings_for(fake_kimi, tmp_path, KIMI_CODE_CUSTOM_HEADERS=custom)) as kimi:
        await kimi.chat(ask())
    headers = fake_kimi.messages_requests()[0].headers
    assert headers["x-gateway"] == "team-a"
    assert headers["user-agent"] == f"kimi-mcp/{__version__}"
    assert headers["x-msh-platform"] == "kimi_mcp"
    assert headers["authorization"] == f"Bearer {KEY}"


async def test_stream_without_stop_reason_is_an_error(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(Reply(text="half an answ", stop_reason=None))
    async with KimiClient(wire_settings()) as kimi:
        with pytest.raises(errors.IncompleteStream) as err:
            await kimi.chat(ask())
    assert "no stop reason" in str(err.value)
    assert len(fake_kimi.chat_requests()) == 1  # a reply that began is not sent again


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(status=402, error_type="membership_expired"), errors.MembershipExpired),
        (Fault(status=403, error_type="access_terminated_error"), errors.ClientRefused),
        (Fault(status=403, error_type="permission_error"), errors.Forbidden),
        (Fault(status=429, error_type="exceeded_current_quota_error"), errors.QuotaExceeded),
        (Fault(status=400, error_type="invalid_request_error", message="context too long"), errors.BadRequest),
    ],
)
async def test_unretryable_faults_map_to_one_error_and_one_request(
    fake_kimi: FakeKimi, wire_settings: WireSettings, fault: Fault, expected: type[Exception]
) -> None:
    fake_kimi.script(fault)
    async with KimiClient(wire_settings()) as kimi:
        with pytest.raises(expected) as err:
            await kimi.chat(ask())
    assert len(fake_kimi.chat_requests()) == 1
    assert KEY not in str(err.value)


async def test_server_errors_are_retried_then_succeed(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(Fault(status=500), Fault(status=503, retry_after=0.1))
    async with KimiClient(wire_settings()) as kimi:
        result = await kimi.chat(ask("retry me"))
    assert result.text == "Fake Kimi reply to: retry me"
    assert len(fake_kimi.chat_requests()) == 3


async def test_persistent_server_error_is_a_clear_error(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(*[Fault(status=502, retry_after=0.05)] * 3)
    async with KimiClient(wire_settings()) as kimi:
        with pytest.raises(errors.ServiceUnavailable) as err:
            await kimi.chat(ask())
    assert "try again" in str(err.value) and "HTTP 502" in str(err.value)
    assert len(fake_kimi.chat_requests()) == 3  # the default two retries, then the error


async def test_rate_limit_honours_retry_after_then_succeeds(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(Fault(status=429, error_type="rate_limit_error", retry_after=0.2))
    async with KimiClient(wire_settings()) as kimi:
        await kimi.chat(ask())
    first, second = fake_kimi.chat_requests()
    assert second.received_at - first.received_at >= 0.19


async def test_long_retry_after_is_not_waited_out(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(Fault(status=429, error_type="rate_limit_error", retry_after=3600))
    async with KimiClient(wire_settings()) as kimi:
        with pytest.raises(errors.RateLimited) as err:
            await kimi.chat(ask())
    assert len(fake_kimi.chat_requests()) == 1
    assert err.value.retry_after == 3600


async def test_side_apis_parse_models_and_quota(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        models = await kimi.models()
        quota = await kimi.quota()
    assert models[0].id == "kimi-for-coding" and set(models[0].efforts) == {"low", "high", "max"}
    assert quota.five_hour is not None and quota.five_hour.limit == 50 and quota.five_hour.used == 3
    assert quota.weekly is not None and quota.weekly.limit == 100
    assert quota.five_hour.reset_at is not None and quota.five_hour.reset_at[:4].isdigit()


async def test_placeholder_block_never_reaches_the_result(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    placeholder = "(Empty response: {'content': [{'type': 'thinking'}]})"
    fake_kimi.script(Reply(thinking="pondering", text=placeholder, text_deltas=list(placeholder)))
    seen: list[str] = []

    async def on_progress(progress):  # type: ignore[no-untyped-def]
        seen.append(progress.new_text)

    async with KimiClient(wire_settings()) as kimi:
        result = await kimi.chat(ask(), on_progress=on_progress)
    assert result.text == ""
    assert "".join(seen) == ""
    assert result.note and "only thinking" in result.note
    assert result.thinking == "pondering"


async def test_quota_error_says_when_the_five_hour_window_resets(
    fake_kimi: FakeKimi, wire_settings: WireSettings
) -> None:
    fake_kimi.script(Fault(status=429, error_type="rate_limit_error", message="exceeded_current_quota_error: used up"))
    async with KimiClient(wire_settings()) as kimi:
        with pytest.raises(errors.QuotaExceeded) as err:
            await kimi.chat(ask())
    reset = fake_kimi.usages["limits"][0]["detail"]["resetTime"]
    assert reset[:16] in str(err.value).replace("+00:00", "Z")
    assert len(fake_kimi.chat_requests()) == 1  # a used-up quota is never retried


async def test_a_thinking_only_turn_without_placeholder_gets_a_note(
    fake_kimi: FakeKimi, wire_settings: WireSettings
) -> None:
    fake_kimi.script(Reply(thinking="only thoughts", text=""))
    async with KimiClient(wire_settings()) as kimi:
        result = await kimi.chat(ask())
    assert result.text == "" and result.thinking == "only thoughts"
    assert result.note and "only thinking" in result.note


async def test_a_stream_cut_mid_reply_is_an_incomplete_reply_not_an_unreachable_kimi(
    fake_kimi: FakeKimi, wire_settings: WireSettings
) -> None:
    fake_kimi.script(*[Reply(text="partial answer " * 20, cut_after_events=5)] * 5)
    async with KimiClient(wire_settings()) as kimi:
        with pytest.raises(errors.IncompleteStream) as err:
            await kimi.chat(ask())
    assert "connection closed mid-reply" in str(err.value) and "Call again" in str(err.value)
    assert "could not be reached" not in str(err.value)
