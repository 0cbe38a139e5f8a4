"""`kimi-mcp serve` started by a person in a terminal (a real pseudo-terminal), and by a host (pipes, no terminal).

A person gets one line on stderr saying what this is and what to do instead; Ctrl-C then ends it at once with
status 130 and no traceback, even while the server is blocked reading stdin. A host never sees that line.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

if os.name == "nt":  # pragma: no cover
    pytest.skip("pseudo-terminals are POSIX", allow_module_level=True)

import fcntl
import pty
import select
import termios

from kimi_mcp.cli import TERMINAL_HINT

KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
# Generous: a loaded 2-core machine can take seconds to start Python and import the server.
STARTUP_SECONDS = 60.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
}


def server_env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KIMI_MCP_HOME": str(tmp_path / "home")}


def read_until(fd: int, needle: bytes, seconds: float) -> bytes:
    """Bytes read from `fd` until `needle` appears (or fail after `seconds`)."""
    deadline = time.monotonic() + seconds
    seen = b""
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} did not come within {seconds:.0f} s; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"stream closed before {needle!r}; got {seen!r}"
            seen += chunk
    return seen


def read_line(stream: IO[bytes], seconds: float) -> bytes:
    return read_until(stream.fileno(), b"\n", seconds)


def take_terminal() -> None:
    """In the child, after setsid: make the pty on stdin the controlling terminal, so ^C there means SIGINT."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal (master, slave) without echo, so what we read from the master is only the server's."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.mark.parametrize("args", [["serve"], []], ids=["kimi-mcp serve", "kimi-mcp"])
def test_a_terminal_gets_one_hint_and_the_first_ctrl_c_exits_130(
    args: list[str], terminal: tuple[int, int], tmp_path: Path
) -> None:
    master, slave = terminal
    process = subprocess.Popen(
        [str(KIMI_MCP), *args],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=server_env(tmp_path),
        start_new_session=True,
        preexec_fn=take_terminal,
    )
    try:
        assert process.stderr is not None
        hint = read_line(process.stderr, STARTUP_SECONDS).decode()
        assert hint == f"{TERMINAL_HINT}\n"
        assert "stdin/stdout" in hint and "claude mcp add kimi -- kimi-mcp serve" in hint
        assert 'kimi-mcp chat "hello"' in hint

        # It is a working server: it answers MCP typed at the terminal, on stdout (the terminal), without the hint.
        os.write(master, json.dumps(INITIALIZE).encode() + b"\n")
        answer = read_until(master, b"}\r\n", STARTUP_SECONDS)
        assert b'"id":1' in answer and b'"result"' in answer and TERMINAL_HINT.encode() not in answer

        # Now it is blocked reading the next line: the place where an interrupt used to hang.
        os.write(master, b"\x03")
        status = process.wait(timeout=STARTUP_SECONDS)
        rest = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert status == 130, rest
    assert "Traceback" not in rest and TERMINAL_HINT not in rest
    assert rest == "kimi-mcp: stopped.\n"


def test_a_host_never_gets_the_hint(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(KIMI_MCP), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=server_env(tmp_path),
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(INITIALIZE).encode() + b"\n")
        process.stdin.flush()
        first = read_line(process.stdout, STARTUP_SECONDS)
        assert json.loads(first)["id"] == 1  # stdout starts with the answer: nothing else on the wire
        out, err = process.communicate(timeout=STARTUP_SECONDS)  # closes stdin: the server ends
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert TERMINAL_HINT not in (first + out + err).decode()
    assert b"MCP host" not in err
