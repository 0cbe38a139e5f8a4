"""`kimi-mcp conversations [list | show ID | delete ID | prune]`: the stored conversations, for people.

The same data as the kimi://conversations resources, through the same store queries and renderers
(server/output.py): `list --json` prints exactly what the resource returns, `show` exactly its transcript.
Deletes go through the store's own connection handling (WAL, busy timeout, one IMMEDIATE transaction each), so a
server running against the same store meanwhile is safe; the upload cache is left alone (it is keyed by content).

Nothing here creates the home folder or the database: with no store yet there is nothing to list or delete.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from kimi_mcp import errors
from kimi_mcp.settings import Settings

if TYPE_CHECKING:
    from kimi_mcp.store import ConversationStore, ConversationSummary

# As many as the kimi://conversations resource lists (server/resources.py).
DEFAULT_LIMIT = 50
DAY_SECONDS = 86_400
_ALL = 2**62  # `--limit 0`: SQLite's LIMIT takes a 64-bit integer
_ID_ECHO_MAX_CHARS = 64


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `conversations` subcommand and its actions, for cli.py's parser."""
    parser = commands.add_parser(
        "conversations", help="list, show, delete or prune the stored kimi_chat conversations (default: list)"
    )
    actions = parser.add_subparsers(dest="conversations_command", metavar="ACTION")
    # After add_subparsers, so that the action's own default (None) is replaced: no ACTION means `list`.
    parser.set_defaults(conversations_command="list", json=False, limit=DEFAULT_LIMIT)
    listing = actions.add_parser("list", help="the most recent conversations, newest first (the default)")
    listing.add_argument("--json", action="store_true", help="print the kimi://conversations resource's JSON")
    listing.add_argument(
        "--limit",
        type=_count_arg,
        default=DEFAULT_LIMIT,
        help=f"at most N conversations (default {DEFAULT_LIMIT}; 0: all)",
    )
    show = actions.add_parser("show", help="a whole transcript, as kimi://conversations/ID shows it")
    show.add_argument("id", metavar="ID", help="a conversation id (kc_…), from `kimi-mcp conversations list`")
    delete = actions.add_parser("delete", help="delete a conversation and its turns (no prompt)")
    delete.add_argument("id", metavar="ID", help="a conversation id (kc_…), from `kimi-mcp conversations list`")
    prune = actions.add_parser(
        "prune", help="delete conversations idle for DAYS and/or all but the N most recent (no prompt)"
    )
    prune.add_argument("--older-than", type=_days_arg, metavar="DAYS", help="delete those idle for over DAYS days")
    prune.add_argument("--keep", type=_count_arg, metavar="N", help="but always keep the N most recent ones")
    prune.add_argument("--dry-run", action="store_true", help="only list what would be deleted")


def _days_arg(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not 0 <= days < 1e6:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"expected a number of days, 0 or more (got {text[:20]!r})")
    return days


def _count_arg(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more (got {text[:20]!r})")
    return int(text)


def open_store(settings: Settings) -> ConversationStore | None:
    """The store, or None if its file does not exist yet (opening it would create the folder and the file)."""
    from kimi_mcp.store import ConversationStore

    store = ConversationStore(settings.home, max_age_seconds=settings.conversation_max_age_days * DAY_SECONDS)
    return store if store.path.exists() else None


async def conversations(settings: Settings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run one `conversations` action; its exit status (unknown ids raise, and cli.py says them on stderr)."""
    import sqlite3

    store = open_store(settings)
    try:
        return await _ACTIONS[args.conversations_command](store, args, out)
    except sqlite3.Error as exc:  # unreadable files are StoreUnreadable already; this is e.g. "database is locked"
        raise errors.StoreFailed(str(store.path if store else settings.home), str(exc)) from None
    except BrokenPipeError:  # `kimi-mcp conversations | head` stopped reading: it has what it wanted
        if out is sys.stdout:  # so that the flush at exit does not fail on the closed pipe too
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if store is not None:
            await store.aclose()


async def _list(store: ConversationStore | None, args: argparse.Namespace, out: TextIO) -> int:
    from kimi_mcp.server.output import render_conversation_list

    summaries = await store.recent(args.limit or _ALL) if store is not None else []
    if args.json:
        print(render_conversation_list(summaries), file=out)
        return 0
    if not summaries:
        print(
            "No conversations yet: kimi_chat stores each conversation here once its first reply is complete.", file=out
        )
        return 0
    for line in summary_lines(summaries):
        print(line, file=out)
    total = await store.count() if store is not None else 0
    if total > len(summaries):
        print(f"({len(summaries)} of {total} shown, newest first; `--limit {total}` shows them all)", file=out)
    return 0


def summary_lines(summaries: Sequence[ConversationSummary]) -> list[str]:
    """One line each: id, turns, last activity (UTC) and the first line of the first prompt."""
    width = max(len(_turns(s.turns)) for s in summaries) if summaries else 0
    return [f"{s.id}  {_turns(s.turns):>{width}}  {_when(s.updated_at)}  {s.first_prompt_line}" for s in summaries]


async def _show(store: ConversationStore | None, args: argparse.Namespace, out: TextIO) -> int:
    from kimi_mcp.server.output import render_transcript

    conversation_id = _checked_id(args.id)
    if store is None:
        raise errors.NoSuchConversation(conversation_id)
    try:
        conversation = await store.load(conversation_id)
    except errors.ConversationNotFound:
        raise errors.NoSuchConversation(conversation_id) from None
    text = render_transcript(conversation)
    out.write(text if text.endswith("\n") else text + "\n")
    return 0


async def _delete(store: ConversationStore | None, args: argparse.Namespace, out: TextIO) -> int:
    conversation_id = _checked_id(args.id)
    deleted = await store.delete(conversation_id) if store is not None else None
    if deleted is None:
        raise errors.NoSuchConversation(conversation_id)
    print(f"Deleted {deleted.id}: {_turns(deleted.turns)}, last active {_when(deleted.updated_at)}", file=out)
    return 0


async def _prune(store: ConversationStore | None, args: argparse.Namespace, out: TextIO) -> int:
    if args.older_than is None and args.keep is None:
        from kimi_mcp.cli import say

        say("prune needs --older-than DAYS and/or --keep N, e.g. `kimi-mcp conversations prune --older-than 30`.")
        return 2
    if store is None:
        print("Nothing to prune: no conversations are stored yet.", file=out)
        return 0
    older_than = None if args.older_than is None else args.older_than * DAY_SECONDS
    going = await store.prune(older_than_seconds=older_than, keep=args.keep, dry_run=args.dry_run)
    if args.dry_run:
        print(f"Would delete {_plural(len(going), 'conversation')}{':' if going else '.'}", file=out)
        for line in summary_lines(going):
            print(line, file=out)
    else:
        print(f"Deleted {_plural(len(going), 'conversation')}.", file=out)
    return 0


_ACTIONS: dict[str, Callable[[ConversationStore | None, argparse.Namespace, TextIO], Awaitable[int]]] = {
    "list": _list,
    "show": _show,
    "delete": _delete,
    "prune": _prune,
}


async def store_line(settings: Settings) -> str:
    """`status`'s line about the store: count and size, or why there is none. Never raises: status must not fail
    because of the store."""
    import sqlite3

    from kimi_mcp.store import DB_FILE_NAME

    try:
        store = open_store(settings)
    except OSError as exc:  # e.g. the home folder cannot be searched
        return f"Store:     unavailable ({exc})"
    if store is None:
        return f"Store:     no conversations yet ({settings.home / DB_FILE_NAME})"
    try:
        count = await store.count()
    except (errors.KimiMcpError, sqlite3.Error, OSError) as exc:
        return f"Store:     unreadable: {exc}"
    finally:
        await store.aclose()
    return f"Store:     {_plural(count, 'conversation')}, {_size(store.path)} ({store.path})"


def _size(path: Path) -> str:
    """The database and its write-ahead log together: between checkpoints recent writes live in the -wal file."""
    total = 0
    for file in (path, path.with_name(path.name + "-wal")):
        try:
            total += file.stat().st_size
        except OSError:
            pass  # no -wal file between sessions; that is fine
    return f"{total / 1_000_000:.1f} MB" if total >= 100_000 else f"{total / 1000:.0f} kB"


def _checked_id(value: str) -> str:
    from kimi_mcp.store import is_conversation_id

    if not is_conversation_id(value):
        shown = value if len(value) <= _ID_ECHO_MAX_CHARS else value[:_ID_ECHO_MAX_CHARS] + "…"
        raise errors.NotAConversationId(shown)
    return value


def _turns(count: int) -> str:
    return _plural(count, "turn")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
