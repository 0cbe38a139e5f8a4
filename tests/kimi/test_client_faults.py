"""Kimi's error answers and the account's concurrency limit, against the fake over real HTTP (docs/kimi-api.md §9).

Retry waits are kept tiny (`Retry-After` of a few hundredths of a second) so the suite stays fast; the attempts
each call made are counted in the fake's log. Every test runs on both wires (the `wire` fixture, tests/conftest.py):
the Anthropic wire retries through the anthropic SDK, the OpenAI wire through KimiClient's own loop, and both must
read the same answers the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate

import anyio
import pytest

from kimi_mcp import errors
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.models import StreamProgress
from kimi_mcp.settings import Settings
from kimi_mcp.testing.client_setup import ask
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, Reply

pytestmark = pytest.mark.anyio
KEY = "sk-kimi-test-key"
WireSettings = Callable[..., Settings]


async def test_busy_twice_then_success_takes_three_attempts(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(Fault.busy(retry_after=0.02), Fault.busy(retry_after=0.02))
    async with KimiClient(wire_settings(KIMI_MCP_MAX_RETRIES="2")) as kimi:
        result = await kimi.chat(ask("busy?"))
    assert result.text == "Fake Kimi reply to: busy?"
    assert [r.status for r in fake_kimi.chat_requests()] == [403, 403, 200]


@pytest.mark.parametrize("max_retries", [0, 3])
async def test_always_busy_ends_in_the_busy_error_after_bounded_retries(
    fake_kimi: FakeKimi, wire_settings: WireSettings, max_retries: int
) -> None:
    fake_kimi.script(*[Fault.busy(retry_after=0.01)] * 10)
    async with KimiClient(wire_settings(KIMI_MCP_MAX_RETRIES=str(max_retries))) as kimi:
        with pytest.raises(errors.KimiBusy) as err:
            await kimi.chat(ask())
    assert len(fake_kimi.chat_requests()) == max_retries + 1
    message = str(err.value)
    assert message.startswith("Kimi is busy for this account: too many requests in flight")
    assert "KIMI_MCP_MAX_CONCURRENCY" in message and "try again shortly" in message.lower()


async def test_other_403s_are_still_refusals_and_not_retried(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(Fault(403, "permission_error", "Your plan does not include this model"))
    async with KimiClient(wire_settings()) as kimi:
        with pytest.raises(errors.Forbidden):
            await kimi.chat(ask())
    assert len(fake_kimi.chat_requests()) == 1


async def test_forty_calls_never_exceed_the_concurrency_limit(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(*[Reply(text="slow", delay=0.02) for _ in range(40)])
    phases: list[list[str]] = [[] for _ in range(40)]
    results: list[str] = []

    async def one(index: int) -> None:
        async def on_progress(progress: StreamProgress) -> None:
            phases[index].append(progress.phase)

        results.append((await kimi.chat(ask(f"call {index}"), on_progress=on_progress)).text)

    async with KimiClient(wire_settings(KIMI_MCP_MAX_CONCURRENCY="5")) as kimi:
        async with anyio.create_task_group() as group:
            for index in range(40):
                group.start_soon(one, index)
    assert results == ["slow"] * 40
    assert len(fake_kimi.chat_requests()) == 40
    assert 1 < fake_kimi.max_messages_in_flight <= 5
    queued = [p for p in phases if p and p[0] == "queued"]
    assert len(queued) >= 35  # all but the first five had to wait, and said so before anything else
    assert all("queued" not in p[1:] for p in phases)


@pytest.mark.parametrize(
    "message",
    [
        "You exceeded your current token quota. Please check your plan and billing details.",
        "You have exceeded your current monthly quota",
        "Insufficient balance, please recharge",
    ],
)
async def test_quota_by_wording_is_not_retried(fake_kimi: FakeKimi, wire_settings: WireSettings, message: str) -> None:
    fake_kimi.script(Fault(429, "rate_limit_error", message, retry_after=0.01))
    async with KimiClient(wire_settings(KIMI_MCP_MAX_RETRIES="3")) as kimi:
        with pytest.raises(errors.QuotaExceeded) as err:
            await kimi.chat(ask())
    assert len(fake_kimi.chat_requests()) == 1
    assert "quota is used up" in str(err.value)


async def test_plain_rate_limit_wording_is_retried(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(Fault(429, "rate_limit_error", "Too many requests, slow down", retry_after=0.01))
    async with KimiClient(wire_settings()) as kimi:
        await kimi.chat(ask())
    assert [r.status for r in fake_kimi.chat_requests()] == [429, 200]


async def test_retry_after_as_an_http_date_is_waited_out(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    # HTTP dates have whole seconds: this one is 2 s ahead, well beyond the SDK's own backoff for a first retry
    # (at most 0.5 s), which is what an unread date would give. The retry must not come before the date; measured
    # against the date itself, since a slow start may have used up part of the wait before the first answer.
    not_before = int(time.time()) + 2
    fake_kimi.script(
        Fault(429, "rate_limit_error", "slow down", headers={"retry-after": formatdate(not_before, usegmt=True)})
    )
    async with KimiClient(wire_settings()) as kimi:
        await kimi.chat(ask())
    _first_answered_429, second = fake_kimi.chat_requests()
    retried_at = second.received_at + (time.time() - time.monotonic())  # the arrival on the wall clock
    assert retried_at >= not_before - 0.1, (retried_at, not_before)


async def test_retry_after_date_too_far_ahead_is_not_waited_for(
    fake_kimi: FakeKimi, wire_settings: WireSettings
) -> None:
    later = formatdate(time.time() + 3600, usegmt=True)
    fake_kimi.script(Fault(429, "rate_limit_error", "slow down", headers={"retry-after": later}))
    async with KimiClient(wire_settings()) as kimi:
        with pytest.raises(errors.RateLimited) as err:
            await kimi.chat(ask())
    assert len(fake_kimi.chat_requests()) == 1
    assert err.value.retry_after is not None and 3500 < err.value.retry_after <= 3600


async def test_too_large_names_the_request_size_and_the_cap(fake_kimi: FakeKimi, wire_settings: WireSettings) -> None:
    fake_kimi.script(Fault(413, "request_too_large", "Request Entity Too Large"))
    async with KimiClient(wire_settings()) as kimi:
        with pytest.raises(errors.RequestTooLarge) as err:
            await kimi.chat(ask("y" * 50_000))
    [sent] = fake_kimi.chat_requests()
    message = str(err.value)
    assert "the request was too large" in message
    assert f"{len(sent.body):,} bytes" in message and "2,097,152 bytes" in message
