"""Who we say we are on the wire (docs/kimi-api.md §2): our own User-Agent and true device headers.

We never pose as another client. Custom headers from settings can add names for proxies and gateways but can
never replace the identity, authentication or protocol headers.
"""

from __future__ import annotations

import os
import platform
import re
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path

from kimi_mcp._version import __version__
from kimi_mcp.fs import ensure_private_dir, write_private_file

USER_AGENT = f"kimi-mcp/{__version__}"
PLATFORM = "kimi_mcp"

_PROTECTED = frozenset(
    {"user-agent", "authorization", "x-api-key", "content-type", "accept", "anthropic-version"}
    # framing headers: set by the HTTP client for each request, never by configuration
    | {"host", "content-length", "transfer-encoding", "connection"}
)
_DEVICE_ID_FILE = "device_id"
_DEVICE_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def is_protected_header(name: str) -> bool:
    """True for headers no setting may set: identity, authentication and protocol headers."""
    lowered = name.strip().lower()
    return lowered in _PROTECTED or lowered.startswith("x-msh-")


def ascii_value(value: str) -> str:
    """Strip a header value to printable ASCII; `unknown` if nothing is left (docs/kimi-api.md §2)."""
    cleaned = "".join(ch for ch in value if 32 <= ord(ch) < 127).strip()
    return cleaned or "unknown"


def device_model() -> str:
    system = platform.system()
    arch = platform.machine()
    if system == "Darwin":
        return f"macOS {platform.mac_ver()[0]} {arch}"
    if system == "Windows":
        build = int([*platform.version().split("."), "0", "0", "0"][2] or 0)
        return f"Windows {'11' if build >= 22000 else '10'} {arch}"
    return f"{system} {platform.release()} {arch}"


def device_id(home: Path) -> str:
    """The random device id, created once and kept 0600 in our home folder.

    The folder is checked before anything in it is read: every client is built through here, so a home folder that
    another user could write to is refused before a credential could be read from it (kimi_mcp/fs.py).
    """
    ensure_private_dir(home)
    path = home / _DEVICE_ID_FILE
    try:
        existing = path.read_text(encoding="ascii").strip()
        if _DEVICE_ID_RE.match(existing):
            return existing
    except (OSError, UnicodeDecodeError):
        pass
    new_id = secrets.token_hex(16)
    write_private_file(path, new_id.encode("ascii"))
    return new_id


def identity_headers(home: Path) -> dict[str, str]:
    """The headers every request to Kimi and its OAuth host carries."""
    return {
        "User-Agent": USER_AGENT,
        "X-Msh-Platform": PLATFORM,
        "X-Msh-Version": __version__,
        "X-Msh-Device-Name": ascii_value(socket.gethostname()),
        "X-Msh-Device-Model": ascii_value(device_model()),
        "X-Msh-Os-Version": ascii_value(platform.release() if os.name != "nt" else platform.version()),
        "X-Msh-Device-Id": device_id(home),
    }


def request_headers(home: Path, custom: Mapping[str, str]) -> dict[str, str]:
    """Custom headers first, then our identity on top: a custom header can add, never override."""
    headers = {name: ascii_value(value) for name, value in custom.items() if not is_protected_header(name)}
    headers.update(identity_headers(home))
    return headers
