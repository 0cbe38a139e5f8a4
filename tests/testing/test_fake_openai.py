"""The fake Kimi's OpenAI surface over real HTTP: chunk shapes, usage quirks, §5 400s, the allow-list 403, one
script / log / prompt cache shared with /v1/messages, and the pay-as-you-go "platform" profile."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from kimi_mcp.testing.fake_cache import prompt_bytes
from kimi_mcp.testing.fake_kimi import PLATFORM_MODEL, FakeKimi, Fault, Reply
from kimi_mcp.testing.fake_openai import ALLOW_LIST_MESSAGE

AUTH = {"authorization": "Bearer sk-kimi-test-key"}
CHUNK_KEYS = {"id", "object", "created", "model", "choices"}
USAGE = {"include_usage": True}

_http = httpx2.Client(timeout=60)  # one client for the module: building one costs ~50 ms (TLS context)


def _body(text: str = "hi", *, system: str | None = None, **extra: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    return {"model": "kimi-for-coding", "max_completion_tokens": 64, "messages": messages, **extra}


def _stream_body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return _body(text, stream=True, stream_options=USAGE, **extra)


def _post(fake: FakeKimi, body: Any, headers: dict[str, str] = AUTH) -> httpx2.Response:
    return _http.post(f"{fake.base_url}/v1/chat/completions", json=body, headers=headers)


def _anthropic(fake: FakeKimi, body: dict[str, Any]) -> httpx2.Response:
    return _http.post(f"{fake.base_url}/v1/messages", json=body, headers=AUTH)


def _frames(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order; every frame must be a lone `data:` line."""
    frames = []
    for frame in text.strip().split("\n\n"):
        assert frame.startswith("data: ") and "\n" not in frame, frame
        frames.append(frame.removeprefix("data: "))
    return frames


def _chunks(response: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON chunks of a streamed answer, after checking it ends with exactly one `[DONE]`."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = _frames(response.text)
    assert frames[-1] == "[DONE]" and frames.count("[DONE]") == 1
    return [json.loads(frame) for frame in frames[:-1]]


@pytest.fixture
def platform() -> Iterator[FakeKimi]:
    with FakeKimi(profile="platform") as fake:
        yield fake


# -- streamed chunks ------------------------------------------------------------------------------------------


def test_stream_sends_openai_chunks_then_done(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="four five six", thinking="hmm", text_deltas=["four ", "five six"], output_tokens=5))
    chunks = _chunks(_post(fake_kimi, _stream_body(model="kimi-k2")))

    assert all(set(c) >= CHUNK_KEYS and c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert {c["model"] for c in chunks} == {"kimi-k2"} and isinstance(chunks[0]["created"], int)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "hmm"},
        {"content": "four "},
        {"content": "five six"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "stop"]
    assert all(c["choices"][0]["index"] == 0 for c in chunks)
    assert "usage" not in chunks[0] and "usage" not in chunks[-2]
    usage = chunks[-1]["usage"]  # top level, on the last chunk, by default
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens"}
    assert usage["completion_tokens"] == 5 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + 5


def test_no_usage_unless_the_request_asks_for_it(fake_kimi: FakeKimi) -> None:
    for options in (None, {"include_usage": False}):
        body = _body(stream=True) | ({"stream_options": options} if options is not None else {})
        chunks = _chunks(_post(fake_kimi, body))
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert not any("usage" in c or "usage" in c["choices"][0] for c in chunks)


@pytest.mark.parametrize(
    ("option", "where"),
    [
        ({}, "top"),
        ({"usage_in_choice": True}, "choice"),
        ({"usage_in_own_chunk": True}, "own chunk"),
        ({"cached_tokens_in_details": True}, "details"),
        ({"usage_in_choice": True, "cached_tokens_in_details": True}, "choice+details"),
    ],
)
def test_usage_quirks_put_cached_tokens_where_asked(fake_kimi: FakeKimi, option: dict[str, bool], where: str) -> None:
    body = _stream_body("question " * 400)
    _post(fake_kimi, body)  # primes the prompt cache
    fake_kimi.script(Reply(text="again", output_tokens=3, **option))
    chunks = _chunks(_post(fake_kimi, body))

    if where == "own chunk":  # OpenAI's own shape: one more chunk, no choices
        finish, last = chunks[-2], chunks[-1]
        assert finish["choices"][0]["finish_reason"] == "stop" and "usage" not in finish
        assert last["choices"] == [] and set(last) >= CHUNK_KEYS
        usage = last["usage"]
    elif where.startswith("choice"):  # Kimi's quirk (docs/kimi-api.md §6): inside choices[0]
        assert "usage" not in chunks[-1]
        usage = chunks[-1]["choices"][0]["usage"]
    else:
        assert "usage" not in chunks[-1]["choices"][0]
        usage = chunks[-1]["usage"]
    if where.endswith("details"):
        assert "cached_tokens" not in usage
        cached = usage["prompt_tokens_details"]["cached_tokens"]
    else:
        assert "prompt_tokens_details" not in usage
        cached = usage["cached_tokens"]
    assert cached >= 256 and cached % 256 == 0
    assert usage["prompt_tokens"] > cached  # OpenAI semantics: prompt_tokens counts the cached ones too
    assert usage["completion_tokens"] == 3


def test_reply_options_cannot_put_usage_in_two_places() -> None:
    with pytest.raises(ValueError, match="not both"):
        Reply(usage_in_choice=True, usage_in_own_chunk=True)


@pytest.mark.parametrize(("stop_reason", "finish"), [("max_tokens", "length"), ("length", "length"), ("stop", "stop")])
def test_stop_reasons_become_finish_reasons(fake_kimi: FakeKimi, stop_reason: str, finish: str) -> None:
    fake_kimi.script(Reply(text="cut", stop_reason=stop_reason), Reply(text="cut", stop_reason=stop_reason))
    assert _chunks(_post(fake_kimi, _stream_body()))[-1]["choices"][0]["finish_reason"] == finish
    assert _post(fake_kimi, _body()).json()["choices"][0]["finish_reason"] == finish


def test_no_stop_reason_sends_no_finish_reason_and_no_usage(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="cut short", stop_reason=None))
    chunks = _chunks(_post(fake_kimi, _stream_body()))
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None]
    assert chunks[-1]["choices"][0]["delta"] == {"content": "cut short"}
    assert not any("usage" in c for c in chunks)


def test_placeholder_text_is_sent_as_content(fake_kimi: FakeKimi) -> None:
    placeholder = "(Empty response: {'content': [{'type': 'thinking'}]})"
    fake_kimi.script(Reply(text=placeholder, thinking="only thoughts"))
    chunks = _chunks(_post(fake_kimi, _stream_body()))
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks)
    assert content == placeholder and reasoning == "only thoughts"


def test_cut_after_events_closes_mid_stream(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="never finished", cut_after_events=2))
    received: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        url = f"{fake_kimi.base_url}/v1/chat/completions"
        with _http.stream("POST", url, json=_stream_body(), headers=AUTH) as response:
            for line in response.iter_lines():  # a loop, not a comprehension: keep what came before the cut
                if line.startswith("data: "):
                    received.append(line)
    assert len(received) == 2 and "[DONE]" not in "".join(received)
    record = fake_kimi.chat_completions_requests()[0]
    assert not record.completed and record.disconnected_at is None


def test_cut_before_done_leaves_the_finish_chunk_but_no_done(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="almost", cut_after_events=3))  # frames: role, content, finish + usage, [DONE]
    received: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        url = f"{fake_kimi.base_url}/v1/chat/completions"
        with _http.stream("POST", url, json=_stream_body(), headers=AUTH) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received.append(line.removeprefix("data: "))
    assert json.loads(received[-1])["choices"][0]["finish_reason"] == "stop" and "[DONE]" not in received


def test_json_mode_cut_truncates_the_body(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="half", cut_after_events=0))
    with pytest.raises(httpx2.RemoteProtocolError):
        _post(fake_kimi, _body())


def test_delay_spaces_the_chunks(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text_deltas=["a", "b", "c"], delay=0.1))
    started = time.monotonic()
    chunks = _chunks(_post(fake_kimi, _stream_body()))
    # Six frames (role, a, b, c, finish, [DONE]): a delay before each one after the first.
    assert len(chunks) == 5 and time.monotonic() - started >= 0.45


# -- JSON ------------------------------------------------------------------------------------------------------


def test_json_mode_returns_one_chat_completion(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="plain answer", thinking="deep", output_tokens=7))
    response = _post(fake_kimi, _body())
    assert response.headers["content-type"].startswith("application/json")
    completion = response.json()
    assert set(completion) == CHUNK_KEYS | {"usage"} and completion["object"] == "chat.completion"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "plain answer", "reasoning_content": "deep"},
            "finish_reason": "stop",
        }
    ]
    assert completion["usage"]["completion_tokens"] == 7 and "cached_tokens" in completion["usage"]


def test_json_mode_usage_in_choice(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="x", usage_in_choice=True, cached_tokens_in_details=True))
    completion = _post(fake_kimi, _body()).json()
    assert "usage" not in completion
    assert completion["choices"][0]["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_default_reply_echoes_the_last_user_text_parts(fake_kimi: FakeKimi) -> None:
    body = _body()
    body["messages"] = [{"role": "user", "content": [{"type": "text", "text": "from parts"}]}]
    assert _post(fake_kimi, body).json()["choices"][0]["message"]["content"] == "Fake Kimi reply to: from parts"


# -- payload rules, auth, refusals ------------------------------------------------------------------------------


def _developer() -> dict[str, Any]:
    body = _body()
    body["messages"].insert(0, {"role": "developer", "content": "be brief"})
    return body


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_developer(), "role 'developer'"),
        (_body(max_tokens=64), "max_completion_tokens"),
        (_body(reasoning_effort=None), "reasoning_effort"),
        (_body(reasoning_effort="high"), "reasoning_effort"),
        (_body(extra_body={"thinking": {"type": "disabled"}}), "extra_body"),
        (_body(thinking={"type": "adaptive"}), "thinking.type"),
        (_body(thinking={"type": "enabled", "effort": "medium"}), "'medium'"),
        ([_body()], "JSON object"),
        ("just a string", "JSON object"),
        (_body() | {"messages": []}, "messages"),
    ],
)
def test_payload_rules_answer_400_and_keep_the_script(fake_kimi: FakeKimi, body: Any, words: str) -> None:
    fake_kimi.script(Reply(text="meant for the next good request"))
    response = _post(fake_kimi, body)
    assert response.status_code == 400
    error = response.json()
    assert list(error) == ["error"] and error["error"]["type"] == "invalid_request_error"
    assert words in error["error"]["message"]
    assert fake_kimi.chat_completions_requests()[0].json() == body  # recorded as sent
    assert _post(fake_kimi, _body()).json()["choices"][0]["message"]["content"] == "meant for the next good request"


def test_invalid_json_is_a_400(fake_kimi: FakeKimi) -> None:
    url = f"{fake_kimi.base_url}/v1/chat/completions"
    response = _http.post(url, content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400 and "JSON object" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "thinking",
    [
        {"type": "disabled"},
        {"type": "enabled"},
        {"type": "enabled", "effort": "low"},
        {"type": "enabled", "effort": "max"},
    ],
)
def test_thinking_the_model_lists_is_accepted(fake_kimi: FakeKimi, thinking: dict[str, str]) -> None:
    assert _post(fake_kimi, _stream_body(thinking=thinking, prompt_cache_key="conv-1")).status_code == 200


def test_auth_refusals_use_the_openai_envelope(fake_kimi: FakeKimi) -> None:
    response = _post(fake_kimi, _body(), headers={"x-api-key": "sk-kimi-test-key"})
    assert response.status_code == 401
    assert response.json() == {"error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    assert _post(fake_kimi, _body(), headers={"authorization": "Bearer nope"}).status_code == 401


def test_allow_list_refuses_other_clients_with_403(fake_kimi: FakeKimi) -> None:
    ours = {**AUTH, "user-agent": "kimi-mcp/0.1.0"}
    assert _post(fake_kimi, _body(), headers=ours).status_code == 200  # off by default

    fake_kimi.openai_allow_list = True
    fake_kimi.script(Reply(text="for an allow-listed client"))
    refused = _post(fake_kimi, _body(), headers=ours)
    assert refused.status_code == 403
    assert refused.json() == {"error": {"type": "access_terminated_error", "message": ALLOW_LIST_MESSAGE}}
    assert ALLOW_LIST_MESSAGE.startswith("Kimi For Coding is currently only available for Coding Agents")
    # The Anthropic surface has no allow-list (docs/kimi-api.md §2); the 403 left the script alone.
    anthropic_body = {"model": "kimi-for-coding", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    assert _http.post(f"{fake_kimi.base_url}/v1/messages", json=anthropic_body, headers=ours).status_code == 200
    # …which the Anthropic request just used; an allow-listed client gets the next default reply.
    admitted = _post(fake_kimi, _body(), headers={**AUTH, "user-agent": "KimiCLI/1.2.3"})
    assert admitted.status_code == 200
    assert [r.status for r in fake_kimi.chat_completions_requests()] == [200, 403, 200]
    # Authentication still comes first.
    assert _post(fake_kimi, _body(), headers={"user-agent": "kimi-mcp/0.1.0"}).status_code == 401


def test_faults_answer_in_the_openai_envelope(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Fault(429, "rate_limit_reached_error", "slow down", retry_after=2), Fault.busy())
    response = _post(fake_kimi, _stream_body())
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    assert response.json() == {"error": {"type": "rate_limit_reached_error", "message": "slow down"}}
    busy = _post(fake_kimi, _body())
    assert busy.status_code == 403 and "concurrent request limit" in busy.json()["error"]["message"]


def test_drop_connection_sends_no_response(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Fault(500, drop_connection=True))
    with pytest.raises(httpx2.RemoteProtocolError):
        _post(fake_kimi, _body())
    assert _post(fake_kimi, _body()).status_code == 200


def test_body_cap_and_unknown_media_are_refused_before_the_script(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="kept"))
    fake_kimi.messages_body_limit = 1000
    too_big = _post(fake_kimi, _body("x" * 2000))
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "request_too_large"
    fake_kimi.messages_body_limit = 2_097_152

    body = _body()
    body["messages"][0]["content"] = [
        {"type": "text", "text": "look"},
        {"type": "video_url", "video_url": {"url": "ms://lost-id"}},
    ]
    unknown = _post(fake_kimi, body)
    assert unknown.status_code == 400
    assert unknown.json() == {"error": {"type": "invalid_request_error", "message": "file not found: ms://lost-id"}}
    assert _post(fake_kimi, _body()).json()["choices"][0]["message"]["content"] == "kept"


# -- one script, one log, one cache --------------------------------------------------------------------------


def _anthropic_body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "kimi-for-coding", "max_tokens": 64, "messages": [{"role": "user", "content": text}], **extra}


def test_one_script_and_one_log_serve_both_surfaces(fake_kimi: FakeKimi) -> None:
    fake_kimi.script(Reply(text="one"), Reply(text="two"), Fault(503, "overloaded", "busy"), Reply(text="four"))
    assert _anthropic(fake_kimi, _anthropic_body()).json()["content"][0]["text"] == "one"
    assert _post(fake_kimi, _body()).json()["choices"][0]["message"]["content"] == "two"
    assert _anthropic(fake_kimi, _anthropic_body()).status_code == 503
    assert _post(fake_kimi, _body()).json()["choices"][0]["message"]["content"] == "four"

    paths = [r.path for r in fake_kimi.requests]
    assert paths == ["/coding/v1/messages", "/coding/v1/chat/completions"] * 2
    assert fake_kimi.chat_requests() == fake_kimi.requests
    assert [r.path for r in fake_kimi.chat_completions_requests()] == ["/coding/v1/chat/completions"] * 2
    assert len(fake_kimi.messages_requests()) == 2
    assert fake_kimi.max_messages_in_flight >= 1 and fake_kimi.messages_in_flight == 0
    assert fake_kimi.count("/v1/chat/completions", max_completion_tokens=64) == 2


SYSTEM = "You are a careful engineer. " * 60
PNG_B64 = "iVBORw0KGgo" + "A" * 400


def _conversation(video_ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same conversation on the two wires: system, media, thinking, a tool round trip, a follow-up."""
    anthropic = {
        "model": "kimi-for-coding",
        "max_tokens": 64,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "question " * 300},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                    {"type": "video", "source": {"type": "url", "url": video_ref}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "let me look", "signature": ""},
                    {"type": "text", "text": "I will check."},
                    {"type": "tool_use", "id": "call_1", "name": "read", "input": {"path": "a.txt"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "file body"},
                    {"type": "text", "text": "and now?"},
                ],
            },
        ],
    }
    openai = {
        "model": "kimi-for-coding",
        "max_completion_tokens": 64,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "question " * 300},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    {"type": "video_url", "video_url": {"url": video_ref}},
                ],
            },
            {
                "role": "assistant",
                "reasoning_content": "let me look",
                "content": "I will check.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": '{"path": "a.txt"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "file body"},
            {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
        ],
    }
    return anthropic, openai


def test_canonical_prompt_is_the_same_bytes_on_both_wires() -> None:
    anthropic, openai = _conversation("ms://fakefile000001")
    assert prompt_bytes(anthropic, "anthropic") == prompt_bytes(openai, "openai")
    assert prompt_bytes(anthropic) == prompt_bytes(anthropic, "anthropic")  # the default surface
    # Tools map too: Anthropic's input_schema is OpenAI's function.parameters.
    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    tools_a = anthropic | {"tools": [{"name": "read", "description": "Read a file", "input_schema": schema}]}
    function = {"name": "read", "description": "Read a file", "parameters": schema}
    tools_o = openai | {"tools": [{"type": "function", "function": function}]}
    assert prompt_bytes(tools_a, "anthropic") == prompt_bytes(tools_o, "openai")
    # Different content gives different bytes: the mapping does not throw content away.
    changed = json.loads(json.dumps(openai))
    changed["messages"][2]["reasoning_content"] = "other thoughts"
    assert prompt_bytes(changed, "openai") != prompt_bytes(anthropic, "anthropic")
    changed = json.loads(json.dumps(openai))
    changed["messages"][1]["content"][2]["video_url"]["url"] = "ms://fakefile000002"
    assert prompt_bytes(changed, "openai") != prompt_bytes(anthropic, "anthropic")


def _upload_video(fake: FakeKimi) -> str:
    files = {"file": ("upload.mp4", b"\x00\x00\x00\x18ftypmp42" + b"v" * 500, "video/mp4")}
    response = _http.post(f"{fake.base_url}/v1/files", data={"purpose": "video"}, files=files, headers=AUTH)
    assert response.status_code == 200, response.text
    return f"ms://{response.json()['id']}"


@pytest.mark.parametrize("first", ["anthropic", "openai"])
def test_prefix_cache_is_shared_by_the_two_surfaces(fake_kimi: FakeKimi, first: str) -> None:
    anthropic, openai = _conversation(_upload_video(fake_kimi))
    if first == "anthropic":
        primed = _anthropic(fake_kimi, anthropic).json()["usage"]
        prompt = primed["input_tokens"]
        assert primed["cache_read_input_tokens"] == 0
        openai["messages"] += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
        usage = _post(fake_kimi, openai).json()["usage"]
        cached = usage["cached_tokens"]
    else:
        primed = _post(fake_kimi, openai).json()["usage"]
        prompt = primed["prompt_tokens"]
        assert primed["cached_tokens"] == 0
        anthropic["messages"] += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
        cached = _anthropic(fake_kimi, anthropic).json()["usage"]["cache_read_input_tokens"]
    assert prompt > 1024
    assert cached == prompt // 256 * 256  # every whole chunk of the first prompt was read from the cache


def test_a_changed_system_text_on_the_other_wire_misses(fake_kimi: FakeKimi) -> None:
    _anthropic(fake_kimi, _anthropic_body("question " * 400, system=SYSTEM))
    same = _post(fake_kimi, _body("question " * 400, system=SYSTEM)).json()["usage"]
    assert same["cached_tokens"] >= 1024
    other = _post(fake_kimi, _body("question " * 400, system="You are someone else. " * 60)).json()["usage"]
    assert other["cached_tokens"] == 0


# -- the pay-as-you-go platform profile --------------------------------------------------------------------------


def test_platform_serves_at_the_root_with_its_own_models(platform: FakeKimi) -> None:
    assert platform.base_url == platform.oauth_host and "/coding" not in platform.base_url
    listing = _http.get(f"{platform.base_url}/v1/models", headers=AUTH).json()
    assert listing["object"] == "list"
    models = {m["id"]: m for m in listing["data"]}
    assert "kimi-for-coding" not in models and PLATFORM_MODEL in models
    assert models[PLATFORM_MODEL]["context_length"] == 262144
    assert models["moonshot-v1-128k"]["context_length"] == 131072
    assert models["moonshot-v1-8k"]["context_length"] == 8192
    assert "context_length" not in models["moonshot-v1-auto"]  # a client must fall back to its default


def test_platform_chat_works_and_the_plan_routes_do_not_exist(platform: FakeKimi) -> None:
    platform.script(Reply(text="from the platform", thinking="hm", usage_in_choice=True))
    body = _stream_body(model=PLATFORM_MODEL, thinking={"type": "disabled"})
    chunks = _chunks(_post(platform, body, headers={**AUTH, "user-agent": "kimi-mcp/0.1.0"}))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "from the platform"
    assert chunks[-1]["choices"][0]["usage"]["completion_tokens"] > 0

    platform.openai_allow_list = True  # the platform has no allow-list
    assert (
        _post(platform, _body(model=PLATFORM_MODEL), headers={**AUTH, "user-agent": "kimi-mcp/0.1.0"}).status_code
        == 200
    )

    for method, path in [
        ("GET", "/v1/usages"),
        ("POST", "/v1/messages"),
        ("POST", "/coding/v1/chat/completions"),
        ("POST", "/api/oauth/device_authorization"),
        ("POST", "/api/oauth/token"),
    ]:
        response = _http.request(method, f"{platform.oauth_host}{path}", headers=AUTH, json={})
        assert response.status_code == 404, path
        assert response.json()["error"]["type"] == "resource_not_found_error"


def test_platform_refuses_unknown_models_efforts_and_oauth_tokens(
    platform: FakeKimi, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.script(Reply(text="kept for later"))
    wrong_model = _post(platform, _body(model="kimi-for-coding"))
    assert wrong_model.status_code == 404
    assert wrong_model.json() == {
        "error": {
            "type": "resource_not_found_error",
            "message": "Not found the model kimi-for-coding or Permission denied",
        }
    }
    effort = _post(platform, _body(model=PLATFORM_MODEL, thinking={"type": "enabled", "effort": "high"}))
    assert effort.status_code == 400  # no think_efforts listed there (docs/kimi-api.md §5)

    monkeypatch.setattr(platform.oauth, "is_valid_access_token", lambda token: True)
    refused = _post(platform, _body(model=PLATFORM_MODEL), headers={"authorization": "Bearer eyJ.oauth.token"})
    assert refused.status_code == 401
    assert refused.json() == {"error": {"type": "invalid_authentication_error", "message": "Invalid Authentication"}}
    assert _post(platform, _body(model=PLATFORM_MODEL)).json()["choices"][0]["message"]["content"] == "kept for later"


def test_platform_keeps_the_files_api(platform: FakeKimi) -> None:
    reference = _upload_video(platform)
    body = _body(model=PLATFORM_MODEL)
    body["messages"][0]["content"] = [{"type": "video_url", "video_url": {"url": reference}}]
    assert _post(platform, body).status_code == 200


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="profile"):
        FakeKimi(profile="gateway")  # type: ignore[arg-type]
