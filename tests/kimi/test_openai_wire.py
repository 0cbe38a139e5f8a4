"""The OpenAI wire (KIMI_CODE_PROTOCOL=openai): exact bodies (docs/kimi-api.md §5, §6, §7), and KimiClient on it
against the fake's /coding/v1/chat/completions over real HTTP (§2, §8, §9).

What both wires must do alike (retries, the error map, the concurrency limit, stream cleaning, a cut or unfinished
stream) is not repeated here: those tests run on both wires (the `wire` fixture, tests/conftest.py) in
test_client_faults.py, test_client_wire.py and tests/server/."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx2
import pytest

from kimi_mcp import errors
from kimi_mcp._version import __version__
from kimi_mcp.kimi import wires
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.models import (
    Base64Source,
    ChatRequest,
    ImageBlock,
    Message,
    StreamProgress,
    TextBlock,
    UrlSource,
    VideoBlock,
)
from kimi_mcp.kimi.openai_wire import build_body, read_reply
from kimi_mcp.kimi.upstream import MAX_REQUEST_BYTES
from kimi_mcp.settings import Settings
from kimi_mcp.testing.client_setup import ask, settings_for
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, Reply

KEY = "sk-kimi-test-key"
EFFORTS = frozenset({"low", "high", "max"})
FORBIDDEN_KEYS = {"max_tokens", "reasoning_effort", "temperature", "top_p", "extra_body", "output_config"}


def request(**fields: object) -> ChatRequest:
    base: dict[str, object] = {
        "model": "kimi-for-coding",
        "messages": [Message(role="user", content=[TextBlock(text="hi")])],
    }
    base.update(fields)
    return ChatRequest(**base)  # type: ignore[arg-type]


def openai(fake: FakeKimi, home: Path, **extra: str) -> Settings:
    return settings_for(fake, home, KIMI_CODE_PROTOCOL="openai", **extra)


def keys_of(value: Any) -> set[str]:
    """Every key of every object in a JSON value, nested ones included."""
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys_of(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys_of(item)}
    return set()


# -- exact bodies, no network ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "thinking"),
    [
        ("off", {"type": "disabled"}),  # this surface thinks by default: off must say so (§5)
        ("low", {"type": "enabled", "effort": "low"}),
        ("high", {"type": "enabled", "effort": "high"}),
        ("max", {"type": "enabled", "effort": "max"}),
    ],
)
def test_exact_body_for_each_thinking_level(level: str, thinking: dict[str, str]) -> None:
    body = build_body(
        request(system="be brief", thinking=level, max_output_tokens=1000, cache_key="kc_1"), efforts=EFFORTS
    )
    assert body == {
        "model": "kimi-for-coding",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
        "max_completion_tokens": 1000,
        "thinking": thinking,
        "prompt_cache_key": "kc_1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert not keys_of(body) & FORBIDDEN_KEYS
    assert "developer" not in json.dumps(body)


def test_an_effort_the_model_does_not_list_is_left_out() -> None:
    assert build_body(request(thinking="max"), efforts=frozenset({"low", "high"}))["thinking"] == {"type": "enabled"}
    assert build_body(request(thinking="high"))["thinking"] == {"type": "enabled"}


def test_no_cache_key_no_prompt_cache_key_and_the_budget_is_the_context_left() -> None:
    body = build_body(request())
    assert "prompt_cache_key" not in body
    assert 262_144 - 100 < body["max_completion_tokens"] <= 262_144
    assert "system" not in {m["role"] for m in body["messages"]}


def test_media_parts_use_ms_urls_and_data_urls_and_history_text_is_a_string() -> None:
    user = Message(
        role="user",
        content=[
            TextBlock(text="compare"),
            ImageBlock(source=UrlSource(url="ms://file-a")),
            ImageBlock(source=Base64Source(media_type="image/png", data="iVBORw0KGgo=")),
            VideoBlock(source=UrlSource(url="ms://file-v")),
            TextBlock(text=""),  # empty text blocks are dropped, as on the Anthropic wire
        ],
    )
    history = [
        user,
        Message(role="assistant", content=[TextBlock(text="They differ.")]),
        Message(role="user", content=[TextBlock(text="more")]),
        Message(role="assistant", content=[]),  # a thinking-only turn: the fixed stand-in keeps the bytes stable
        Message(role="user", content=[TextBlock(text="and?")]),
    ]
    messages = build_body(request(messages=history))["messages"]
    assert messages[0] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "compare"},
            {"type": "image_url", "image_url": {"url": "ms://file-a"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "video_url", "video_url": {"url": "ms://file-v"}},
        ],
    }
    assert messages[1] == {"role": "assistant", "content": "They differ."}
    assert messages[3] == {"role": "assistant", "content": wires.EMPTY_REPLY_STAND_IN}


def test_same_request_gives_identical_bytes() -> None:
    r = request(system="s", cache_key="kc_x", thinking="high")
    assert wires.encode(build_body(r, efforts=EFFORTS)) == wires.encode(build_body(r.model_copy(), efforts=EFFORTS))


def padded(total: int) -> ChatRequest:
    """A request whose OpenAI body is exactly `total` bytes as sent."""
    base = request(max_output_tokens=1000)
    size = wires.body_bytes(build_body(base))
    text = "x" * (total - size + len("hi"))
    return request(max_output_tokens=1000, messages=[Message(role="user", content=[TextBlock(text=text)])])


def test_the_request_cap_is_checked_on_the_bytes_this_wire_sends() -> None:
    assert wires.body_bytes(build_body(padded(MAX_REQUEST_BYTES))) == MAX_REQUEST_BYTES
    with pytest.raises(errors.RequestOverBodyCap) as err:
        build_body(padded(MAX_REQUEST_BYTES + 1))
    assert f"{MAX_REQUEST_BYTES + 1:,} bytes" in str(err.value)
    # The selector the media policy uses checks the same body.
    with pytest.raises(errors.RequestOverBodyCap):
        wires.build_body("openai", padded(MAX_REQUEST_BYTES + 1))


# -- answers read without the network (shapes the fake does not send) -----------------------------------------


async def read(content_type: str, body: bytes) -> Any:
    sent = httpx2.Request("POST", "http://kimi.invalid/coding/v1/chat/completions")
    response = httpx2.Response(200, headers={"content-type": content_type}, content=body, request=sent)
    return await read_reply(response, "kimi-for-coding", None)


@pytest.mark.anyio
async def test_a_gateway_answering_one_json_completion_is_read_too() -> None:
    completion = {
        "model": "kimi-k2",
        "choices": [
            {"index": 0, "message": {"content": "whole", "reasoning_content": "hm"}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}},
    }
    result = await read("application/json", json.dumps(completion).encode())
    assert (result.text, result.thinking, result.stop_reason, result.model) == ("whole", "hm", "max_tokens", "kimi-k2")
    assert (result.usage.input_tokens, result.usage.cache_read_tokens, result.usage.output_tokens) == (40, 60, 7)
    assert result.usage.cache_hit_ratio == 0.6


@pytest.mark.anyio
async def test_an_error_inside_the_stream_is_an_incomplete_reply() -> None:
    frames = b'data: {"choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'
    frames += b'data: {"error":{"type":"server_error","message":"overloaded"}}\n\n'
    with pytest.raises(errors.IncompleteStream) as err:
        await read("text/event-stream", frames)
    assert "overloaded" in str(err.value)


@pytest.mark.anyio
async def test_a_malformed_event_or_a_non_chat_answer_is_an_error_not_a_crash() -> None:
    with pytest.raises(errors.IncompleteStream):
        await read("text/event-stream", b"data: {not json\n\n")
    with pytest.raises(errors.ServiceUnavailable) as err:
        await read("text/html", b"<html>proxy login</html>")
    assert "text/html" in str(err.value)


# -- KimiClient on this wire, against the fake ------------------------------------------------------------------


@pytest.mark.anyio
async def test_request_goes_to_chat_completions_with_our_identity(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
        result = await kimi.chat(ask())
    assert result.text == "Fake Kimi reply to: What is 2+2?"
    assert result.stop_reason == "end_turn" and result.model == "kimi-for-coding"
    assert fake_kimi.messages_requests() == []
    [sent] = fake_kimi.chat_completions_requests()
    assert sent.path == "/coding/v1/chat/completions" and sent.status == 200
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["user-agent"] == f"kimi-mcp/{__version__}"
    assert sent.headers["x-msh-platform"] == "kimi_mcp"
    assert "x-api-key" not in sent.headers and "anthropic-version" not in sent.headers
    assert sent.headers["content-type"] == "application/json"
    body = sent.json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["thinking"] == {"type": "disabled"}
    assert not keys_of(body) & FORBIDDEN_KEYS


@pytest.mark.anyio
@pytest.mark.parametrize("level", ["low", "high", "max"])
async def test_thinking_effort_reaches_the_fake_only_when_models_lists_it(
    fake_kimi: FakeKimi, tmp_path: Path, level: str
) -> None:
    async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
        await kimi.chat(ask(thinking=level))
    fake_kimi.models[0].pop("think_efforts")
    async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
        await kimi.chat(ask(thinking=level))
    listed, unlisted = (r.json()["thinking"] for r in fake_kimi.chat_completions_requests())
    assert listed == {"type": "enabled", "effort": level}
    assert unlisted == {"type": "enabled"}


@pytest.mark.anyio
async def test_reasoning_streams_as_thinking_before_the_answer(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    fake_kimi.script(Reply(thinking="pondering " * 5, text="The answer is 4."))
    phases: list[str] = []
    shown: list[str] = []

    async def on_progress(progress: StreamProgress) -> None:
        phases.append(progress.phase)
        shown.append(progress.new_text)

    async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
        result = await kimi.chat(ask(thinking="high"), on_progress=on_progress)
    assert result.thinking == "pondering " * 5 and result.text == "The answer is 4."
    assert (
        phases.index("answering") > phases.index("thinking") and "thinking" not in phases[phases.index("answering") :]
    )
    assert "".join(shown) == "The answer is 4."
    assert result.note is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    "shape",
    [{}, {"usage_in_choice": True}, {"usage_in_own_chunk": True}, {"cached_tokens_in_details": True}],
    ids=["top-level", "in-choice", "own-chunk", "prompt-details"],
)
async def test_usage_and_cache_reads_from_every_place_kimi_puts_them(
    fake_kimi: FakeKimi, tmp_path: Path, shape: dict[str, bool]
) -> None:
    long_text = "x" * 20_000
    fake_kimi.script(Reply(text="one", output_tokens=11, **shape), Reply(text="two", output_tokens=12, **shape))
    async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
        first = await kimi.chat(ask(long_text))
        second = await kimi.chat(ask(long_text))
    assert first.usage.cache_read_tokens == 0 and first.usage.input_tokens > 4000
    assert (first.usage.output_tokens, second.usage.output_tokens) == (11, 12)
    assert second.usage.cache_read_tokens >= 4096
    # prompt_tokens counts the cached ones on this wire; ours keeps them apart, as the Anthropic wire does.
    assert second.usage.prompt_tokens == first.usage.prompt_tokens
    assert second.usage.input_tokens == first.usage.prompt_tokens - second.usage.cache_read_tokens
    assert second.usage.cache_hit_ratio >= 0.9


@pytest.mark.anyio
@pytest.mark.parametrize(("scripted", "ours"), [("length", "max_tokens"), ("max_tokens", "max_tokens")])
async def test_finish_reason_length_is_reported_as_max_tokens(
    fake_kimi: FakeKimi, tmp_path: Path, scripted: str, ours: str
) -> None:
    fake_kimi.script(Reply(text="cut short", stop_reason=scripted))
    async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
        result = await kimi.chat(ask())
    assert (result.text, result.stop_reason) == ("cut short", ours)


@pytest.mark.anyio
async def test_server_errors_and_a_dropped_connection_are_retried(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    fake_kimi.script(Fault(status=500), Fault(500, drop_connection=True), Fault(status=503, retry_after=0.05))
    async with KimiClient(openai(fake_kimi, tmp_path, KIMI_MCP_MAX_RETRIES="3")) as kimi:
        assert (await kimi.chat(ask("again"))).text == "Fake Kimi reply to: again"
    assert len(fake_kimi.chat_completions_requests()) == 4


@pytest.mark.anyio
async def test_401_recovers_the_login_once(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    from kimi_mcp.testing.client_setup import store_issued_login

    store_issued_login(fake_kimi, tmp_path)
    settings = Settings(home=tmp_path, base_url=fake_kimi.base_url, oauth_host=fake_kimi.oauth_host, protocol="openai")
    fake_kimi.script(Fault(401, "authentication_error", "token expired"))
    async with KimiClient(settings) as kimi:
        assert (await kimi.ask("after a 401")) == "Fake Kimi reply to: after a 401"
    first, second = fake_kimi.chat_completions_requests()
    assert (first.status, second.status) == (401, 200)
    assert first.headers["authorization"] != second.headers["authorization"]
    assert fake_kimi.count("/api/oauth/token", grant_type="refresh_token") == 1


@pytest.mark.anyio
async def test_401_with_an_api_key_is_a_clear_error_after_one_try(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    fake_kimi.script(*[Fault(401, "authentication_error")] * 3)
    async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
        with pytest.raises(errors.Unauthorized):
            await kimi.ask("bad key")
    assert len(fake_kimi.chat_completions_requests()) == 1


@pytest.mark.anyio
async def test_the_allow_list_403_says_to_use_the_anthropic_wire_which_works(
    fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    fake_kimi.openai_allow_list = True
    async with KimiClient(openai(fake_kimi, tmp_path, KIMI_MCP_MAX_RETRIES="3")) as kimi:
        with pytest.raises(errors.ClientRefused) as err:
            await kimi.chat(ask())
    message = str(err.value)
    assert isinstance(err.value, errors.AllowListRefused)
    assert "allow-listed clients" in message and "KIMI_CODE_PROTOCOL=anthropic (the default)" in message
    assert "same key" in message and "Coding Agents" in message  # the service's own words are kept
    assert len(fake_kimi.chat_completions_requests()) == 1  # a refusal is not retried
    # The advice holds: the same key on the Anthropic wire, same fake.
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        assert (await kimi.chat(ask())).text == "Fake Kimi reply to: What is 2+2?"


@pytest.mark.anyio
async def test_access_terminated_on_the_anthropic_wire_keeps_its_own_message(
    fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    fake_kimi.script(Fault(403, "access_terminated_error", "account suspended"))
    async with KimiClient(settings_for(fake_kimi, tmp_path)) as kimi:
        with pytest.raises(errors.ClientRefused) as err:
            await kimi.chat(ask())
    assert not isinstance(err.value, errors.AllowListRefused)


@pytest.mark.anyio
async def test_access_terminated_on_moonshots_platform_does_not_advise_the_anthropic_wire(tmp_path: Path) -> None:
    # The platform has no Kimi Code allow-list (docs/backends.md); which backend answered is known only by its host,
    # so this one test answers from a mock transport standing in for api.moonshot.ai instead of the loopback fake.
    seen: list[str] = []

    def platform(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        if request.url.path.endswith("/models"):
            return httpx2.Response(200, json={"data": [{"id": "kimi-k2-0905-preview", "context_length": 262144}]})
        return httpx2.Response(403, json={"error": {"type": "access_terminated_error", "message": "suspended"}})

    settings = Settings.from_env(
        {
            "KIMI_API_KEY": "sk-platform-test",
            "KIMI_CODE_BASE_URL": "https://api.moonshot.ai/v1",
            "KIMI_CODE_PROTOCOL": "openai",
            "KIMI_MCP_MODEL": "kimi-k2-0905-preview",
            "KIMI_MCP_HOME": str(tmp_path),
        }
    )
    async with KimiClient(settings, http=httpx2.AsyncClient(transport=httpx2.MockTransport(platform))) as kimi:
        with pytest.raises(errors.ClientRefused) as err:
            await kimi.chat(ask().model_copy(update={"model": "kimi-k2-0905-preview"}))
    assert not isinstance(err.value, errors.AllowListRefused)
    assert seen[-1] == "https://api.moonshot.ai/v1/chat/completions"


@pytest.mark.anyio
async def test_openai_environment_never_reaches_kimi(
    fake_kimi: FakeKimi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeKimi() as trap:
        sentinels = {
            "OPENAI_API_KEY": "SENTINEL-openai-api-key",
            "OPENAI_BASE_URL": f"{trap.base_url}/v1",
            "OPENAI_ORG_ID": "SENTINEL-org",
            "OPENAI_PROJECT_ID": "SENTINEL-project",
        }
        for name, value in sentinels.items():
            monkeypatch.setenv(name, value)
        async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
            await kimi.chat(ask(thinking="high"))
            await kimi.models()
        assert trap.requests == []
    # models() was read once, for the effort; the chat went to the Kimi base URL, not to OPENAI_BASE_URL.
    assert [r.path for r in fake_kimi.requests] == ["/coding/v1/models", "/coding/v1/chat/completions"]
    for recorded in fake_kimi.requests:
        assert recorded.headers["authorization"] == f"Bearer {KEY}"
        wire = json.dumps(recorded.headers) + recorded.body.decode() + recorded.path
        assert "SENTINEL" not in wire
        assert not {"openai-organization", "openai-project"} & set(recorded.headers)


@pytest.mark.anyio
async def test_an_over_cap_request_is_refused_before_sending_and_one_at_the_cap_is_sent(
    fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
        with pytest.raises(errors.RequestOverBodyCap):
            await kimi.chat(padded(MAX_REQUEST_BYTES + 1))
        assert fake_kimi.chat_completions_requests() == []
        await kimi.chat(padded(MAX_REQUEST_BYTES))
    [sent] = fake_kimi.chat_completions_requests()
    assert sent.body_size == MAX_REQUEST_BYTES and sent.status == 200


@pytest.mark.anyio
async def test_inline_and_uploaded_media_reach_the_fake_as_parts(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    image = ImageBlock(source=Base64Source(media_type="image/png", data="iVBORw0KGgo="))
    gone = ImageBlock(source=UrlSource(url="ms://fakefile424242"))
    async with KimiClient(openai(fake_kimi, tmp_path)) as kimi:
        await kimi.chat(request(messages=[Message(role="user", content=[TextBlock(text="look"), image])]))
        with pytest.raises(errors.MediaGone) as err:  # the shared map reads this surface's error too
            await kimi.chat(request(messages=[Message(role="user", content=[gone])]))
    assert err.value.reference == "ms://fakefile424242"
    first = fake_kimi.chat_completions_requests()[0].json()["messages"][0]["content"]
    assert first[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


# A fresh interpreter: what this wire loads can only be seen where nothing else loaded it first.
NO_SDK = """
import json, sys, anyio
from pathlib import Path
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.testing.client_setup import ask, settings_for
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault

async def main():
    with FakeKimi() as fake:
        fake.script(Fault(401, "authentication_error"), Fault(429, "rate_limit_error", retry_after=0.01))
        async with KimiClient(settings_for(fake, Path(sys.argv[1]), KIMI_CODE_PROTOCOL="openai")) as kimi:
            try:
                await kimi.chat(ask())
            except Exception as exc:
                first = type(exc).__name__
            text = (await kimi.chat(ask(thinking="high"))).text
    loaded = sorted(name for name in ("anthropic", "openai") if name in sys.modules)
    print(json.dumps({"first": first, "text": text, "loaded": loaded}))

anyio.run(main)
"""


def test_this_wire_loads_neither_sdk(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NO_SDK), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"first": "Unauthorized", "text": "Fake Kimi reply to: What is 2+2?", "loaded": []}
