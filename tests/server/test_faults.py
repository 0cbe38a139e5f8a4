"""Upstream faults through a real `mcp.Client` (issue 13, item 1): every fault of docs/reliability.md on both wires.

Each test scripts one fault on the fake Kimi for the second turn of a conversation and checks, through the MCP
server as a host sees it: how many requests reached Kimi (the fake's log), a readable `isError` naming the status
or the cause, no reply text of the failed turn anywhere (neither in the error nor replayed later), no stored turn
(`kimi://conversations` right after, the SQLite file at the end), and that the next turn of the same conversation
works and carries only the turns that succeeded.

Retry waits stay short (Retry-After of a second at most) and the stream idle limit is 1 s
(KIMI_MCP_STREAM_IDLE_SECONDS) instead of 120 s; KIMI_MCP_TIMEOUT is 30 s, so a fault the idle limit failed to end
shows up as the wrong error rather than as a hung test.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import anthropic  # noqa: F401 - up front: a cold import inside a call would skew the timings below
import anyio
import pytest
from mcp import Client

from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.store.db import DB_FILE_NAME
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, RecordedRequest, Reply
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, text_of
from kimi_mcp.testing.wire_views import chat_view

pytestmark = pytest.mark.anyio

IDLE_SECONDS = 1.0
RETRIES = 2  # KIMI_MCP_MAX_RETRIES' default: a transient fault is tried 3 times in all
TRANSIENT_ATTEMPTS = RETRIES + 1
# A reply the fault interrupts after its first events: none of these words may reach the host or the store.
PARTIAL = "Unfinished words of a reply that never completes. " * 6
PARTIAL_START = PARTIAL[:20]
IDLE_SETTING = "KIMI_MCP_STREAM_IDLE_SECONDS"
Steps = Callable[[], list[Reply | Fault]]


@dataclass
class FaultRun:
    """What one scripted fault did to the second turn of a conversation, and what came after."""

    failed: Any  # the CallToolResult of the turn that met the fault
    elapsed: float  # seconds the failed call took
    attempts: list[RecordedRequest]  # the chat requests it made
    listed: list[dict[str, Any]]  # kimi://conversations right after the failure
    after: Any  # the CallToolResult of the next turn
    after_request: RecordedRequest  # the request of that next turn
    stored: list[tuple[int, str, str]]  # (turn, user text, reply text) in the SQLite file at the end
    conversation_id: str

    @property
    def error(self) -> str:
        return text_of(self.failed)


async def run_fault(
    kimi_env: dict[str, str], fake: FakeKimi, *steps: Reply | Fault, make_steps: Steps | None = None
) -> FaultRun:
    """A first turn, then `steps` scripted for the second (continuing it), then a third that must work.
    `make_steps` makes the steps just before the second turn instead (for a Retry-After date)."""
    settings = Settings.from_env(
        {**kimi_env, IDLE_SETTING: str(IDLE_SECONDS), "KIMI_MCP_TIMEOUT": "30", "KIMI_MCP_MAX_RETRIES": str(RETRIES)}
    )
    async with Client(build_server(settings), mode="legacy") as client:
        first = await client.call_tool("kimi_chat", {"prompt": "first"})
        assert not first.is_error, text_of(first)
        conversation_id = chat_meta(first)["conversation_id"]
        before = len(fake.chat_requests())
        fake.script(*(make_steps() if make_steps is not None else steps))
        started = anyio.current_time()
        failed = await client.call_tool("kimi_chat", {"prompt": "second", "conversation_id": conversation_id})
        elapsed = anyio.current_time() - started
        attempts = fake.chat_requests()[before:]
        listing = await client.read_resource("kimi://conversations")
        listed = json.loads(listing.contents[0].text)["conversations"]  # type: ignore[union-attr]
        after = await client.call_tool("kimi_chat", {"prompt": "third", "conversation_id": conversation_id})
        after_request = fake.chat_requests()[-1]
    print(f"fault run: {len(attempts)} attempt(s), the failed call took {elapsed:.2f} s")  # for docs/reliability.md
    return FaultRun(failed, elapsed, attempts, listed, after, after_request, stored_turns(kimi_env), conversation_id)


def stored_turns(kimi_env: dict[str, str]) -> list[tuple[int, str, str]]:
    """Every stored turn (all conversations): its number, the user's text parts, the reply text."""
    with sqlite3.connect(Path(kimi_env["KIMI_MCP_HOME"]) / DB_FILE_NAME) as db:
        rows = db.execute("SELECT idx, user_json, assistant_text FROM turns ORDER BY conversation_id, idx").fetchall()
    return [(idx, "".join(b.get("text", "") for b in json.loads(user)), reply) for idx, user, reply in rows]


def assert_clean_failure(run: FaultRun, *, attempts: int, says: Sequence[str]) -> None:
    """The checks every fault shares (see the module docstring)."""
    assert run.failed.is_error and run.failed.meta is None
    assert run.error.startswith("Error: "), run.error
    for words in says:
        assert words in run.error, run.error
    assert len(run.attempts) == attempts, [r.status for r in run.attempts]
    assert all(r.json()["messages"] == run.attempts[0].json()["messages"] for r in run.attempts)  # the same request
    # no reply text of the failed turn anywhere, and no stored turn: the conversation still has its one turn
    assert PARTIAL_START not in run.error and "Lost words" not in run.error and "<html" not in run.error.lower()
    assert [(c["id"], c["turns"]) for c in run.listed] == [(run.conversation_id, 1)]
    # the next turn works, once, and replays only the turn that succeeded
    assert not run.after.is_error, text_of(run.after)
    assert reply_of(run.after) == "Fake Kimi reply to: third"
    assert chat_meta(run.after)["turn"] == 2
    view = chat_view(run.after_request)
    assert view.texts("user") == ["first", "third"]
    assert view.texts("assistant") == ["Fake Kimi reply to: first"]
    assert run.stored == [(1, "first", "Fake Kimi reply to: first"), (2, "third", "Fake Kimi reply to: third")]


def gaps(requests: list[RecordedRequest]) -> list[float]:
    return [later.received_at - earlier.received_at for earlier, later in itertools.pairwise(requests)]


# -- answers with an error status: retried, then named -----------------------------------------------------------


async def test_429_retry_after_in_seconds_is_waited_then_named(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    fault = Fault(429, "rate_limit_error", "Too many requests, slow down", retry_after=1)
    run = await run_fault(kimi_env, fake_kimi, *[fault] * TRANSIENT_ATTEMPTS)
    assert_clean_failure(
        run, attempts=TRANSIENT_ATTEMPTS, says=["rate-limiting requests (429)", "Kimi asked to wait 1 s"]
    )
    assert [r.status for r in run.attempts] == [429] * TRANSIENT_ATTEMPTS
    # Retry-After: 1 was honoured before each retry (the backoff of a first retry would be at most 0.5 s)
    assert all(gap >= 0.9 for gap in gaps(run.attempts)), gaps(run.attempts)


async def test_429_retry_after_as_an_http_date_is_waited_then_named(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    retry_not_before: list[int] = []

    def steps() -> list[Reply | Fault]:
        # Whole seconds, 2 s ahead of when the steps are made; by the second retry the date has passed.
        retry_not_before.append(int(time.time()) + 2)
        when = formatdate(retry_not_before[-1], usegmt=True)
        return [
            Fault(429, "rate_limit_error", "Too many requests, slow down", headers={"retry-after": when})
        ] * TRANSIENT_ATTEMPTS

    run = await run_fault(kimi_env, fake_kimi, make_steps=steps)
    assert_clean_failure(run, attempts=TRANSIENT_ATTEMPTS, says=["rate-limiting requests (429)"])
    assert [r.status for r in run.attempts] == [429] * TRANSIENT_ATTEMPTS
    # The first retry came no earlier than the date said (its arrival on the wall clock, from the monotonic record;
    # 0.1 s for the two clocks read apart). Measured against the date, not the first answer, which a slow start
    # may have delayed past part of the wait.
    wall_offset = time.time() - time.monotonic()
    first_retry_at = run.attempts[1].received_at + wall_offset
    assert first_retry_at >= retry_not_before[0] - 0.1, (first_retry_at, retry_not_before)


async def test_5xx_is_retried_with_backoff_then_named(wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    fault = Fault(503, "overloaded_error", "Service is overloaded")
    run = await run_fault(kimi_env, fake_kimi, *[fault] * TRANSIENT_ATTEMPTS)
    assert_clean_failure(
        run, attempts=TRANSIENT_ATTEMPTS, says=["Kimi could not answer (HTTP 503: Service is overloaded)"]
    )
    assert [r.status for r in run.attempts] == [503] * TRANSIENT_ATTEMPTS
    first, second = gaps(run.attempts)
    assert first >= 0.3 and second >= 0.6, (first, second)  # exponential backoff: 0.375-0.5 s, then 0.75-1 s


async def test_busy_403_is_retried_like_a_429_then_named(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, *[Fault.busy(retry_after=0.05)] * TRANSIENT_ATTEMPTS)
    assert_clean_failure(
        run, attempts=TRANSIENT_ATTEMPTS, says=["Kimi is busy for this account", "403: You've reached your concurrent"]
    )
    assert [r.status for r in run.attempts] == [403] * TRANSIENT_ATTEMPTS


async def test_an_html_error_page_from_a_proxy_is_retried_then_named_by_its_title(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, *[Fault.proxy_page(502)] * TRANSIENT_ATTEMPTS)
    assert_clean_failure(
        run, attempts=TRANSIENT_ATTEMPTS, says=["Kimi could not answer (HTTP 502: an HTML page: 502 Bad Gateway)"]
    )
    assert [r.status for r in run.attempts] == [502] * TRANSIENT_ATTEMPTS
    assert "<" not in run.error and "nginx" not in run.error


# -- connections that break before any answer: retried, then named ----------------------------------------------


async def test_a_tcp_reset_before_the_first_byte_is_retried_then_named(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, *[Fault.connection_reset()] * TRANSIENT_ATTEMPTS)
    port = fake_kimi.base_url.split(":")[2].split("/")[0]
    assert_clean_failure(
        run, attempts=TRANSIENT_ATTEMPTS, says=["Kimi could not be reached", f"connection reset by 127.0.0.1:{port}"]
    )
    assert [r.status for r in run.attempts] == [None] * TRANSIENT_ATTEMPTS


async def test_a_server_that_accepts_and_never_answers_is_given_up_after_the_idle_limit(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, *[Fault.no_answer()] * TRANSIENT_ATTEMPTS)
    assert_clean_failure(
        run,
        attempts=TRANSIENT_ATTEMPTS,
        says=["Kimi could not answer", "no answer began within 1 s, the KIMI_MCP_STREAM_IDLE_SECONDS limit"],
    )
    # each attempt waited out the idle limit, then the client left (not KIMI_MCP_TIMEOUT's 30 s)
    waits = [r.disconnected_at - r.received_at for r in run.attempts if r.disconnected_at is not None]
    assert len(waits) == TRANSIENT_ATTEMPTS and all(0.9 <= wait < 10 for wait in waits), waits
    assert run.elapsed < 25, run.elapsed  # under the call's 30 s KIMI_MCP_TIMEOUT, on a loaded machine too


# -- faults after the answer began: not retried (the reply had begun), named ------------------------------------


async def test_a_tcp_reset_after_the_first_byte_is_named_and_not_retried(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, Reply(text=PARTIAL, cut_after_events=5, reset=True))
    assert_clean_failure(
        run, attempts=1, says=["reply stream ended before the reply was complete", "connection was reset mid-reply"]
    )
    assert run.attempts[0].status == 200


async def test_a_stream_that_stalls_between_events_ends_after_the_idle_limit(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, Reply(text=PARTIAL, stall_after_events=5))
    assert_clean_failure(
        run, attempts=1, says=["the stream stalled: nothing arrived for 1 s, the KIMI_MCP_STREAM_IDLE_SECONDS limit"]
    )
    [attempt] = run.attempts
    assert attempt.status == 200 and attempt.disconnected_at is not None  # we hung up on the silent stream
    assert 0.9 <= run.elapsed < 20, run.elapsed


async def test_malformed_sse_is_named_and_not_retried(wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi) -> None:
    run = await run_fault(kimi_env, fake_kimi, Fault.malformed_stream())
    assert_clean_failure(run, attempts=1, says=["it carried no events: an empty or malformed event stream"])


async def test_invalid_json_in_an_event_is_named_and_not_retried(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, Reply(text=PARTIAL, invalid_json_at=4))
    assert_clean_failure(run, attempts=1, says=["a malformed event", "cut off"])


async def test_an_error_event_after_the_200_is_named_and_not_retried(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, Fault.error_event("Overloaded, please retry"))
    assert_clean_failure(run, attempts=1, says=["Kimi reported an error mid-reply: Overloaded, please retry"])


async def test_a_wrong_content_type_is_named_and_not_retried(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, Fault.wrong_content_type())
    assert_clean_failure(
        run, attempts=1, says=["HTTP 200 with a text/plain body instead of a reply stream", "KIMI_CODE_BASE_URL"]
    )


async def test_a_200_with_an_empty_body_is_named_and_not_retried(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    run = await run_fault(kimi_env, fake_kimi, Fault.empty_success())
    assert_clean_failure(run, attempts=1, says=["HTTP 200 with an empty body instead of a reply stream"])


# -- a fault on the first turn leaves no conversation behind -----------------------------------------------------


async def test_a_failed_first_turn_stores_no_conversation(
    wire: str, kimi_env: dict[str, str], fake_kimi: FakeKimi
) -> None:
    settings = Settings.from_env({**kimi_env, IDLE_SETTING: str(IDLE_SECONDS)})
    fake_kimi.script(Reply(text=PARTIAL, stall_after_events=5))
    async with Client(build_server(settings), mode="legacy") as client:
        failed = await client.call_tool("kimi_chat", {"prompt": "lost"})
        listing = await client.read_resource("kimi://conversations")
        worked = await client.call_tool("kimi_chat", {"prompt": "kept"})
    assert failed.is_error and "the stream stalled" in text_of(failed)
    assert json.loads(listing.contents[0].text)["conversations"] == []  # type: ignore[union-attr]
    assert not worked.is_error and chat_meta(worked)["turn"] == 1
    assert stored_turns(kimi_env) == [(1, "kept", "Fake Kimi reply to: kept")]
