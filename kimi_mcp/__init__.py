"""kimi-mcp: use Moonshot's Kimi Code plan from any MCP host."""

from kimi_mcp._version import __version__
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.settings import Settings

__all__ = ["KimiClient", "Settings", "__version__"]
