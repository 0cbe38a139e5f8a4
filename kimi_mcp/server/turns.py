"""One `kimi_chat` turn: load the conversation, ask Kimi, and store exactly what Kimi saw.

Continuations of one conversation take turns inside a server: a call holds the conversation's lock (the
store's `turn_locks`) from loading the history to appending its turn, so each request carries the turn before
it, and a call that has to wait says so in its progress. Across processes nothing can hold them back: a
conversation that grew between a call's load and its append gets that call's turn as a branch under a new id
(`ConversationStore.continue_conversation`), and the note says which id to continue from.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from kimi_mcp import errors
from kimi_mcp.kimi.attachments import Attachments, Reopen
from kimi_mcp.kimi.media import LocalMedia
from kimi_mcp.kimi.models import ChatRequest, ChatResult, ContentBlock, MediaBlock, Message, TextBlock
from kimi_mcp.server.progress import ProgressReporter
from kimi_mcp.server.state import AppState
from kimi_mcp.server.surrogates import has_lone_surrogates, replace_lone_surrogates
from kimi_mcp.settings import ThinkingLevel
from kimi_mcp.store import Conversation, Turn

if TYPE_CHECKING:  # context_files (and pathspec) load on the first call that reads files, not at server start
    from kimi_mcp.access import FileAccessPolicy
    from kimi_mcp.context_files import OnOverflow, PackedFiles

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ask:
    """What this call asks, whatever conversation it lands in."""

    prompt: str
    thinking: ThinkingLevel
    max_output_tokens: int | None
    # Images and videos: read local files, or ms:// references (kimi/attachments.py), sent before the prompt.
    media: tuple[LocalMedia | str, ...] = ()
    # How to read again a file an upload was made from, should Kimi say it lost the upload (server/local_files.py).
    reopen: Reopen | None = None
    # Files, folders and globs to read as context (context_files), under `files_policy`.
    files: tuple[str, ...] = ()
    files_policy: FileAccessPolicy | None = None
    on_overflow: OnOverflow = "error"


class Outcome(NamedTuple):
    result: ChatResult
    conversation_id: str
    turn: int
    note: str | None  # ours (a branch, a turn not saved); Kimi's own stays in result.note
    files: PackedFiles | None = None  # what `Ask.files` read, sent and skipped


def grew_note(conversation_id: str, branch_id: str) -> str:
    return (
        f"conversation {conversation_id} grew meanwhile (another process); this turn was stored as {branch_id} "
        "— continue from that id"
    )


async def start(state: AppState, reporter: ProgressReporter, ask: Ask, system: str | None) -> Outcome:
    """The first turn of a new conversation."""
    conversation_id = state.store.new_id()
    model, wire = state.settings.model, state.settings.protocol
    attached = await _attach(state, reporter, ask)
    sent = await _ask_kimi(
        state, reporter, ask, attached, model=model, system=system, history=[], cache_key=conversation_id, sent_files={}
    )
    turn = _turn(sent)
    try:
        number = await state.store.append_turn(conversation_id, model=model, wire=wire, system=system, turn=turn)
    except Exception as exc:  # Kimi already answered (and the quota is spent): return the reply regardless
        note = _notes(attached, _not_saved(conversation_id, exc))
        return Outcome(sent.result, conversation_id, 1, note, sent.files)
    return Outcome(sent.result, conversation_id, number, _notes(attached), sent.files)


async def proceed(state: AppState, reporter: ProgressReporter, ask: Ask, conversation_id: str) -> Outcome:
    """The next turn of `conversation_id`, after the turn before it (in this server) has been stored."""
    store = state.store

    async def queued() -> None:
        await reporter.waiting_for(f"the previous turn of conversation {conversation_id}")

    # Media first, outside the conversation's lock: an upload does not depend on the history.
    attached = await _attach(state, reporter, ask)
    async with store.turn_locks.holding(conversation_id, on_wait=queued):
        await reporter.waiting_for(None)
        conversation = await store.load(conversation_id)
        sent = await _ask_kimi(
            state,
            reporter,
            ask,
            attached,
            model=conversation.model,
            system=conversation.system,
            history=conversation.messages(),
            cache_key=conversation.cache_key,
            sent_files=conversation.sent_files(),
        )
        outcome = await _store_next(state, conversation, _turn(sent), sent.result)
    return outcome._replace(note=_notes(attached, outcome.note), files=sent.files)


async def _store_next(state: AppState, conversation: Conversation, turn: Turn, result: ChatResult) -> Outcome:
    try:
        appended = await state.store.continue_conversation(conversation, turn)
    except Exception as exc:
        return Outcome(result, conversation.id, len(conversation.turns) + 1, _not_saved(conversation.id, exc))
    note = None
    if appended.grew_from is not None:
        logger.info("conversation %s grew meanwhile; turn stored as %s", conversation.id, appended.conversation_id)
        note = grew_note(conversation.id, appended.conversation_id)
    return Outcome(result, appended.conversation_id, appended.turn, note)


class Sent(NamedTuple):
    """Kimi's answer and the user turn exactly as the request that got it carried it."""

    result: ChatResult
    user: list[ContentBlock]
    files: PackedFiles | None = None


async def _attach(state: AppState, reporter: ProgressReporter, ask: Ask) -> Attachments:
    if not ask.media:
        return Attachments(blocks=[])

    def progress_for(name: str) -> Callable[[int, int], Awaitable[None]]:
        return lambda sent, total: reporter.uploading(name, sent, total)

    return await state.media_policy.attach(ask.media, progress_for)


async def _ask_kimi(
    state: AppState,
    reporter: ProgressReporter,
    ask: Ask,
    attached: Attachments,
    *,
    model: str,
    system: str | None,
    history: list[Message],
    cache_key: str,
    sent_files: dict[str, str],
) -> Sent:
    file_blocks: list[TextBlock] = []

    def build(media: list[MediaBlock]) -> ChatRequest:
        return ChatRequest(
            model=model,
            system=system,
            messages=[*history, Message(role="user", content=[*media, *file_blocks, TextBlock(text=ask.prompt)])],
            thinking=ask.thinking,
            max_output_tokens=ask.max_output_tokens,
            cache_key=cache_key if state.settings.cache_enabled else None,
        )

    policy = state.media_policy
    request = build(attached.blocks)
    if attached.blocks:
        request, attached = await policy.fit(attached, build)
    packed = None
    if ask.files:
        packed = await _read_files(state, reporter, ask, request, sent_files)
        file_blocks.extend(packed.blocks())
        request = build(attached.blocks)
    if any(not isinstance(block, TextBlock) for message in history for block in message.content):
        request = await policy.current_references(request)
    try:
        result = await state.kimi.chat(request, on_progress=reporter.update)
    except errors.MediaGone as gone:
        # docs/kimi-api.md §7: Kimi no longer has a file this request refers to. Upload it again, once.
        replaced = await policy.replace_gone(request, attached, gone.reference, ask.reopen or _cannot_reopen)
        if replaced is None:
            raise
        logger.info("Kimi no longer had %s; uploaded it again as %s", gone.reference, replaced[1].reference)
        request = replaced[0]
        result = await state.kimi.chat(request, on_progress=reporter.update)
    return Sent(_encodable(result), list(request.messages[-1].content), packed)


async def _read_files(
    state: AppState, reporter: ProgressReporter, ask: Ask, request: ChatRequest, sent_files: dict[str, str]
) -> PackedFiles:
    """`ask.files` read and packed into what the request leaves of the model's window and of the body cap
    (context_files.budget_for, docs/files.md "The budget")."""
    from kimi_mcp.context_files import budget_for, prepare_files

    assert ask.files_policy is not None
    window = (await state.kimi.context_window(request.model)).tokens
    budget = budget_for(request, protocol=state.settings.protocol, window_tokens=window)

    async def progress(done: int, total: int) -> None:
        await reporter.reading_files(done, total)

    return await prepare_files(
        ask.files,
        ask.files_policy,
        budget=budget,
        max_file_bytes=state.settings.max_file_bytes,
        on_overflow=ask.on_overflow,
        previously_sent=sent_files,
        on_progress=progress,
    )


async def _cannot_reopen(_: str) -> LocalMedia | None:
    return None


def _notes(attached: Attachments, *more: str | None) -> str | None:
    notes = [*attached.notes, *(note for note in more if note)]
    return " ".join(notes) or None


def _encodable(result: ChatResult) -> ChatResult:
    """Kimi's text with lone surrogates replaced (server/surrogates.py): a reply neither SQLite nor the stdio
    transport could write would cost the turn, or the whole server."""
    texts = {"text": result.text, "thinking": result.thinking}
    broken = {name: replace_lone_surrogates(text) for name, text in texts.items() if text and has_lone_surrogates(text)}
    return result.model_copy(update=broken) if broken else result


def _turn(sent: Sent) -> Turn:
    result = sent.result
    return Turn(
        user=sent.user,
        assistant_text=result.text,
        thinking=result.thinking,
        stop_reason=result.stop_reason,
        usage=result.usage,
        files=sent.files.sent_hashes() if sent.files is not None else {},
    )


def _not_saved(conversation_id: str, exc: Exception) -> str:
    logger.error("could not store the turn of conversation %s", conversation_id, exc_info=exc)
    if isinstance(exc, errors.KimiMcpError):  # e.g. an unreadable store: its message names the file
        return f"This turn was not saved. {exc.message}"
    return errors.TurnNotSaved(type(exc).__name__).message
