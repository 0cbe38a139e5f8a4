"""The credential store: `$KIMI_MCP_HOME/credentials.json` (docs/kimi-api.md §3, "Decision").

Folder 0700, file 0600 whatever the umask, written atomically (`kimi_mcp.fs.write_private_file`), and changed
only under a cross-process lock (`filelock`), so N processes sharing one home refresh a token once. A file that
cannot be read or has the wrong shape raises `CredentialsCorrupt` and is left alone: only a new login or a
logout replaces it. File and lock I/O run in worker threads so the event loop never blocks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
import filelock
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kimi_mcp import logs
from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.errors import CredentialsCorrupt, KimiMcpError
from kimi_mcp.fs import ensure_private_dir, write_private_file

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
_LOCK_FILE = "credentials.json.lock"
_LOCK_SLICE = 0.1  # seconds one worker-thread attempt waits, so cancellation is seen between attempts


class StoredLogin(BaseModel):
    """One stored OAuth login. Secrets are `SecretStr`; only `to_file_bytes()` reveals them (into the file)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    access_token: SecretStr = Field(min_length=1)
    refresh_token: SecretStr = Field(min_length=1)
    expires_at: float  # unix seconds
    expires_in: int  # the lifetime Kimi granted; drives the early-refresh threshold (§3)
    scope: str = ""
    token_type: str = "Bearer"
    obtained_by: Literal["device_flow", "refresh"]
    saved_at: float
    # Kimi refused this refresh token (invalid_grant/401/403): every process must stop, not retry (§3).
    refresh_rejected: bool = False

    @classmethod
    def from_token_response(
        cls, answer: TokenResponse, obtained_by: Literal["device_flow", "refresh"], *, now: float | None = None
    ) -> StoredLogin:
        now = time.time() if now is None else now
        return cls(
            access_token=answer.access_token,
            refresh_token=answer.refresh_token,
            expires_at=now + answer.expires_in,
            expires_in=answer.expires_in,
            scope=answer.scope,
            token_type=answer.token_type,
            obtained_by=obtained_by,
            saved_at=now,
        )

    def to_file_bytes(self) -> bytes:
        data = self.model_dump(mode="json")
        data["access_token"] = self.access_token.get_secret_value()
        data["refresh_token"] = self.refresh_token.get_secret_value()
        return (json.dumps(data, indent=2) + "\n").encode("utf-8")


class CredentialsBusy(KimiMcpError):
    def __init__(self, path: Path, waited: float) -> None:
        super().__init__(
            f"Another kimi-mcp process has held the lock on {path} for {waited:.0f} s. "
            "Try again; if it persists, stop stuck kimi-mcp processes."
        )


class CredentialStore:
    """The credentials file of one home folder. Safe across processes; one instance per event loop."""

    def __init__(self, home: Path, *, lock_timeout: float = 120.0) -> None:
        self.home = home
        self.path = home / CREDENTIALS_FILE
        self._lock_timeout = lock_timeout
        # thread_local=False: acquire and release happen in (possibly different) worker threads.
        self._file_lock = filelock.FileLock(home / _LOCK_FILE, mode=0o600, thread_local=False, poll_interval=0.02)
        self._guard = anyio.Lock()  # the file lock is reentrant per object: serialise this process's tasks first

    # ---- async API ---------------------------------------------------------------------------------------------

    async def load(self) -> StoredLogin | None:
        """The stored login, or None when there is none. Raises `CredentialsCorrupt` for a bad file."""
        return await anyio.to_thread.run_sync(self.read_sync)

    async def save(self, login: StoredLogin) -> None:
        """Replace the stored login (a new login). Refreshes use `locked()` to re-read before writing."""
        async with self.locked() as locked:
            await locked.save(login)

    async def delete(self) -> bool:
        """Remove the stored login (logout). True if there was one."""
        async with self.locked() as locked:
            return await locked.delete()

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[LockedCredentials]:
        """Hold the cross-process lock; re-read and write through the handle while holding it."""
        async with self._guard:
            await self._acquire()
            try:
                yield LockedCredentials(self)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._file_lock.release)

    async def _acquire(self) -> None:
        await anyio.to_thread.run_sync(ensure_private_dir, self.home)
        started = time.monotonic()
        while not await anyio.to_thread.run_sync(self._try_acquire_sync):
            waited = time.monotonic() - started
            if waited >= self._lock_timeout:
                raise CredentialsBusy(self.path, waited)

    def _try_acquire_sync(self) -> bool:
        try:
            self._file_lock.acquire(timeout=_LOCK_SLICE)
        except filelock.Timeout:
            return False
        return True

    # ---- sync core (worker threads, and the crash-safety test) -------------------------------------------------

    def read_sync(self) -> StoredLogin | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CredentialsCorrupt(str(self.path), exc.strerror or type(exc).__name__) from None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise CredentialsCorrupt(str(self.path), f"not valid JSON{where}") from None
        if not isinstance(data, dict):
            raise CredentialsCorrupt(str(self.path), "not a JSON object")
        try:
            login = StoredLogin.model_validate(data)
        except ValidationError as exc:
            # Name the fields only: pydantic's full text would quote the values, and they may be secrets.
            fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
            raise CredentialsCorrupt(str(self.path), f"missing or invalid: {', '.join(fields)}") from None
        register_login_secrets(login)
        return login

    def write_sync(self, login: StoredLogin) -> None:
        """Write atomically. Call only while holding the lock (the crash test does, through `locked_sync`)."""
        register_login_secrets(login)
        ensure_private_dir(self.home)
        self._sweep_temp_files()
        write_private_file(self.path, login.to_file_bytes())

    @contextlib.contextmanager
    def locked_sync(self) -> Iterator[None]:
        """The cross-process lock without the event loop (for scripts and the crash-safety test)."""
        ensure_private_dir(self.home)
        with self._file_lock:
            yield

    def _remove_sync(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _sweep_temp_files(self) -> None:
        """Drop temp files a killed writer left behind. Safe: every writer holds the lock we hold now."""
        for stale in self.home.glob(f".{CREDENTIALS_FILE}.*.tmp"):
            with contextlib.suppress(OSError):
                os.unlink(stale)


class LockedCredentials:
    """Read and write the store while its cross-process lock is held (see `CredentialStore.locked`)."""

    def __init__(self, store: CredentialStore) -> None:
        self._store = store

    async def load(self) -> StoredLogin | None:
        return await anyio.to_thread.run_sync(self._store.read_sync)

    async def save(self, login: StoredLogin) -> None:
        await anyio.to_thread.run_sync(self._store.write_sync, login)
        logger.debug("stored Kimi login (%s), expires in %.0f s", login.obtained_by, login.expires_at - time.time())

    async def delete(self) -> bool:
        return await anyio.to_thread.run_sync(self._store._remove_sync)


def register_login_secrets(login: StoredLogin) -> None:
    """Both tokens of a login we read or write are redacted from every log line from then on."""
    logs.register_secret(login.access_token.get_secret_value())
    logs.register_secret(login.refresh_token.get_secret_value())
