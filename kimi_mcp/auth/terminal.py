"""`kimi-mcp login` in a terminal: the terms notice, URL and code, the browser, a countdown, Ctrl-C to cancel.

The notice is docs/kimi-api.md §2's: Moonshot reserves subscription OAuth for its own clients and asks third-party
tools to use a Kimi Code API key; we say so before the user logs in, and identify honestly as kimi-mcp.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from typing import TextIO

import anyio
import anyio.to_thread

from kimi_mcp.auth.device_flow import DeviceAuthorization, PollTiming, poll_for_token, start_device_authorization
from kimi_mcp.auth.tokens import TokenSource
from kimi_mcp.errors import KimiMcpError
from kimi_mcp.http import build_http_client
from kimi_mcp.identity import USER_AGENT
from kimi_mcp.settings import Settings

NOTICE = (
    "Before you log in: Moonshot reserves Kimi subscription (OAuth) logins for its official clients and asks\n"
    "third-party tools to use a Kimi Code API key instead (set KIMI_API_KEY; that is the sanctioned path).\n"
    f"kimi-mcp identifies itself honestly as {USER_AGENT} and never poses as another client.\n"
)
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_PLAIN_EVERY = 60.0  # seconds between "still waiting" lines when stderr is not a terminal


async def terminal_login(
    settings: Settings, out: TextIO = sys.stderr, *, timing: PollTiming | None = None, open_browser: bool = True
) -> None:
    """Run a device login on the terminal and store it. Raises `LoginFailed`; cancellation stores nothing."""
    _say(out, NOTICE)
    if settings.api_key is not None:
        _say(out, "\nKIMI_API_KEY is set: kimi-mcp keeps using the key, not this login, while it stays set.\n")
    async with build_http_client(settings) as http:
        tokens = TokenSource(settings, http)
        authorization = await start_device_authorization(http, settings)
        _say(out, f"\nOpen this page and approve the login:\n\n    {authorization.url}\n")
        _say(out, f"Confirmation code: {authorization.user_code}\n\n")
        if open_browser:
            await _open_browser(authorization.url)
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_countdown, authorization, out)
            try:
                answer = await poll_for_token(http, settings, authorization, timing=timing)
            except Exception as exc:  # re-raised below, bare rather than wrapped in an ExceptionGroup
                failure = exc
            finally:
                tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        await tokens.save_login(answer)
    _say(out, f"Logged in. The login is stored in {tokens.store.path} and refreshes by itself.\n")


def login_command(
    settings: Settings, out: TextIO = sys.stderr, *, timing: PollTiming | None = None, open_browser: bool = True
) -> int:
    """Run `terminal_login` to completion; the exit status for `kimi-mcp login` (130 after Ctrl-C)."""
    login = functools.partial(terminal_login, settings, out, timing=timing, open_browser=open_browser)
    try:
        finished = anyio.run(_until_interrupted, login)
    except KeyboardInterrupt:  # before the event loop took over SIGINT
        finished = False
    except KimiMcpError as exc:
        _say(out, f"\n{exc.message}\n")
        return 1
    if not finished:
        _say(out, "\nLogin cancelled; nothing was stored.\n")
        return 130
    return 0


async def _until_interrupted(login: Callable[[], Awaitable[None]]) -> bool:
    """Run `login`; False if Ctrl-C stopped it first.

    SIGINT cancels the login through an anyio cancel scope of ours. Left to asyncio, it would cancel the task
    natively, and that cancellation can race with the login's own task-group cancellation (the poll ending)
    and be absorbed: the login then went on polling after Ctrl-C. Nothing is stored until the very end, and that
    write is atomic, so stopping at any await is safe.
    """
    interrupted = False
    failure: Exception | None = None

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal interrupted
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                interrupted = True
                scope.cancel()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        try:
            await login()
        except Exception as exc:  # re-raised below, bare rather than wrapped in an ExceptionGroup
            failure = exc
        finally:
            tg.cancel_scope.cancel()
    if failure is not None and not interrupted:
        raise failure
    return not interrupted


def _say(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()


def _can_open_browser() -> bool:
    # Without a display, webbrowser may start a text browser that takes over this very terminal.
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return not os.environ.get("SSH_CONNECTION")


async def _open_browser(url: str) -> None:
    """Try to open the page; never fail (the URL is printed anyway)."""
    if not _can_open_browser():
        return
    with anyio.move_on_after(5):
        try:
            await anyio.to_thread.run_sync(webbrowser.open, url, abandon_on_cancel=True)
        except Exception:  # a broken browser setup must not break the login
            pass


async def _countdown(authorization: DeviceAuthorization, out: TextIO) -> None:
    """A spinner with the time left on a terminal; an occasional plain line otherwise."""
    tty = out.isatty()
    try:
        if not tty:
            _say(out, f"Waiting for approval ({_clock(authorization.remaining())} left; Ctrl-C cancels)...\n")
        frame = 0
        while True:
            await anyio.sleep(0.1 if tty else _PLAIN_EVERY)
            left = _clock(authorization.remaining())
            if tty:
                frame = (frame + 1) % len(_SPINNER)
                _say(out, f"\r{_SPINNER[frame]} Waiting for approval... {left} left (Ctrl-C cancels) ")
            else:
                _say(out, f"Still waiting for approval ({left} left)...\n")
    finally:
        if tty:
            _say(out, "\r\x1b[K")


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
