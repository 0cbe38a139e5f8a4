"""Finding the server a stdio client started (tests and bench/ read its memory, descriptors, or kill it)."""

from __future__ import annotations

import os
from pathlib import Path


def stdio_child_pid() -> int:
    """The `kimi-mcp serve` process this process started (the stdio client spawns it without telling its pid)."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == me and b"serve" in argv and any(arg.endswith(b"kimi-mcp") for arg in argv):
            found.append(int(entry.name))
    if len(found) != 1:
        raise RuntimeError(f"expected one kimi-mcp serve child of process {me}, found {found}")
    return found[0]
