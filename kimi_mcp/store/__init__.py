"""Embedded SQLite store in `$KIMI_MCP_HOME/kimi-mcp.sqlite3`, shared by every kimi-mcp process.

`db` owns the file (private modes, WAL, busy timeout, schema migrations, worker threads); `conversations`
keeps conversations on top of it; `uploads` remembers which files Kimi already holds, by content.
"""

from kimi_mcp.store.conversations import (
    Appended,
    Conversation,
    ConversationStore,
    ConversationSummary,
    Turn,
    is_conversation_id,
)
from kimi_mcp.store.db import DB_FILE_NAME, SCHEMA_VERSION
from kimi_mcp.store.uploads import CachedUpload, UploadCache

__all__ = [
    "DB_FILE_NAME",
    "SCHEMA_VERSION",
    "Appended",
    "CachedUpload",
    "Conversation",
    "ConversationStore",
    "ConversationSummary",
    "Turn",
    "UploadCache",
    "is_conversation_id",
]
