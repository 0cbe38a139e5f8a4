"""Conversations: ordered turns kept exactly as sent, so every replay is byte-identical.

Kimi's prompt cache only hits when each turn replays the same prefix (docs/kimi-api.md §6): the same system
text and the same earlier turns. So user content and usage are stored as pydantic JSON and the reply text
verbatim (the full text, never the copy truncated for the host), and model, wire and system stay as first stored.

What is stored is exactly what Kimi saw. Inside one process, continuations of a conversation take turns
(`turn_locks`); across processes, a conversation that grew between a call's load and its append gets that
call's turn as a branch under a new id (`continue_conversation`).
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, Field, TypeAdapter

from kimi_mcp.errors import ConversationNotFound
from kimi_mcp.kimi.models import ContentBlock, Message, TextBlock, Usage
from kimi_mcp.store.db import DB_FILE_NAME, Database, transaction
from kimi_mcp.store.locks import KeyedLocks
from kimi_mcp.store.uploads import UploadCache

log = logging.getLogger(__name__)

EXPIRY_INTERVAL_SECONDS = 3600.0
FIRST_LINE_MAX_CHARS = 100
_ID_PATTERN = re.compile(r"kc_[0-9a-f]{16}")
_USER_CONTENT = TypeAdapter(list[ContentBlock])
_FILES = TypeAdapter(dict[str, str])


class Turn(BaseModel):
    """One completed exchange. Stored only once the reply is complete, so a cancelled call leaves no trace.

    `created_at` is when the exchange completed; a conversation's `updated_at`, which expiry counts from, is
    the newest of its turns' `created_at`.
    """

    user: list[ContentBlock]
    assistant_text: str
    thinking: str | None = None
    stop_reason: str
    usage: Usage
    created_at: float = Field(default_factory=time.time)
    # Files this turn sent as context: path -> sha256 (context_files). Empty for most turns.
    files: dict[str, str] = Field(default_factory=dict)


class Conversation(BaseModel):
    id: str
    created_at: float
    updated_at: float
    model: str
    wire: str
    system: str | None
    turns: list[Turn]
    # The `prompt_cache_key` its requests carry: its own id, except for a branch, which keeps the key of the
    # conversation it branched from (see `continue_conversation`).
    cache_key: str

    def sent_files(self) -> dict[str, str]:
        """path -> sha256 of every file sent as context so far, the latest version of each."""
        sent: dict[str, str] = {}
        for turn in self.turns:
            sent.update(turn.files)
        return sent

    def messages(self) -> list[Message]:
        """The history to replay, identical on every call so Kimi's prefix cache hits (docs/kimi-api.md §6)."""
        history: list[Message] = []
        for turn in self.turns:
            history.append(Message(role="user", content=list(turn.user)))
            history.append(Message(role="assistant", content=[TextBlock(text=turn.assistant_text)]))
        return history


class Appended(NamedTuple):
    """Where `continue_conversation` stored a turn."""

    conversation_id: str
    turn: int  # 1-based index of the turn in `conversation_id`
    grew_from: str | None = None  # set when the turn went to a new branch because this conversation grew


class ConversationSummary(BaseModel):
    id: str
    first_prompt_line: str
    updated_at: float
    turns: int
    model: str


def is_conversation_id(value: object) -> bool:
    """True for ids `ConversationStore.new_id()` makes; anything else never reaches SQL."""
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


class ConversationStore:
    """Conversations in `home/kimi-mcp.sqlite3`. Opens lazily: constructing one does no I/O."""

    def __init__(self, home: Path, *, max_age_seconds: float) -> None:
        if max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        self.max_age_seconds = float(max_age_seconds)
        self._db = Database(Path(home) / DB_FILE_NAME)
        self._next_expiry = 0.0  # time.monotonic() after which append_turn expires old conversations
        # Held by a server call from loading a conversation to appending its turn: in-process continuations of
        # one conversation go one at a time, so each one's request carries the turn before it.
        self.turn_locks = KeyedLocks()
        self._uploads = UploadCache(self._db)

    @property
    def uploads(self) -> UploadCache:
        """Files uploaded to Kimi, by content, in the same database file (their rows never expire with
        conversations: an upload outlives the conversations that use it)."""
        return self._uploads

    @staticmethod
    def new_id() -> str:
        """A fresh, URL-safe id; it doubles as the `prompt_cache_key` (docs/kimi-api.md §6)."""
        return "kc_" + secrets.token_hex(8)

    async def load(self, conversation_id: str) -> Conversation:
        """The conversation with all its turns; `ConversationNotFound` if unknown, malformed or expired."""
        if not is_conversation_id(conversation_id):
            raise ConversationNotFound(_shortened(conversation_id))
        cutoff = self._cutoff()
        found = await self._db.run(lambda conn: _load(conn, conversation_id, cutoff))
        if found is None:
            raise ConversationNotFound(conversation_id)
        return found

    async def append_turn(self, conversation_id: str, *, model: str, wire: str, system: str | None, turn: Turn) -> int:
        """Store `turn` (creating the conversation on its first turn) and return its 1-based index.

        One transaction: a concurrent writer in any process gets the next index, never the same one.
        model, wire and system stay as first stored, since changing them would break the cached prefix.
        The caller loads (or creates) the id first; a conversation loaded just before it expired is kept
        alive by this append rather than lost mid-call.
        """
        if not is_conversation_id(conversation_id):
            raise ValueError(f"not a conversation id: {_shortened(conversation_id)!r}")
        index = await self._db.run(lambda conn: _append(conn, conversation_id, model, wire, system, turn))
        await self.expire_now_and_then()
        return index

    async def continue_conversation(self, loaded: Conversation, turn: Turn) -> Appended:
        """Store `turn` as the next turn after exactly the turns of `loaded` (the history Kimi was sent).

        In one transaction: if the stored conversation still has `len(loaded.turns)` turns, `turn` is appended
        to it. If another process appended meanwhile, appending here would store a history Kimi never saw, so
        `loaded`'s turns plus `turn` become a new conversation (a branch, `grew_from` set) and the stored one is
        left as it is. If it expired and was deleted meanwhile, it is written back under its id.
        """
        branch_id = self.new_id()
        appended = await self._db.run(lambda conn: _continue(conn, loaded, turn, branch_id))
        await self.expire_now_and_then()
        return appended

    async def recent(self, limit: int = 50) -> list[ConversationSummary]:
        """Live conversations, most recently updated first."""
        cutoff = self._cutoff()
        return await self._db.run(lambda conn: _recent(conn, cutoff, max(0, limit)))

    async def expire_old(self) -> int:
        """Delete conversations not updated for `max_age_seconds`; return how many went."""
        cutoff = self._cutoff()
        return await self._db.run(lambda conn: _expire(conn, cutoff))

    @property
    def path(self) -> Path:
        """The database file (it may not exist yet: the store opens lazily)."""
        return self._db.path

    async def count(self) -> int:
        """How many live (unexpired) conversations there are: what `recent` would list without a limit."""
        cutoff = self._cutoff()
        return await self._db.run(lambda conn: _count(conn, cutoff))

    async def delete(self, conversation_id: str) -> ConversationSummary | None:
        """Delete a conversation and its turns (the upload cache stays: it is keyed by content, not by conversation).

        Returns what was deleted, or None if no such conversation is stored. A call in flight on it in a server
        writes it back under its id when its turn completes (see `continue_conversation`).
        """
        if not is_conversation_id(conversation_id):
            return None
        return await self._db.run(lambda conn: _delete_one(conn, conversation_id))

    async def prune(
        self, *, older_than_seconds: float | None, keep: int | None, dry_run: bool = False
    ) -> list[ConversationSummary]:
        """Delete the conversations not updated for `older_than_seconds` (None: any age), except the `keep` most
        recently updated ones (None: none kept for that reason), newest first; `dry_run` only lists them."""
        cutoff = None if older_than_seconds is None else time.time() - older_than_seconds
        return await self._db.run(lambda conn: _prune(conn, cutoff, max(0, keep or 0), dry_run))

    async def aclose(self) -> None:
        """Close the connection. A later call opens it again."""
        await self._db.aclose()

    def _cutoff(self) -> float:
        return time.time() - self.max_age_seconds

    async def expire_now_and_then(self) -> None:
        """Expire at most once an hour per store: a cheap indexed delete that keeps the file from growing."""
        if time.monotonic() < self._next_expiry:
            return
        self._next_expiry = time.monotonic() + EXPIRY_INTERVAL_SECONDS
        try:
            removed = await self.expire_old()
        except sqlite3.Error as exc:  # the turn is already stored; housekeeping can wait for the next hour
            log.warning("could not expire old conversations: %s", exc)
        else:
            if removed:
                log.info("expired %d old conversation(s)", removed)


def _shortened(value: object) -> str:
    """A bad id as a user may see it in an error: bounded, whatever was passed."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 64 else text[:64] + "…"


def _load(conn: sqlite3.Connection, conversation_id: str, cutoff: float) -> Conversation | None:
    with transaction(conn, "DEFERRED"):  # one snapshot: the row and its turns agree
        row = conn.execute(
            "SELECT created_at, updated_at, model, wire, system, coalesce(cache_key, id) FROM conversations "
            "LEFT JOIN cache_keys ON conversation_id = id WHERE id = ? AND updated_at >= ?",
            (conversation_id, cutoff),
        ).fetchone()
        if row is None:
            return None
        turns = conn.execute(
            "SELECT user_json, assistant_text, thinking, stop_reason, usage_json, turns.created_at, files_json "
            "FROM turns LEFT JOIN turn_files USING (conversation_id, idx) WHERE conversation_id = ? ORDER BY idx",
            (conversation_id,),
        ).fetchall()
    created_at, updated_at, model, wire, system, cache_key = row
    return Conversation(
        id=conversation_id,
        created_at=created_at,
        updated_at=updated_at,
        model=model,
        wire=wire,
        system=system,
        turns=[_turn_from_row(*turn) for turn in turns],
        cache_key=cache_key,
    )


def _turn_from_row(
    user_json: str,
    assistant_text: str,
    thinking: str | None,
    stop_reason: str,
    usage_json: str,
    created_at: float,
    files_json: str | None,
) -> Turn:
    return Turn(
        user=_USER_CONTENT.validate_json(user_json),
        assistant_text=assistant_text,
        thinking=thinking,
        stop_reason=stop_reason,
        usage=Usage.model_validate_json(usage_json),
        created_at=created_at,
        files=_FILES.validate_json(files_json) if files_json else {},
    )


def _append(
    conn: sqlite3.Connection, conversation_id: str, model: str, wire: str, system: str | None, turn: Turn
) -> int:
    with transaction(conn, "IMMEDIATE"):
        count = _turn_count(conn, conversation_id)
        if count is None:
            _insert_conversation(conn, conversation_id, model, wire, system, turn)
        return _insert_turn(conn, conversation_id, (count or 0) + 1, turn)


def _continue(conn: sqlite3.Connection, loaded: Conversation, turn: Turn, branch_id: str) -> Appended:
    seen = len(loaded.turns)
    with transaction(conn, "IMMEDIATE"):  # the count and the write below see the same database
        count = _turn_count(conn, loaded.id)
        if count == seen:
            return Appended(loaded.id, _insert_turn(conn, loaded.id, seen + 1, turn))
        target = loaded.id if count is None else branch_id
        first = loaded.turns[0] if loaded.turns else turn
        _insert_conversation(conn, target, loaded.model, loaded.wire, loaded.system, first)
        if loaded.cache_key != target:
            # The branch keeps the cache key this turn's request was sent with. Moonshot routes requests by this
            # key (docs/kimi-api.md §6), so the branch's next turn goes where its prefix (the turns loaded plus
            # this one) was just cached; a fresh key would send it elsewhere and pay the whole prefix again.
            conn.execute("INSERT INTO cache_keys VALUES (?, ?)", (target, loaded.cache_key))
        for index, earlier in enumerate(loaded.turns, start=1):
            _insert_turn(conn, target, index, earlier)
        number = _insert_turn(conn, target, seen + 1, turn)
    return Appended(target, number, grew_from=None if target == loaded.id else loaded.id)


def _turn_count(conn: sqlite3.Connection, conversation_id: str) -> int | None:
    row = conn.execute("SELECT turn_count FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    return None if row is None else int(row[0])


def _insert_conversation(
    conn: sqlite3.Connection, conversation_id: str, model: str, wire: str, system: str | None, first: Turn
) -> None:
    """A conversation row without turns; `_insert_turn` counts them. Columns named: schema 2 has more tables."""
    conn.execute(
        "INSERT INTO conversations (id, created_at, updated_at, model, wire, system, first_prompt_line, turn_count) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        (conversation_id, first.created_at, first.created_at, model, wire, system, _first_line(first)),
    )


def _insert_turn(conn: sqlite3.Connection, conversation_id: str, index: int, turn: Turn) -> int:
    conn.execute(
        "INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            conversation_id,
            index,
            turn.created_at,
            _USER_CONTENT.dump_json(turn.user).decode(),
            turn.assistant_text,
            turn.thinking,
            turn.stop_reason,
            turn.usage.model_dump_json(),
        ),
    )
    if turn.files:
        conn.execute(
            "INSERT INTO turn_files VALUES (?, ?, ?)", (conversation_id, index, _FILES.dump_json(turn.files).decode())
        )
    conn.execute(
        "UPDATE conversations SET turn_count = ?, updated_at = max(updated_at, ?) WHERE id = ?",
        (index, turn.created_at, conversation_id),
    )
    return index


def _first_line(turn: Turn) -> str:
    """The first non-blank line of the first prompt, for listings."""
    for block in turn.user:
        if isinstance(block, TextBlock):
            for line in block.text.splitlines():
                if stripped := line.strip():
                    return stripped if len(stripped) <= FIRST_LINE_MAX_CHARS else stripped[:FIRST_LINE_MAX_CHARS] + "…"
    return ""


_SUMMARY_COLUMNS = "SELECT id, first_prompt_line, updated_at, turn_count, model FROM conversations "


def _summaries(rows: list[tuple[str, str, float, int, str]]) -> list[ConversationSummary]:
    return [
        ConversationSummary(id=id_, first_prompt_line=line, updated_at=updated, turns=turns, model=model)
        for id_, line, updated, turns, model in rows
    ]


def _recent(conn: sqlite3.Connection, cutoff: float, limit: int) -> list[ConversationSummary]:
    rows = conn.execute(
        _SUMMARY_COLUMNS + "WHERE updated_at >= ? ORDER BY updated_at DESC, id DESC LIMIT ?", (cutoff, limit)
    ).fetchall()
    return _summaries(rows)


def _count(conn: sqlite3.Connection, cutoff: float) -> int:
    return int(conn.execute("SELECT count(*) FROM conversations WHERE updated_at >= ?", (cutoff,)).fetchone()[0])


def _delete_where(conn: sqlite3.Connection, condition: str, parameters: tuple[object, ...]) -> int:
    """Delete the conversations matching `condition` (SQL over `conversations`) with all their rows; how many went.
    The caller holds an IMMEDIATE transaction."""
    # Turns and cache keys first, explicitly: the cascade needs foreign_keys on, which a hand-opened sqlite3
    # shell lacks.
    for table in ("turns", "turn_files", "cache_keys"):
        conn.execute(
            f"DELETE FROM {table} WHERE conversation_id IN (SELECT id FROM conversations WHERE {condition})",
            parameters,
        )
    return conn.execute(f"DELETE FROM conversations WHERE {condition}", parameters).rowcount


def _expire(conn: sqlite3.Connection, cutoff: float) -> int:
    with transaction(conn, "IMMEDIATE"):
        return _delete_where(conn, "updated_at < ?", (cutoff,))


def _delete_one(conn: sqlite3.Connection, conversation_id: str) -> ConversationSummary | None:
    with transaction(conn, "IMMEDIATE"):  # what is reported is what is deleted
        found = _summaries(conn.execute(_SUMMARY_COLUMNS + "WHERE id = ?", (conversation_id,)).fetchall())
        if found:
            _delete_where(conn, "id = ?", (conversation_id,))
    return found[0] if found else None


def _prune(conn: sqlite3.Connection, cutoff: float | None, keep: int, dry_run: bool) -> list[ConversationSummary]:
    with transaction(conn, "DEFERRED" if dry_run else "IMMEDIATE"):  # the list and the deletes see one database
        rows = conn.execute(
            _SUMMARY_COLUMNS + "ORDER BY updated_at DESC, id DESC LIMIT -1 OFFSET ?", (keep,)
        ).fetchall()
        going = [s for s in _summaries(rows) if cutoff is None or s.updated_at < cutoff]
        if not dry_run:
            for summary in going:
                _delete_where(conn, "id = ?", (summary.id,))
    return going
