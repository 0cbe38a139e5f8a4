"""The fake Kimi service speaks docs/kimi-api.md over real HTTP: SSE, auth, faults, cancellation, prompt cache."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import anthropic
import anyio
import httpx2
import pytest

from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, Reply

AUTH = {"authorization": "Bearer sk-kimi-test-key"}


def _body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "kimi-for-coding", "max_tokens": 64, "messages": [{"role": "user", "content": text}], **extra}


def _sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse `event:`/`data:` frames."""
    events = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        assert lines["event"] == json.loads(lines["data"])["type"]
        events.append((lines["event"], json.loads(lines["data"])))
    return events


_http = httpx2.Client()  # one client for the module: building one costs ~50 ms (TLS context)


def _post(fake: FakeKimi, body: dict[str, Any], headers: dict[str, str] = AUTH) -> httpx2.Response:
    return _http.post(f"{fake.base_url}/v1/messages", json=body, headers=headers)


def test_stream_follows_the_anthropic_event_order(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="four five six", thinking="hmm", text_deltas=["four ", "five six"]))
    response = _post(fake_kimi, _body(stream=True, model="kimi-k2"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse(response.text)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message = events[0][1]["message"]
    assert message["model"] == "kimi-k2" and message["content"] == [] and message["stop_reason"] is None
    assert set(message["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    }
    assert events[2][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[4][1]["delta"] == {"type": "signature_delta", "signature": ""}  # docs/kimi-api.md §8
    assert [e[1]["delta"]["text"] for e in events[7:9]] == ["four ", "five six"]
    assert events[10][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[10][1]["usage"]["output_tokens"] > 0


def test_stream_without_stop_reason_ends_without_message_delta_or_stop(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="cut short", stop_reason=None))
    names = [name for name, _ in _sse(_post(fake_kimi, _body(stream=True)).text)]
    assert names[-1] == "content_block_stop" and "message_delta" not in names


def test_json_mode_returns_one_message(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="plain answer", thinking="deep", output_tokens=7))
    message = _post(fake_kimi, _body()).json()
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [
        {"type": "thinking", "thinking": "deep", "signature": ""},
        {"type": "text", "text": "plain answer"},
    ]
    assert message["stop_reason"] == "end_turn" and message["usage"]["output_tokens"] == 7


def test_default_reply_echoes_the_last_user_text(fake_kimi: FakeKimi) -> None:
    body = _body()
    body["messages"] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second " * 100}]},
    ]
    text = _post(fake_kimi, body).json()["content"][0]["text"]
    assert text == "Fake Kimi reply to: " + ("second " * 100)[:200]


class _ByContent(FakeKimi):
    """Answers a request whose prompt says "fail" with a 503, whatever the script holds."""

    def _step_for(self, body: dict[str, Any]) -> Reply | Fault | None:
        return Fault(status=503) if body["messages"][-1]["content"] == "fail" else None


def test_a_step_chosen_by_content_comes_before_the_script_and_leaves_it_alone() -> None:
    with _ByContent() as fake:
        fake.script(Reply(text="scripted"))
        assert _post(fake, _body("fail")).status_code == 503
        assert _post(fake, _body("fine")).json()["content"][0]["text"] == "scripted"
        assert _post(fake, _body("no key"), headers={}).status_code == 401  # refusals still come first


def test_x_api_key_alone_is_rejected_and_recorded(fake_kimi: FakeKimi) -> None:
    response = _post(fake_kimi, _body(), headers={"x-api-key": "sk-kimi-test-key"})
    assert response.status_code == 401
    assert response.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
    }
    assert fake_kimi.messages_requests()[0].headers["x-api-key"] == "sk-kimi-test-key"


def test_unknown_bearer_is_rejected_before_the_script(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Fault(500))
    response = _post(fake_kimi, _body(), headers={"authorization": "Bearer eyJ.not.issued"})
    assert response.status_code == 401 and response.json()["error"]["message"] == "invalid token"
    assert _post(fake_kimi, _body()).status_code == 500  # the Fault is still queued


def test_oauth_access_tokens_are_accepted(fake_kimi: FakeKimi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake_kimi.oauth, "is_valid_access_token", lambda token: token == "eyJ.good")
    assert _post(fake_kimi, _body(), headers={"authorization": "Bearer eyJ.good"}).status_code == 200


def test_fault_sets_status_body_and_retry_after(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Fault(429, "rate_limit_error", "slow down", retry_after=2, headers={"x-extra": "1"}))
    response = _post(fake_kimi, _body(stream=True))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2" and response.headers["x-extra"] == "1"
    assert response.json()["error"] == {"type": "rate_limit_error", "message": "slow down"}


def test_drop_connection_sends_no_response(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Fault(500, drop_connection=True))
    with pytest.raises(httpx2.RemoteProtocolError):
        _post(fake_kimi, _body())
    assert _post(fake_kimi, _body()).status_code == 200


def test_cut_after_events_closes_mid_stream(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(cut_after_events=3))
    received: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        with _http.stream("POST", f"{fake_kimi.base_url}/v1/messages", json=_body(stream=True), headers=AUTH) as r:
            for line in r.iter_lines():
                if line.startswith("event: "):
                    received.append(line)
    assert received == ["event: message_start", "event: ping", "event: content_block_start"]
    record = fake_kimi.messages_requests()[0]
    assert not record.completed and record.disconnected_at is None  # we cut it; the client did not leave


@pytest.mark.anyio
async def test_client_disconnect_mid_stream_is_noticed_within_a_second(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text_deltas=["tick "] * 50, delay=0.5))
    async with httpx2.AsyncClient() as client:
        url = f"{fake_kimi.base_url}/v1/messages"
        async with client.stream("POST", url, json=_body(stream=True), headers=AUTH) as response:
            async for line in response.aiter_lines():
                if line == "event: message_start":
                    break
        closed_at = time.monotonic()
    record = fake_kimi.messages_requests()[0]
    with anyio.move_on_after(1.0):
        while record.disconnected_at is None:  # noqa: ASYNC110 - set by the server thread, nothing to await
            await anyio.sleep(0.01)
    assert record.disconnected_at is not None and record.disconnected_at - closed_at < 1.0
    assert not record.completed


def test_prefix_cache_hits_on_extended_history_and_resets_on_new_system(fake_kimi: FakeKimi) -> None:
    first = _body("question " * 400, system="You are a careful engineer. " * 60, prompt_cache_key="a")
    usage1 = _post(fake_kimi, first).json()["usage"]
    assert usage1["cache_read_input_tokens"] == 0
    aligned = usage1["input_tokens"] // 256 * 256
    assert aligned > 0

    extended = dict(first, prompt_cache_key="b")  # the key is ignored, as on the service (docs/kimi-api.md §6)
    follow_up = [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
    extended["messages"] = [*first["messages"], *follow_up]
    usage2 = _post(fake_kimi, extended).json()["usage"]
    assert usage2["cache_read_input_tokens"] >= aligned
    assert usage2["cache_read_input_tokens"] % 256 == 0
    assert usage2["input_tokens"] + usage2["cache_read_input_tokens"] > usage1["input_tokens"]

    changed = dict(extended, system="You are a different engineer. " * 60)
    assert _post(fake_kimi, changed).json()["usage"]["cache_read_input_tokens"] == 0

    fake_kimi.reset_cache()
    assert _post(fake_kimi, first).json()["usage"]["cache_read_input_tokens"] == 0


def test_models_and_usages_have_the_documented_shapes(fake_kimi: FakeKimi) -> None:
    models = _http.get(f"{fake_kimi.base_url}/v1/models", headers=AUTH).json()["data"]
    assert models[0]["id"] == "kimi-for-coding" and models[0]["context_length"] == 262144
    assert models[0]["supports_thinking_type"] == "both"
    assert models[0]["think_efforts"] == {
        "support": True,
        "valid_efforts": ["low", "high", "max"],
        "default_effort": "high",
    }

    usages = _http.get(f"{fake_kimi.base_url}/v1/usages", headers=AUTH).json()
    assert {"used", "limit", "resetTime"} <= set(usages["usage"])
    window = usages["limits"][0]
    assert window["window"] == {"duration": 300, "timeUnit": "TIME_UNIT_MINUTE"}
    assert window["detail"]["used"].isdigit() and window["detail"]["resetTime"].endswith("Z")


def test_unknown_paths_get_a_json_404(fake_kimi: FakeKimi) -> None:
    response = _http.get(f"{fake_kimi.base_url}/v1/nothing", headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"


def test_requests_are_recorded_with_headers_body_and_fields(fake_kimi: FakeKimi) -> None:
    _post(fake_kimi, _body("recorded"), headers={**AUTH, "X-Msh-Platform": "kimi_mcp"})
    form = {"client_id": "c", "grant_type": "refresh_token", "refresh_token": "r"}
    _http.post(f"{fake_kimi.oauth_host}/api/oauth/token", data=form)

    message, token = fake_kimi.requests
    assert message.method == "POST" and message.path == "/coding/v1/messages"
    assert message.headers["x-msh-platform"] == "kimi_mcp" and message.json()["messages"][0]["content"] == "recorded"
    assert message.completed and message.status == 200 and message.disconnected_at is None
    assert token.form()["grant_type"] == "refresh_token"
    assert fake_kimi.count("/api/oauth/token", grant_type="refresh_token") == 1
    assert fake_kimi.count("/api/oauth/token", grant_type="device_code") == 0
    assert fake_kimi.count("/v1/messages", model="kimi-for-coding") == 1
    assert fake_kimi.messages_requests() == [message]


def test_reachable_from_a_subprocess(fake_kimi: FakeKimi) -> None:
    code = (
        "import sys, urllib.request\n"
        "req = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Bearer sk-kimi-test-key'})\n"
        "print(urllib.request.urlopen(req).status)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, f"{fake_kimi.base_url}/v1/models"], capture_output=True, text=True, timeout=10
    )
    assert out.stdout.strip() == "200"


@pytest.mark.anyio
async def test_anthropic_sdk_streams_with_cache_usage(fake_kimi: FakeKimi, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    fake_kimi.script(Reply(text="primed"), Reply(text="Hello from the SDK test.", thinking="let me see"))
    system = "You answer in one line. " * 100
    messages: list[Any] = [{"role": "user", "content": "say hello"}]
    async with httpx2.AsyncClient() as http:
        client = anthropic.AsyncAnthropic(auth_token="sk-kimi-test-key", base_url=fake_kimi.base_url, http_client=http)
        await client.messages.create(model="kimi-for-coding", max_tokens=64, system=system, messages=messages)
        async with client.messages.stream(
            model="kimi-for-coding", max_tokens=64, system=system, messages=messages
        ) as stream:
            text = "".join([chunk async for chunk in stream.text_stream])
            final = await stream.get_final_message()
    assert text == "Hello from the SDK test."
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.stop_reason == "end_turn"
    assert final.usage.cache_read_input_tokens is not None and final.usage.cache_read_input_tokens >= 256
    sent = fake_kimi.messages_requests()[-1]
    assert sent.headers["authorization"] == "Bearer sk-kimi-test-key" and "x-api-key" not in sent.headers


def test_usage_in_delta_sends_zeros_first_and_totals_last(fake_kimi: FakeKimi) -> None:
    body = _body("question " * 400, stream=True)
    _post(fake_kimi, body)  # primes the prompt cache
    fake_kimi.script(Reply(text="late totals", usage_in_delta=True, output_tokens=9))
    events = _sse(_post(fake_kimi, body).text)
    start = events[0][1]["message"]["usage"]
    assert start["input_tokens"] == 0 and start["cache_read_input_tokens"] == 0 and start["output_tokens"] == 0
    [delta] = [data for name, data in events if name == "message_delta"]
    assert delta["usage"]["cache_read_input_tokens"] >= 256 and delta["usage"]["input_tokens"] > 0
    assert delta["usage"]["output_tokens"] == 9


def test_busy_fault_is_a_403_with_the_services_words(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Fault.busy(retry_after=0.5))
    response = _post(fake_kimi, _body())
    assert response.status_code == 403 and response.headers["retry-after"] == "0.5"
    assert "concurrent request limit" in response.json()["error"]["message"]


@pytest.mark.anyio
async def test_models_delay_hangs_until_the_client_leaves(fake_kimi: FakeKimi) -> None:
    fake_kimi.models_delay = float("inf")
    async with httpx2.AsyncClient() as client:
        with anyio.move_on_after(0.3) as scope:
            await client.get(f"{fake_kimi.base_url}/v1/models", headers=AUTH)
    assert scope.cancelled_caught
    record = fake_kimi.requests[0]
    with anyio.move_on_after(5.0):
        while record.disconnected_at is None:  # noqa: ASYNC110 - set by the server thread, nothing to await
            await anyio.sleep(0.01)
    assert record.disconnected_at is not None  # the hanging answer ended with the client, not at shutdown
    assert record.status is None and not record.completed  # nothing was answered

    fake_kimi.models_delay = 0.2
    started = time.monotonic()
    response = _http.get(f"{fake_kimi.base_url}/v1/models", headers=AUTH)
    assert response.status_code == 200 and time.monotonic() - started >= 0.19


@pytest.mark.anyio
async def test_in_flight_messages_are_counted(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(*[Reply(text="slow", delay=0.1) for _ in range(3)])
    async with httpx2.AsyncClient() as client:

        async def post() -> None:
            response = await client.post(f"{fake_kimi.base_url}/v1/messages", json=_body(stream=True), headers=AUTH)
            assert response.status_code == 200

        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(post)
    assert fake_kimi.messages_in_flight == 0
    assert fake_kimi.max_messages_in_flight == 3
