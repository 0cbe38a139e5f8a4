"""TokenSource: API key first, early refresh under a cross-process lock, rotation, one-shot 401 recovery (§3)."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx2
import pytest
from pydantic import SecretStr

from kimi_mcp.auth.store import CredentialStore, StoredLogin
from kimi_mcp.auth.tokens import TokenSource, needs_refresh, refresh_margin
from kimi_mcp.errors import LoginRequired, ServiceUnavailable, Unauthorized
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi

pytestmark = pytest.mark.anyio

REFRESH_PATH = "/api/oauth/token"
SeedLogin = Callable[..., StoredLogin]  # the `seed_login` fixture (tests/auth/conftest.py)


def _refreshes(fake: FakeKimi) -> int:
    return fake.count(REFRESH_PATH, grant_type="refresh_token")


def _other_process(settings: Settings, http: httpx2.AsyncClient) -> TokenSource:
    """A second token source with its own store object and file lock, as another process would have."""
    return TokenSource(settings, http, store=CredentialStore(settings.home), retry_delays=(0.01,))


@pytest.mark.parametrize(
    ("lifetime", "margin"), [(900, 450), (3600, 1800), (600, 300), (400, 300), (300, 225), (60, 45), (0, 0)]
)
def test_refresh_margin_follows_the_wire_rule(lifetime: float, margin: float) -> None:
    # max(300 s, expires_in/2) (docs/kimi-api.md §3), never within the first quarter of a token's life.
    assert refresh_margin(lifetime) == margin


async def test_an_api_key_wins_and_never_touches_oauth(fake: FakeKimi, home: Path, http: httpx2.AsyncClient) -> None:
    settings = Settings(home=home, oauth_host=fake.oauth_host, api_key="sk-kimi-test-key")
    tokens = TokenSource(settings, http)
    assert await tokens.token() == "sk-kimi-test-key"
    assert (await tokens.state()).model_dump() == {
        "logged_in": True,
        "method": "api_key",
        "expires_at": None,
        "problem": None,
    }
    with pytest.raises(Unauthorized):
        await tokens.recover("sk-kimi-test-key")
    assert not [r for r in fake.requests if r.path.startswith("/api/oauth/")]


async def test_no_credentials_means_login_required(tokens: TokenSource) -> None:
    with pytest.raises(LoginRequired, match="No Kimi credentials"):
        await tokens.token()
    with pytest.raises(LoginRequired):
        await tokens.recover("eyJ.whatever.sig")
    assert (await tokens.state()).model_dump() == {
        "logged_in": False,
        "method": "none",
        "expires_at": None,
        "problem": None,
    }


async def test_a_fresh_token_is_used_without_a_refresh(
    fake: FakeKimi, tokens: TokenSource, seed_login: SeedLogin
) -> None:
    login = seed_login()
    assert await tokens.token() == login.access_token.get_secret_value()
    assert _refreshes(fake) == 0
    state = await tokens.state()
    assert state.logged_in and state.method == "oauth" and state.expires_at is not None


async def test_a_token_past_half_its_life_is_refreshed_once_and_the_refresh_token_rotates(
    fake: FakeKimi, tokens: TokenSource, home: Path, seed_login: SeedLogin
) -> None:
    old = seed_login(stored_ttl=400)  # 900 s token with 400 s left: under the 450 s margin
    token = await tokens.token()
    assert token != old.access_token.get_secret_value() and fake.oauth.is_valid_access_token(token)
    assert await tokens.token() == token  # no second refresh
    stored = CredentialStore(home).read_sync()
    assert stored is not None and stored.obtained_by == "refresh" and not needs_refresh(stored)
    assert stored.refresh_token != old.refresh_token
    assert _refreshes(fake) == 1
    assert fake.count(REFRESH_PATH, refresh_token=old.refresh_token.get_secret_value()) == 1


async def test_concurrent_calls_in_one_process_refresh_once(
    fake: FakeKimi, tokens: TokenSource, seed_login: SeedLogin
) -> None:
    seed_login(expires_in=0)
    fake.oauth.refresh_delay = 0.1
    results: list[str] = []

    async def call() -> None:
        results.append(await tokens.token())

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(call)
    assert len(set(results)) == 1 and fake.oauth.is_valid_access_token(results[0])
    assert _refreshes(fake) == 1


@pytest.mark.parametrize("refusal", ["invalid_grant", 401, 403, (200, "invalid_grant"), (401, "invalid_client")])
async def test_a_refused_refresh_means_login_required_with_no_retry_and_no_loop(
    fake: FakeKimi,
    tokens: TokenSource,
    settings: Settings,
    http: httpx2.AsyncClient,
    home: Path,
    seed_login: SeedLogin,
    refusal: int | str | tuple[int, str],
) -> None:
    seed_login(expires_in=0)
    fake.oauth.refresh_faults.append(refusal)

    with pytest.raises(LoginRequired, match="Your Kimi login has expired"):
        await tokens.token()
    assert _refreshes(fake) == 1
    with pytest.raises(LoginRequired, match="Your Kimi login has expired"):
        await tokens.token()
    with pytest.raises(LoginRequired):
        await tokens.recover("eyJ.rejected.sig")
    # Written to the file, so another process does not try the refused refresh token either.
    with pytest.raises(LoginRequired):
        await _other_process(settings, http).token()
    assert _refreshes(fake) == 1

    state = await tokens.state()
    assert not state.logged_in and state.method == "oauth" and "expired" in (state.problem or "")
    stored = CredentialStore(home).read_sync()
    assert stored is not None and stored.refresh_rejected  # kept, not overwritten with less


async def test_a_new_login_clears_login_required(fake: FakeKimi, tokens: TokenSource, seed_login: SeedLogin) -> None:
    seed_login(expires_in=0)
    fake.oauth.refresh_faults.append("invalid_grant")
    with pytest.raises(LoginRequired):
        await tokens.token()
    seed_login()  # e.g. `kimi-mcp login` in a terminal while the server runs
    assert fake.oauth.is_valid_access_token(await tokens.token())
    assert (await tokens.state()).logged_in


async def test_transient_refresh_failures_are_retried_with_backoff(
    fake: FakeKimi, tokens: TokenSource, seed_login: SeedLogin
) -> None:
    seed_login(expires_in=0)
    fake.oauth.refresh_faults.extend([503, 429, 500])
    assert fake.oauth.is_valid_access_token(await tokens.token())
    assert _refreshes(fake) == 4


async def test_refresh_gives_up_after_a_few_transient_failures(
    fake: FakeKimi, tokens: TokenSource, home: Path, seed_login: SeedLogin
) -> None:
    old = seed_login(expires_in=0)
    fake.oauth.refresh_faults.extend([502] * 10)
    with pytest.raises(ServiceUnavailable, match="HTTP 502"):
        await tokens.token()
    assert _refreshes(fake) == 4  # first try + 3 retries
    assert CredentialStore(home).read_sync() == old  # nothing lost; the next call may try again


async def test_unreachable_login_service_is_retried_then_reported(home: Path, seed_login: SeedLogin) -> None:
    seed_login(expires_in=0)
    settings = Settings(home=home, oauth_host="http://127.0.0.1:9")
    async with httpx2.AsyncClient() as http:
        tokens = TokenSource(settings, http, retry_delays=(0.01, 0.01))
        with pytest.raises(ServiceUnavailable, match=r"token refresh: connection refused by 127\.0\.0\.1:9"):
            await tokens.token()


@pytest.mark.parametrize("answer", [(400, "invalid_request"), (400, "unsupported_grant_type"), (404, "not_found"), 422])
async def test_another_4xx_is_a_failed_refresh_and_the_login_stays_usable(
    fake: FakeKimi, tokens: TokenSource, settings: Settings, home: Path, seed_login: SeedLogin, answer: object
) -> None:
    old = seed_login(expires_in=0)
    fake.oauth.refresh_faults.append(answer)  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailable, match=r"token refresh: HTTP 4\d\d"):
        await tokens.token()
    assert _refreshes(fake) == 1  # not retried: the same request would get the same answer
    assert CredentialStore(home).read_sync() == old  # nothing marked refused
    assert (await tokens.state()).logged_in
    # The next call (this process or another) refreshes with the same, still valid, refresh token.
    assert fake.oauth.is_valid_access_token(await tokens.token())
    assert _refreshes(fake) == 2
    assert fake.count(REFRESH_PATH, refresh_token=old.refresh_token.get_secret_value()) == 2


async def test_a_failed_early_refresh_keeps_using_the_current_token(
    fake: FakeKimi, tokens: TokenSource, home: Path, seed_login: SeedLogin
) -> None:
    old = seed_login(stored_ttl=400)  # due for an early refresh, still valid for 400 s
    fake.oauth.refresh_faults.extend([(400, "invalid_request")])
    assert await tokens.token() == old.access_token.get_secret_value()
    assert CredentialStore(home).read_sync() == old
    fake.oauth.refresh_faults.extend([503] * 10)
    assert await tokens.token() == old.access_token.get_secret_value()
    assert _refreshes(fake) == 5  # 1 + the 503 with its 3 retries
    # A 401-rejected token is never handed back, though: recover() needs a new one.
    with pytest.raises(ServiceUnavailable):
        await tokens.recover(old.access_token.get_secret_value())


@pytest.mark.parametrize("lost", ["rotate_then_drop", "rotate_then_hang"])
async def test_a_refresh_whose_answer_was_lost_after_rotation_asks_to_log_in_again_without_a_loop(
    fake: FakeKimi,
    tokens: TokenSource,
    settings: Settings,
    http: httpx2.AsyncClient,
    home: Path,
    seed_login: SeedLogin,
    lost: str,
) -> None:
    seed_login(expires_in=0)
    tokens.attempt_seconds = 0.5  # a never-answered attempt gives up this fast (30 s for real)
    fake.oauth.refresh_faults.append(lost)  # type: ignore[arg-type]
    with anyio.fail_after(30), pytest.raises(LoginRequired, match="log in again") as caught:
        await tokens.token()
    assert "kimi-mcp login" in str(caught.value)
    assert _refreshes(fake) == 2  # the lost one and its retry, which got invalid_grant
    with pytest.raises(LoginRequired):
        await tokens.token()
    with pytest.raises(LoginRequired):
        await _other_process(settings, http).token()
    assert _refreshes(fake) == 2
    stored = CredentialStore(home).read_sync()
    assert stored is not None and stored.refresh_rejected


async def test_a_hanging_refresh_is_cut_at_the_callers_deadline_and_the_login_stays_usable(
    fake: FakeKimi, tokens: TokenSource, home: Path, seed_login: SeedLogin
) -> None:
    old = seed_login(expires_in=0)
    fake.oauth.refresh_faults.extend(["hang"] * 5)  # the request never reaches the service: nothing rotates
    started = time.monotonic()
    with pytest.raises(TimeoutError), anyio.fail_after(1):
        await tokens.token()
    elapsed = time.monotonic() - started
    # Unbounded, the shielded refresh would hold the call for its own 30 s attempt limit.
    assert elapsed < 5, f"the shielded refresh held the call {elapsed:.2f} s past a 1 s limit"
    assert _refreshes(fake) == 1
    assert CredentialStore(home).read_sync() == old  # untouched, not marked refused
    fake.oauth.refresh_faults.clear()
    assert fake.oauth.is_valid_access_token(await tokens.token())
    assert _refreshes(fake) == 2


async def test_after_a_rotation_lost_to_the_deadline_the_next_call_asks_to_log_in_again(
    fake: FakeKimi, tokens: TokenSource, seed_login: SeedLogin
) -> None:
    seed_login(expires_in=0)
    fake.oauth.refresh_faults.append("rotate_then_hang")
    with pytest.raises(TimeoutError), anyio.fail_after(1):
        await tokens.token()
    with pytest.raises(LoginRequired, match="log in again"):
        await tokens.token()
    assert _refreshes(fake) == 2


async def test_refresh_retries_stop_when_the_callers_time_would_run_out(
    fake: FakeKimi, settings: Settings, http: httpx2.AsyncClient, seed_login: SeedLogin
) -> None:
    seed_login(expires_in=0)
    tokens = TokenSource(settings, http, retry_delays=(0.5, 1.5, 60.0))
    fake.oauth.refresh_faults.extend([503] * 10)
    started = time.monotonic()
    with anyio.fail_after(20):
        # The last failure, reported before the deadline, instead of a 60 s backoff cut by it.
        with pytest.raises(ServiceUnavailable, match="HTTP 503"):
            await tokens.token()
    assert time.monotonic() - started < 20
    assert _refreshes(fake) == 3


async def test_recover_uses_a_token_another_process_stored_without_a_network_call(
    fake: FakeKimi, tokens: TokenSource, settings: Settings, http: httpx2.AsyncClient, seed_login: SeedLogin
) -> None:
    seed_login()
    mine = await tokens.token()
    theirs = await _other_process(settings, http).recover(mine)  # the other process saw a 401 first
    assert _refreshes(fake) == 1
    assert await tokens.recover(mine) == theirs
    assert _refreshes(fake) == 1


async def test_recover_refreshes_exactly_once_when_the_stored_token_was_rejected(
    fake: FakeKimi, tokens: TokenSource, seed_login: SeedLogin
) -> None:
    seed_login()
    rejected = await tokens.token()
    fake.oauth.revoke_access(rejected)
    fresh = await tokens.recover(rejected)
    assert fresh != rejected and fake.oauth.is_valid_access_token(fresh)
    assert _refreshes(fake) == 1


@pytest.mark.parametrize("mode", ["token", "chat"])
def test_eight_processes_with_the_same_expired_token_refresh_exactly_once(
    mode: str,
    fake: FakeKimi,
    settings: Settings,
    home: Path,
    seed_login: SeedLogin,
    child_env: dict[str, str],
    worker: list[str],
    tmp_path: Path,
) -> None:
    seed_login(expires_in=0)
    fake.oauth.refresh_delay = 0.2  # a slow refresh: the other seven must wait on the lock, not race it
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    procs = [
        subprocess.Popen(
            [*worker, mode, str(run_dir), str(i)],
            env=child_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    try:
        # Generous: 8 interpreters importing the SDK at once on a loaded 2-core machine take their time. The
        # race itself starts only once all are set up (proc_worker.py), so the bounds do not weaken it.
        deadline = time.monotonic() + 120
        while len(list(run_dir.glob("ready-*"))) < 8:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "workers did not start"
            time.sleep(0.05)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    assert [p.returncode for p in procs] == [0] * 8, outputs
    assert [json.loads(out)["status"] for out in outputs] == [200] * 8
    assert _refreshes(fake) == 1
    if mode == "token":
        assert fake.count("/coding/v1/models") == 8
    else:
        assert [json.loads(out)["reply"] for out in outputs] == [f"Fake Kimi reply to: worker {i}" for i in range(8)]
        assert len(fake.messages_requests()) == 8
    stored = CredentialStore(home).read_sync()
    assert stored is not None and fake.oauth.is_valid_access_token(stored.access_token.get_secret_value())


async def test_no_secret_reaches_logs_errors_or_state(
    fake: FakeKimi,
    tokens: TokenSource,
    home: Path,
    seed_login: SeedLogin,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    seed_login(expires_in=0)
    seen.append(await tokens.token())  # a refresh
    seen.append(await tokens.recover(seen[-1]))  # another
    seen.append(repr(await tokens.state()) + (await tokens.state()).model_dump_json())
    seen.append(repr(CredentialStore(home).read_sync()))
    # Sentinels the fake does not know: the refresh is refused.
    sentinel_access, sentinel_refresh = "eyJSENTINEL.ACCESS.TOKEN", "SENTINEL-REFRESH"
    stored = CredentialStore(home).read_sync()
    assert stored is not None
    poisoned = stored.model_copy(
        update={
            "access_token": SecretStr(sentinel_access),
            "refresh_token": SecretStr(sentinel_refresh),
            "expires_at": 0,
        }
    )
    store = CredentialStore(home)
    with store.locked_sync():
        store.write_sync(poisoned)
    with pytest.raises(LoginRequired) as caught:
        await tokens.token()
    seen.append(str(caught.value) + repr(caught.value))
    secrets = [*fake.oauth.issued_secrets(), sentinel_access, sentinel_refresh]
    tokens_seen = seen[:2]
    texts = "\n".join([caplog.text, *seen[2:]])
    assert caplog.records, "expected some log lines to check"
    for secret in secrets:
        assert secret not in texts
    assert all(t in fake.oauth.issued_secrets() for t in tokens_seen)
