"""kimi-mcp: use Moonshot's Kimi Code plan from any MCP host."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kimi_mcp._version import __version__
from kimi_mcp.settings import Settings

if TYPE_CHECKING:
    from kimi_mcp.kimi.client import KimiClient

__all__ = ["KimiClient", "Settings", "__version__"]


def __getattr__(name: str) -> Any:
    # `kimi-mcp serve` imports this package first: the client (and the HTTP and wire modules behind it) load when
    # Python code asks for it, not on every start of the server, which builds its client on first use anyway.
    if name == "KimiClient":
        from kimi_mcp.kimi.client import KimiClient

        globals()[name] = KimiClient
        return KimiClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
