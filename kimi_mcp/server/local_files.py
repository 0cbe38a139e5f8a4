"""Local files a tool call names: the file access policy in effect for this call, and media read under it.

The policy is the one of `kimi_mcp/access.py`. Its roots, per call: the MCP client's roots when it offers them
(`roots/list`), else KIMI_MCP_ALLOWED_DIRS, else the server's working folder. Over stdio the host that spawned us
is the user's own, so its roots replace the working-folder default; over HTTP the caller may be anyone holding
the token and its roots name folders on another machine, so there, as everywhere KIMI_MCP_ALLOWED_DIRS is set,
client roots can only narrow the allowed set, never widen it.

Roots were deprecated by the 2026-07-28 protocol (SEP-2577) but hosts still send them; a client without them, a
stateless HTTP session with no way to ask, or a client that does not answer in time leaves the settings' roots.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import anyio
from mcp.server.mcpserver import Context

from kimi_mcp import errors
from kimi_mcp.access import FileAccessPolicy, paths_from_root_uris
from kimi_mcp.kimi.attachments import MEDIA_REFERENCE_PREFIX
from kimi_mcp.kimi.media import LocalMedia, inspect_path
from kimi_mcp.server.state import AppState

logger = logging.getLogger(__name__)

# A host that declares roots but never answers must not hold the call up for long.
ROOTS_TIMEOUT_SECONDS = 10.0


async def client_roots(ctx: Context) -> list[Path] | None:
    """The client's roots as local folders, or None when it offers none (or cannot be asked)."""
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return None
    try:
        with anyio.fail_after(ROOTS_TIMEOUT_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MCPDeprecationWarning: roots are deprecated in 2026-07-28
            result = await ctx.session.list_roots()
    except Exception as exc:  # no back channel (stateless HTTP), a timeout, a client error: use the settings
        logger.info("could not list the client's roots (%s); using the configured folders", type(exc).__name__)
        return None
    # An empty list (the Inspector's, for one) draws no boundary: read it as "no roots", not "nothing allowed".
    return paths_from_root_uris(str(root.uri) for root in result.roots) or None


async def access_policy(state: AppState, ctx: Context) -> FileAccessPolicy:
    base = FileAccessPolicy.from_settings(state.settings)
    return base.with_client_roots(await client_roots(ctx), may_widen=state.transport == "stdio")


async def read_media(policy: FileAccessPolicy, raw_path: str, max_bytes: int) -> LocalMedia:
    """A media file the caller named, checked by the policy, typed by content and hashed (in a worker thread)."""
    path = policy.resolve_file(raw_path)
    return await anyio.to_thread.run_sync(lambda: inspect_path(path, max_bytes=max_bytes, name=raw_path))


async def media_items(
    state: AppState, ctx: Context, entries: list[str], policy: FileAccessPolicy | None = None
) -> list[LocalMedia | str]:
    """`kimi_chat`'s media list: `ms://` references as they are, paths read as local media."""
    items: list[LocalMedia | str] = []
    for entry in entries:
        entry = entry.strip()
        if entry.startswith(MEDIA_REFERENCE_PREFIX):
            if len(entry) == len(MEDIA_REFERENCE_PREFIX):
                raise errors.UnknownMediaId(entry)
            items.append(entry)
            continue
        policy = policy or await access_policy(state, ctx)
        items.append(await read_media(policy, entry, state.settings.max_media_bytes))
    return items
