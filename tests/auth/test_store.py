"""The credentials file: private, atomic, locked, and never overwritten when it cannot be read (docs/kimi-api.md §3)."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import anyio
import pytest

from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.auth.store import CredentialStore, StoredLogin
from kimi_mcp.auth.tokens import TokenSource
from kimi_mcp.errors import CredentialsCorrupt

pytestmark = pytest.mark.anyio

ACCESS = "eyJhbGciOiJSUzI1NiJ9.SENTINEL-ACCESS.sig"
REFRESH = "SENTINEL-REFRESH-TOKEN"


def _login(access: str = ACCESS, refresh: str = REFRESH) -> StoredLogin:
    answer = TokenResponse(access_token=access, refresh_token=refresh, expires_in=900, scope="kimi-code")
    return StoredLogin.from_token_response(answer, "device_flow")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("loose_umask", [0o000, 0o022])
async def test_saved_login_is_0600_in_a_0700_folder_and_reads_back(
    tmp_path: Path, loose_umask: int, restore_umask: None
) -> None:
    os.umask(loose_umask)
    store = CredentialStore(tmp_path / "nested" / "home")
    login = _login()
    await store.save(login)

    assert _mode(store.path) == 0o600
    assert _mode(store.home) == 0o700
    assert await store.load() == login
    on_disk = json.loads(store.path.read_text())
    assert on_disk["access_token"] == ACCESS and on_disk["refresh_token"] == REFRESH
    assert set(on_disk) >= {"expires_at", "expires_in", "scope", "token_type", "obtained_by", "saved_at"}


async def test_missing_file_is_no_login(tmp_path: Path) -> None:
    assert await CredentialStore(tmp_path).load() is None


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"{not json", "not valid JSON at line 1"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"", "not valid JSON"),
        (json.dumps({"access_token": ACCESS, "refresh_token": REFRESH, "expires_at": "soon"}).encode(), "expires_at"),
    ],
)
async def test_corrupt_file_is_reported_and_left_untouched(tmp_path: Path, content: bytes, detail: str) -> None:
    store = CredentialStore(tmp_path)
    store.path.write_bytes(content)
    with pytest.raises(CredentialsCorrupt) as caught:
        await store.load()
    message = str(caught.value)
    assert detail in message and str(store.path) in message and "kimi-mcp login" in message
    assert ACCESS not in message and REFRESH not in message
    assert store.path.read_bytes() == content


async def test_token_source_refuses_a_corrupt_file_without_touching_it(tokens: TokenSource, home: Path) -> None:
    path = anyio.Path(home / "credentials.json")
    await path.parent.mkdir(mode=0o700, exist_ok=True)
    await path.write_bytes(b'{"access_token": "x"}')
    with pytest.raises(CredentialsCorrupt, match=r"missing or invalid: .*refresh_token"):
        await tokens.token()
    state = await tokens.state()
    assert not state.logged_in and state.problem is not None and "kimi-mcp login" in state.problem
    assert await path.read_bytes() == b'{"access_token": "x"}'


async def test_a_new_login_replaces_a_corrupt_file(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.path.write_bytes(b"{broken")
    login = _login()
    await store.save(login)
    assert await store.load() == login


async def test_logout_deletes_the_login(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    await store.save(_login())
    assert await store.delete() is True
    assert await store.delete() is False
    assert await store.load() is None


def test_secrets_are_masked_in_reprs() -> None:
    login = _login()
    for text in (repr(login), str(login), login.model_dump_json(), repr(login.model_dump())):
        assert ACCESS not in text and REFRESH not in text


async def test_waiting_for_the_lock_does_not_block_the_event_loop(tmp_path: Path) -> None:
    holder = CredentialStore(tmp_path)
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with holder.locked_sync():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.01)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            with anyio.move_on_after(0.3):
                await CredentialStore(tmp_path).save(_login())  # waits on the lock the thread holds
            tg.cancel_scope.cancel()
    finally:
        release.set()
        thread.join()
    assert ticks >= 10, "the event loop stalled while waiting for the credentials lock"
    assert await CredentialStore(tmp_path).load() is None  # the cancelled save wrote nothing
    await CredentialStore(tmp_path).save(_login())  # and the lock was not leaked


def test_a_writer_killed_at_random_points_never_leaves_an_unreadable_file(
    home: Path, child_env: dict[str, str], worker: list[str]
) -> None:
    """SIGKILL a process in the middle of 100 saves, again and again: the file always parses (atomic rename)."""
    store = CredentialStore(home)
    rng = random.Random(8628)
    deadline = time.monotonic() + 3.0
    kills, cut_short = 0, 0
    while time.monotonic() < deadline or kills < 5:
        proc = subprocess.Popen([*worker, "writer", "100"], env=child_env, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 0.1))  # 100 saves take ~0.1 s: kill anywhere in them
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
        kills += proc.returncode == -signal.SIGKILL
        login = store.read_sync()  # raises CredentialsCorrupt if a torn or partial file was left
        if login is not None:
            saved = int(login.access_token.get_secret_value().split("-")[1])
            cut_short += saved < 99
    assert kills >= 5
    assert cut_short >= 3, "the kills never landed in the middle of the saves"
