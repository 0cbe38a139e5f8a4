"""Time limits that hold, and network failures that name their cause (issue 7, items 2 and 6).

KIMI_MCP_TIMEOUT bounds the whole chat call: the wait for a concurrency slot, the `/v1/models` lookup, the token
and the stream. A request that gets no answer at all says why in the one line a user sees: the name did not
resolve, the connection was refused, the TLS handshake failed. All of it offline: a closed port on 127.0.0.1,
a `.invalid` host (which never resolves, RFC 6761), and TLS spoken to the fake's plain-HTTP port.
"""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

import anthropic  # noqa: F401 - up front: a cold import inside a call would use up a 1 s limit by itself
import pytest

from kimi_mcp import errors
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi

pytestmark = pytest.mark.anyio
KEY = "sk-kimi-test-key"


def settings_for(base_url: str, home: Path, **extra: str) -> Settings:
    env = {"KIMI_API_KEY": KEY, "KIMI_CODE_BASE_URL": base_url, "KIMI_MCP_HOME": str(home), **extra}
    return Settings.from_env(env)


def ask(text: str = "q", thinking: str = "off") -> ChatRequest:
    message = Message(role="user", content=[TextBlock(text=text)])
    return ChatRequest(model="kimi-for-coding", messages=[message], thinking=thinking)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_timeout_covers_a_hanging_models_lookup(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    fake_kimi.models_delay = math.inf
    async with KimiClient(settings_for(fake_kimi.base_url, tmp_path, KIMI_MCP_TIMEOUT="3")) as kimi:
        started = time.monotonic()
        with pytest.raises(errors.ServiceUnavailable) as err:
            await kimi.chat(ask(thinking="high"))
        elapsed = time.monotonic() - started
    assert elapsed <= 8, elapsed  # the models lookup alone would hang forever
    assert "no complete reply within 3 s, the KIMI_MCP_TIMEOUT limit" in str(err.value)
    assert fake_kimi.count("/v1/models") == 1 and fake_kimi.messages_requests() == []


async def test_waiting_for_a_slot_counts_against_the_timeout(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    # Calls that all share one limit free their slots by their own deadlines, so a queued call runs out of time
    # only when the queue is long or a holder overran (a shielded refresh): here the only slot is taken directly.
    settings = settings_for(fake_kimi.base_url, tmp_path, KIMI_MCP_TIMEOUT="1", KIMI_MCP_MAX_CONCURRENCY="1")
    phases: list[str] = []

    async def note(progress) -> None:  # type: ignore[no-untyped-def]
        phases.append(progress.phase)

    async with KimiClient(settings) as kimi:
        slots = kimi._slot_pool()
        await slots.acquire()
        started = time.monotonic()
        with pytest.raises(errors.ServiceUnavailable) as err:
            await kimi.chat(ask("queued"), on_progress=note)
        elapsed = time.monotonic() - started
        slots.release()
        after = await kimi.chat(ask("after"))  # the timed-out wait left the pool whole
    assert phases == ["queued"]
    assert 0.9 <= elapsed <= 5, elapsed  # without the limit the wait would never end
    assert "no free slot within 1 s" in str(err.value) and "KIMI_MCP_MAX_CONCURRENCY" in str(err.value)
    assert after.text == "Fake Kimi reply to: after"
    assert len(fake_kimi.messages_requests()) == 1  # the queued call never reached Kimi


async def test_connection_refused_names_host_and_port(tmp_path: Path) -> None:
    port = closed_port()
    settings = settings_for(f"http://127.0.0.1:{port}/coding", tmp_path, KIMI_MCP_MAX_RETRIES="0")
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.NetworkError) as chat_err:
            await kimi.chat(ask())
        with pytest.raises(errors.NetworkError) as models_err:
            await kimi.models()
    for err in (chat_err, models_err):
        assert f"connection refused by 127.0.0.1:{port}" in str(err.value)
        assert str(err.value).startswith("Kimi could not be reached:")


async def test_unresolvable_host_is_named(tmp_path: Path) -> None:
    settings = settings_for("http://nonexistent.invalid/coding", tmp_path, KIMI_MCP_MAX_RETRIES="0")
    async with KimiClient(settings) as kimi:
        with pytest.raises(errors.NetworkError) as chat_err:
            await kimi.chat(ask())
        with pytest.raises(errors.NetworkError) as quota_err:
            await kimi.quota()
    for err in (chat_err, quota_err):
        assert "could not resolve nonexistent.invalid" in str(err.value)
        assert KEY not in str(err.value)


async def test_failed_tls_handshake_is_named(fake_kimi: FakeKimi, tmp_path: Path) -> None:
    https = fake_kimi.base_url.replace("http://", "https://")  # TLS spoken to a plain-HTTP port
    port = https.split(":")[2].split("/")[0]
    async with KimiClient(settings_for(https, tmp_path, KIMI_MCP_MAX_RETRIES="0")) as kimi:
        with pytest.raises(errors.NetworkError) as err:
            await kimi.chat(ask())
    assert f"TLS handshake with 127.0.0.1:{port} failed" in str(err.value)


async def test_connection_errors_are_retried_before_the_cause_is_reported(tmp_path: Path) -> None:
    port = closed_port()
    settings = settings_for(f"http://127.0.0.1:{port}/coding", tmp_path, KIMI_MCP_MAX_RETRIES="1")
    async with KimiClient(settings) as kimi:
        started = time.monotonic()
        with pytest.raises(errors.NetworkError, match="connection refused"):
            await kimi.chat(ask())
    assert time.monotonic() - started >= 0.3  # one backoff (0.375-0.5 s) happened: the error is transient
