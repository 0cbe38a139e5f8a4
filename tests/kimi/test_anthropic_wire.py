"""The exact bodies of docs/kimi-api.md §5 and §6, built without the network."""

import json

import pytest

from kimi_mcp.kimi.anthropic_wire import build_body, output_budget
from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock
from kimi_mcp.settings import CONTEXT_WINDOW_TOKENS

EFFORTS = frozenset({"low", "high", "max"})


def request(**fields: object) -> ChatRequest:
    base: dict[str, object] = {
        "model": "kimi-for-coding",
        "messages": [Message(role="user", content=[TextBlock(text="hi")])],
    }
    base.update(fields)
    return ChatRequest(**base)  # type: ignore[arg-type]


def test_thinking_off_is_an_explicit_disabled() -> None:
    body = build_body(request(thinking="off"), efforts=EFFORTS)
    assert body["thinking"] == {"type": "disabled"}
    assert "output_config" not in body and "reasoning_effort" not in body


@pytest.mark.parametrize("level", ["low", "high", "max"])
def test_listed_effort_is_enabled_with_output_config(level: str) -> None:
    body = build_body(request(thinking=level), efforts=EFFORTS)
    assert body["thinking"] == {"type": "enabled"}  # never "adaptive" (docs/kimi-api.md §5)
    assert body["output_config"] == {"effort": level}


def test_unlisted_effort_falls_back_to_enabled_without_effort() -> None:
    body = build_body(request(thinking="max"), efforts=frozenset({"low", "high"}))
    assert body["thinking"] == {"type": "enabled"}
    assert "output_config" not in body


def test_cache_key_goes_top_level_and_as_metadata_user_id() -> None:
    body = build_body(request(cache_key="kc_1"))
    assert body["prompt_cache_key"] == "kc_1" and body["metadata"] == {"user_id": "kc_1"}
    plain = build_body(request())
    assert "prompt_cache_key" not in plain and "metadata" not in plain


def test_output_budget_is_the_context_left() -> None:
    body = build_body(request())
    assert CONTEXT_WINDOW_TOKENS - 100 < body["max_tokens"] <= CONTEXT_WINDOW_TOKENS
    assert build_body(request(max_output_tokens=500))["max_tokens"] == 500
    assert output_budget(prompt_bytes=3 * CONTEXT_WINDOW_TOKENS, requested=None) == 4096


def test_same_request_gives_identical_bytes() -> None:
    r = request(system="be brief", cache_key="kc_x")
    assert json.dumps(build_body(r)) == json.dumps(build_body(r.model_copy()))
