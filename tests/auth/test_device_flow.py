"""RFC 8628 device login against the fake OAuth host over real HTTP (docs/kimi-api.md §3)."""

from __future__ import annotations

import itertools
import os
import stat
import time
from pathlib import Path

import anyio
import anyio.abc
import httpx2
import pytest

from kimi_mcp.auth.device_flow import PollTiming, poll_for_token, start_device_authorization
from kimi_mcp.auth.tokens import TokenSource
from kimi_mcp.errors import LoginFailed
from kimi_mcp.http import build_http_client
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi

pytestmark = pytest.mark.anyio


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("loose_umask", [0o000, 0o022])
async def test_device_login_waits_out_pending_and_slow_down_then_stores_a_private_file(
    fake: FakeKimi,
    settings: Settings,
    http: httpx2.AsyncClient,
    tokens: TokenSource,
    fast: PollTiming,
    loose_umask: int,
    restore_umask: None,
) -> None:
    os.umask(loose_umask)
    fake.oauth.script_polls("authorization_pending", "authorization_pending", "slow_down")
    fake.oauth.approve()

    started = time.monotonic()
    authorization = await start_device_authorization(http, settings)
    answer = await poll_for_token(http, settings, authorization, timing=fast)
    await tokens.save_login(answer)
    elapsed = time.monotonic() - started

    assert [p.answer for p in fake.oauth.poll_log] == [
        "authorization_pending",
        "authorization_pending",
        "slow_down",
        "issued",
    ]
    # slow_down adds its step to the interval: the poll after it waits at least floor + step (§3).
    gaps = [b.at - a.at for a, b in itertools.pairwise(fake.oauth.poll_log)]
    assert gaps[-1] >= fast.min_interval + fast.slow_down_step - 0.005
    assert authorization.url.endswith(f"user_code={authorization.user_code}")
    assert elapsed < 8, f"a full device login took {elapsed:.3f} s"  # the service's own 5 s intervals: 20 s

    path = settings.home / "credentials.json"
    assert _mode(path) == 0o600 and _mode(settings.home) == 0o700
    assert fake.oauth.is_valid_access_token(await tokens.token())
    assert (await tokens.state()).model_dump(exclude={"expires_at"}) == {
        "logged_in": True,
        "method": "oauth",
        "problem": None,
    }


async def test_every_oauth_call_carries_our_identity_and_client_id(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient, fast: PollTiming
) -> None:
    fake.oauth.approve()
    authorization = await start_device_authorization(http, settings)
    await poll_for_token(http, settings, authorization, timing=fast)

    oauth_requests = [r for r in fake.requests if r.path.startswith("/api/oauth/")]
    assert len(oauth_requests) == 2
    for request in oauth_requests:
        assert request.headers["user-agent"].startswith("kimi-mcp/")
        assert request.headers["x-msh-platform"] == "kimi_mcp"
        assert len(request.headers["x-msh-device-id"]) == 32
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert request.form()["client_id"] == settings.oauth_client_id
    assert fake.count("/api/oauth/token", grant_type="urn:ietf:params:oauth:grant-type:device_code") == 1


async def test_denied_login_fails_clearly_and_stores_nothing(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient, fast: PollTiming
) -> None:
    fake.oauth.script_polls("authorization_pending")
    fake.oauth.deny()
    authorization = await start_device_authorization(http, settings)
    with pytest.raises(LoginFailed, match="denied"):
        await poll_for_token(http, settings, authorization, timing=fast)
    assert not (settings.home / "credentials.json").exists()


async def test_expired_code_fails_clearly(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient, fast: PollTiming
) -> None:
    authorization = await start_device_authorization(http, settings)
    fake.oauth.expire_code()
    with pytest.raises(LoginFailed, match=r"code expired.*Start the login again"):
        await poll_for_token(http, settings, authorization, timing=fast)


async def test_polling_stops_at_the_deadline_from_expires_in(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient, fast: PollTiming
) -> None:
    fake.oauth.code_ttl = 1
    authorization = await start_device_authorization(http, settings)
    started = time.monotonic()
    with pytest.raises(LoginFailed, match="code expired"):
        await poll_for_token(http, settings, authorization, timing=fast)
    assert 0.8 < time.monotonic() - started < 1.6


async def test_polling_honours_the_interval_floor(fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient) -> None:
    fake.oauth.script_polls("authorization_pending", "authorization_pending")
    fake.oauth.approve()
    authorization = await start_device_authorization(http, settings)
    await poll_for_token(http, settings, authorization, timing=PollTiming(min_interval=0.2))
    times = [p.at for p in fake.oauth.poll_log]
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(times))


async def test_polling_is_cancellable(fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient) -> None:
    authorization = await start_device_authorization(http, settings)
    started = time.monotonic()
    with anyio.move_on_after(0.2) as scope:
        await poll_for_token(http, settings, authorization, timing=PollTiming(min_interval=0.05))
    assert scope.cancelled_caught
    assert time.monotonic() - started < 0.5
    assert not (settings.home / "credentials.json").exists()


async def test_unreachable_login_service_is_a_clear_error(tmp_path: Path) -> None:
    with anyio.fail_after(30):
        settings = Settings(home=tmp_path, oauth_host="http://127.0.0.1:9")  # discard port: refused
        async with build_http_client(settings, timeout=10) as http:
            with pytest.raises(
                LoginFailed,
                match=r"login service at http://127\.0\.0\.1:9 \(connection refused by 127\.0\.0\.1:9\)\. Check",
            ):
                await start_device_authorization(http, settings)


async def test_a_login_service_that_does_not_speak_tls_is_named(tmp_path: Path) -> None:
    async def plain_http(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    settings = Settings(home=tmp_path, oauth_host=f"https://127.0.0.1:{port}")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, plain_http)
        with anyio.fail_after(30):
            async with build_http_client(settings, timeout=10) as http:
                with pytest.raises(LoginFailed, match=rf"TLS handshake with 127\.0\.0\.1:{port} failed"):
                    await start_device_authorization(http, settings)
        tg.cancel_scope.cancel()


async def test_a_device_answer_without_verification_uri_is_enough(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient, fast: PollTiming
) -> None:
    fake.oauth.omit_device_fields = {"verification_uri", "expires_in", "interval"}
    fake.oauth.approve()
    authorization = await start_device_authorization(http, settings)
    assert authorization.verification_uri is None
    assert authorization.url == f"{fake.oauth_host}/device?user_code={authorization.user_code}"
    answer = await poll_for_token(http, settings, authorization, timing=fast)
    assert fake.oauth.is_valid_access_token(answer.access_token.get_secret_value())


@pytest.mark.parametrize("missing", ["verification_uri_complete", "device_code", "user_code"])
async def test_a_device_answer_without_a_required_field_is_refused_by_name(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient, missing: str
) -> None:
    fake.oauth.omit_device_fields = {missing}
    with pytest.raises(LoginFailed, match=rf"cannot read \(missing or bad: {missing}\)"):
        await start_device_authorization(http, settings)


async def test_a_200_carrying_authorization_pending_keeps_polling(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient, fast: PollTiming
) -> None:
    fake.oauth.script_polls("authorization_pending", "slow_down", "authorization_pending", status=200)
    fake.oauth.approve()
    authorization = await start_device_authorization(http, settings)
    answer = await poll_for_token(http, settings, authorization, timing=fast)
    assert [p.answer for p in fake.oauth.poll_log] == [
        "authorization_pending",
        "slow_down",
        "authorization_pending",
        "issued",
    ]
    assert fake.oauth.is_valid_access_token(answer.access_token.get_secret_value())


async def test_a_200_carrying_access_denied_ends_the_login(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient, fast: PollTiming
) -> None:
    fake.oauth.script_polls("access_denied", status=200)
    authorization = await start_device_authorization(http, settings)
    with pytest.raises(LoginFailed, match="denied"):
        await poll_for_token(http, settings, authorization, timing=fast)
    assert fake.oauth.poll_count == 1


async def test_the_first_poll_goes_out_before_any_wait(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient
) -> None:
    fake.oauth.interval = 60  # a wait before the first poll would take a minute
    fake.oauth.approve()
    with anyio.fail_after(20):
        authorization = await start_device_authorization(http, settings)
        await poll_for_token(http, settings, authorization)
    [poll] = fake.oauth.poll_log
    assert poll.answer == "issued"
    assert poll.at - authorization.received_at < 15  # well before the 60 s interval


async def test_a_wrong_client_id_is_reported_not_retried(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient
) -> None:
    wrong = settings.model_copy(update={"oauth_client_id": "not-a-client"})
    with pytest.raises(LoginFailed, match=r"would not start a login \(401: invalid_client\)"):
        await start_device_authorization(http, wrong)
