"""Fuzzing kimi-mcp's tools and resources over stdio (issue 13, item 2).

Hypothesis generates argument sets for each tool (wrong types, huge and unicode strings, lone surrogates, nulls,
negative and huge numbers, unknown keys; for media and files: absurd paths, globs, ms:// junk) and absurd URIs for
the resources, and sends them through a real `mcp.Client` to ONE `kimi-mcp serve` subprocess over stdio, pointed
at the fake Kimi, with KIMI_MCP_ALLOWED_DIRS set to a playground folder (a PNG, text, a FIFO, symlinks out and in a
loop, a sparse file over the media limit, .git, node_modules, .gitignore'd files...). What must hold, per example:

- an answer within CALL_BOUND seconds (a request left unanswered is a failure);
- `tools/call`: no JSON-RPC error; a failure is an `isError` result whose text starts "Error:", reads without
  pydantic or traceback noise, is not the "unexpected problem" of errors.InternalError (a bug behind it) and
  is bounded; a success has the tool's shape (footer with the conversation id, the upload's JSON, the status JSON);
- `resources/read`: contents, or a JSON-RPC error with a bounded message of our own (never the SDK's
  "Error reading resource …" that stands for an unexpected exception);

and at the end: the same process alive, `tools/list` answering, no traceback in its stderr.

Lone surrogates: the SDK's stdio client serialises with pydantic, which refuses them, so requests go through
`escaping()`, which writes the JSON as `json.dumps` (and a JavaScript host) does: "\\ud800" as an escape; and the
session is a legacy one (see `fuzz_session`).

The suite runs a small derandomised profile (tests/server/test_fuzz.py); the full run is

    python bench/fuzz_tools.py [--examples 500] [--seed N] [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest

KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
CALL_BOUND = 60.0  # generous (a loaded 2-core machine); a dropped request is never answered at all
MAX_ERROR_CHARS = 10_000  # an error echoing a huge argument whole is a failure
MAX_RESOURCE_ERROR_CHARS = 2_000
INTERNAL = "kimi-mcp hit an unexpected problem"  # errors.InternalError: a bug, even if readable
SDK_UNEXPECTED = "Error reading resource"  # mcp's UnexpectedResourceError: an exception we did not handle
NOISE = ("Traceback", "errors.pydantic.dev", "validation error for", "input_value=", "Error executing tool")
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"
TOOLS = ("kimi_chat", "kimi_upload_media", "kimi_login_status")
RESOURCES = "resources"
BURST = "burst"  # the kept inputs of every target sent concurrently, one in five cancelled by the client
MAX_BURST = 200


# -- the playground the server may read (KIMI_MCP_ALLOWED_DIRS) -----------------------------------------------------


def make_playground(root: Path) -> Path:
    """Files a fuzzed path may name: fine ones, odd ones, and ones that would hang or leak if read carelessly."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pic.png").write_bytes(PNG_HEAD + bytes(range(256)) * 4)
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("plain notes\n", encoding="utf-8")
    (root / "bin.dat").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    (root / "fake.png").write_text("not a png at all", encoding="utf-8")
    src = root / "src"
    src.mkdir(exist_ok=True)
    (src / "a.py").write_text("print('a')\n", encoding="utf-8")
    (src / "b.md").write_text("# b ✓\n", encoding="utf-8")
    for folder, name in ((".git", "config"), ("node_modules/x", "index.js"), ("ignored", "secret.txt")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text("x\n", encoding="utf-8")
    (root / ".gitignore").write_text("ignored/\n", encoding="utf-8")
    (root / "sub dir ü").mkdir(exist_ok=True)
    (root / "sub dir ü" / "ünï code.png").write_bytes(PNG_HEAD + b"\x00" * 64)
    with (root / "sparse.png").open("wb") as sparse:  # over KIMI_MCP_MAX_MEDIA_BYTES, no disk used
        sparse.write(PNG_HEAD)
        sparse.truncate(150_000_000)
    specials: list[tuple[str, Callable[[Path], None]]] = [
        ("fifo", lambda p: os.mkfifo(p)),  # opening it for reading blocks until a writer comes, unless O_NONBLOCK
        ("link-out", lambda p: p.symlink_to("/etc/passwd")),
        ("link-in", lambda p: p.symlink_to(root / "pic.png")),
        ("loop", lambda p: p.symlink_to(p)),
        ("sock", _bind_socket),
    ]
    for name, make in specials:
        with suppress(OSError):
            make(root / name)
    return root


def _bind_socket(path: Path) -> None:
    if len(str(path)) < 100:  # AF_UNIX path limit
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))


# -- strategies -----------------------------------------------------------------------------------------------------

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ANY_CHAR = st.one_of(st.characters(), SURROGATES, st.sampled_from("\x00\n\r\t\u202e\ufeff\uffff🚀é/\\*?[]{}%:"))
NASTY = st.sampled_from(
    ["", " ", "\x00", "\ud800", "\udfff", "\ud83d", "🚀" * 3, "\u202eevil", "%s%n%x", "{conversation_id}", "null",
     "'; DROP TABLE turns; --", "../" * 20, "<script>", "Error:", "\\u0000", "ms://", "kimi://login", "\r\n\r\n"]
)  # fmt: skip


def huge_text(low: int = 10_000, high: int = 2_300_000) -> st.SearchStrategy[str]:
    """A long string from a short unit: one draw for the length keeps hypothesis's buffer small."""
    unit = st.one_of(st.sampled_from(["x", "é", "🚀", "\ud800", "ab\x00", " ", "\n"]), st.text(min_size=1, max_size=4))
    return st.builds(lambda u, n: (u * (n // len(u) + 1))[:n], unit, st.integers(low, high))


TEXT = st.one_of(st.text(max_size=40), st.text(ANY_CHAR, max_size=40), NASTY)
BIG_INT = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 199, 200, 262_144, 262_145, 2**31, 2**63, -(2**63)])
)
SCALAR = st.one_of(st.none(), st.booleans(), BIG_INT, st.floats(), TEXT)
# Keys of nested objects without lone surrogates: the SDK's client cannot send those (pydantic's model_dump refuses
# them); top-level argument names and every string value may hold them.
KEY = st.one_of(st.text(max_size=20), NASTY.filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))
JUNK = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=4), max_leaves=8
)
UNKNOWN_KEYS = st.dictionaries(st.one_of(TEXT, st.sampled_from(["_meta", "arguments", "name", "PROMPT"])), JUNK,
                               max_size=3)  # fmt: skip


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: usually of its own kind, sometimes anything at all."""
    return st.one_of(value, value, JUNK)


def with_unknown_keys(arguments: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda known, extra: {**extra, **known}, arguments, st.one_of(st.just({}), UNKNOWN_KEYS))


@dataclass(frozen=True)
class Targets:
    """What a fuzzed value may name: the playground and a conversation that exists."""

    root: Path
    conversation_id: str


def path_strategy(t: Targets) -> st.SearchStrategy[str]:
    names = st.sampled_from(
        ["pic.png", "empty.png", "notes.txt", "bin.dat", "fake.png", "sparse.png", "fifo", "sock", "link-out",
         "link-in", "loop", "src", "src/a.py", ".git/config", "node_modules/x/index.js", "ignored/secret.txt",
         "sub dir ü/ünï code.png", "missing.png", "*.png", "**", "**/*", "src/**/*.py", "[", "[!", "{a,b}", "***",
         "*" * 300, "../" * 10 + "etc/passwd", ".", "..", "", "fifo/x", "pic.png/", "pic.png\x00.txt", "~"]
    )  # fmt: skip
    absolute = st.sampled_from(
        ["/", "//", "/etc/passwd", "/etc/shadow", "/dev/zero", "/dev/random", "/dev/stdin", "/proc/self/fd/0",
         "/proc/self/mem", "/proc/self/environ", "/**", "/*", "/etc/*", "/**/*.png", "relative.png", "./pic.png",
         "~/x.png", "file:///etc/passwd", "C:\\Windows\\x.png", "\\\\server\\share\\x.png", "http://127.0.0.1/x.png",
         "ms://", "ms:// ", " ms://x", "ms://fakefile000001", "ms://../../etc", "MS://x", "ms://" + "a" * 5000,
         "/" + "a" * 5000, "/" + "a/" * 2000]
    )  # fmt: skip
    rooted = st.builds(lambda name: f"{t.root}/{name}", st.one_of(names, TEXT))
    return st.one_of(rooted, rooted, absolute, TEXT, st.builds(lambda s: "ms://" + s, TEXT))


def arguments(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """Argument sets of three sorts: each field of its own type (values odd within it, so calls get past the
    argument check into the tool), each field anything at all, and either with unknown keys."""
    typed = st.fixed_dictionaries(required, optional=optional)
    junk = st.fixed_dictionaries(
        {name: maybe(value) for name, value in required.items()},
        optional={name: maybe(value) for name, value in optional.items()},
    )
    return with_unknown_keys(st.one_of(typed, typed, junk))


def chat_arguments(t: Targets) -> st.SearchStrategy[dict[str, Any]]:
    paths = path_strategy(t)
    prompt = st.one_of(st.text(min_size=1, max_size=200), TEXT, huge_text())
    conversation = st.one_of(st.just(t.conversation_id), st.builds(lambda s: t.conversation_id + s, TEXT),
                             st.sampled_from(["kc_0123456789abcdef", "kc_", "../../kimi-mcp.sqlite3"]), TEXT,
                             huge_text(5_000, 200_000))  # fmt: skip
    optional = {
        "system": st.one_of(st.none(), TEXT, huge_text(1_000, 100_000)),
        "conversation_id": st.one_of(st.none(), conversation),
        "thinking": st.one_of(st.none(), st.sampled_from(["off", "low", "high", "max", "OFF", "medium"])),
        "include_thinking": st.booleans(),
        "max_output_tokens": st.one_of(st.none(), BIG_INT, st.integers(1, 300)),
        "max_output_chars": st.one_of(st.none(), BIG_INT, st.integers(150, 1000)),
        "media": st.one_of(st.none(), st.lists(paths, max_size=22)),
        "files": st.one_of(st.none(), st.lists(paths, max_size=12)),
        "on_overflow": st.sampled_from(["error", "truncate", "TRUNCATE"]),
    }
    return arguments({"prompt": prompt}, optional)


def upload_arguments(t: Targets) -> st.SearchStrategy[dict[str, Any]]:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    data = st.one_of(
        st.builds(b64, st.binary(max_size=2_000)),
        st.builds(lambda b: b64(PNG_HEAD + b), st.binary(max_size=500)),
        st.builds(lambda b: b64(PNG_HEAD + b)[:-3] + "!!", st.binary(max_size=50)),
        st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ+/=_-\n \ud800é"), max_size=200),
        huge_text(100_000, 3_000_000),
        TEXT,
    )
    mime = st.one_of(
        st.sampled_from(["image/png", "image/jpeg", "video/mp4", "text/plain", "image/", "", "../", "image/png; x=1"]),
        TEXT,
    )
    one_of_them = st.one_of(
        st.fixed_dictionaries({"path": path_strategy(t)}),
        st.fixed_dictionaries({"data_base64": data}, optional={"mime_type": st.one_of(st.none(), mime)}),
    )
    anything = arguments({}, {"path": path_strategy(t), "data_base64": data, "mime_type": mime})
    return st.one_of(with_unknown_keys(one_of_them), with_unknown_keys(one_of_them), anything)


def status_arguments(_t: Targets) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), UNKNOWN_KEYS)


def resource_uris(t: Targets) -> st.SearchStrategy[str]:
    ids = st.one_of(
        st.just(t.conversation_id),
        st.builds(lambda s: t.conversation_id + s, TEXT),
        st.sampled_from(["", "..", "%2e%2e", "kc_0123456789abcdef", "kc_", "../login", "?", "#", "%00", " ", "*"]),
        TEXT,
        huge_text(1_000, 100_000),
    )
    turns = st.one_of(
        BIG_INT.map(str),
        st.sampled_from(["1", "01", "١", "²", "9" * 5000, "-1", "1e3", "0x1", " 1", "1 ", "", "1/2"]),
        TEXT,
        huge_text(1_000, 100_000),
    )
    fixed = st.sampled_from(
        ["kimi://login", "kimi://conversations", "kimi://", "kimi:", "kimi://conversations/", "kimi://conversations//",
         "kimi://conversations//turns/", "KIMI://LOGIN", "kimi://Conversations", "file:///etc/passwd", "kimi://login/",
         "kimi://login/../conversations", "kimi://conversations?limit=-1", "kimi://conversations#x", "http://x/"]
    )  # fmt: skip
    return st.one_of(
        st.builds(lambda i: f"kimi://conversations/{i}", ids),
        st.builds(lambda i, n: f"kimi://conversations/{i}/turns/{n}", ids, turns),
        st.builds(lambda i, n: f"kimi://conversations/{i}/turns/{n}", st.just(t.conversation_id), turns),
        fixed,
        TEXT,
    )


# Inputs worth trying every run, whatever the seed: each would have hung, crashed or leaked had it been missed.
def explicit_examples(t: Targets) -> dict[str, list[Any]]:
    root = t.root
    return {
        "kimi_chat": [
            {"prompt": "\ud800 lone surrogate"},
            {"prompt": "media from a FIFO", "media": [f"{root}/fifo"]},
            {"prompt": "files from a FIFO", "files": [f"{root}/fifo", f"{root}/sock"]},
            {"prompt": "the whole disk", "files": ["/**"]},
            {"prompt": "loop", "files": [f"{root}/loop", f"{root}/**"], "media": [f"{root}/loop"]},
            {"prompt": "x" * 2_300_000},
            {"prompt": "q", "conversation_id": t.conversation_id, "max_output_chars": 2**70},
            {"prompt": None, "thinking": {}, "media": "ms://x", "files": 5, "unknown": ["\udfff"]},
            {"prompt": "an id Kimi never gave", "media": ["ms://fakefile999999"], "conversation_id": t.conversation_id},
            {"prompt": "twenty of one", "media": [f"{root}/pic.png"] * 20, "thinking": "max", "include_thinking": True},
            {"prompt": "the same folder 200 times", "files": [str(root)] * 200, "on_overflow": "truncate"},
            {"prompt": "p", "system": "\ud800\x00", "files": [f"{root}/sparse.png", f"{root}/bin.dat", f"{root}/."]},
        ],
        "kimi_upload_media": [
            {"path": f"{root}/fifo"},
            {"path": f"{root}/sparse.png"},
            {"path": f"{root}/link-out"},
            {"data_base64": "\ud800", "mime_type": "image/png"},
            {"data_base64": "A" * 3_000_000, "mime_type": "image/png"},
            {"path": f"{root}/pic.png", "data_base64": "AAAA"},
        ],
        "kimi_login_status": [{"\ud800": None}],
        RESOURCES: [
            f"kimi://conversations/{t.conversation_id}/turns/{'9' * 5000}",
            "kimi://conversations/\ud800",
            "kimi://conversations/" + "x" * 100_000,
        ],
    }


STRATEGIES: dict[str, Callable[[Targets], st.SearchStrategy[Any]]] = {
    "kimi_chat": chat_arguments,
    "kimi_upload_media": upload_arguments,
    "kimi_login_status": status_arguments,
    RESOURCES: resource_uris,
}


# -- the transport: lone surrogates as escapes ----------------------------------------------------------------------


class _JsonDumpsRequest(JSONRPCRequest):
    """A request the SDK's stdio writer serialises with `json.dumps`: lone surrogates as "\\ud800" escapes."""

    def model_dump_json(self, **kwargs: Any) -> str:  # type: ignore[override]
        dumped = self.model_dump(
            mode="json", by_alias=kwargs.get("by_alias", True), exclude_unset=kwargs.get("exclude_unset", False)
        )
        return json.dumps(dumped, allow_nan=False)


class _EscapingWriter:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage, /) -> None:
        message = item.message
        if isinstance(message, JSONRPCRequest):
            fields = {name: getattr(message, name) for name in type(message).model_fields}
            copy = _JsonDumpsRequest.model_construct(_fields_set=message.model_fields_set, **fields)
            item = SessionMessage(copy, metadata=item.metadata)
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _EscapingWriter:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self._inner.__aexit__(*exc_info)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@asynccontextmanager
async def escaping(transport: Any) -> AsyncIterator[Any]:
    async with transport as (read_stream, write_stream):
        yield read_stream, _EscapingWriter(write_stream)


# -- one server, many calls -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one target's examples got."""

    examples: int = 0
    ok: int = 0
    refused: int = 0  # isError results (tools) or JSON-RPC errors (resources)
    slowest_s: float = 0.0
    total_s: float = 0.0  # in calls, generation excluded
    wall_s: float = 0.0  # generation and checks included
    progress_notifications: int = 0
    cancelled: int = 0  # burst calls the client gave up on
    kinds: Counter[str] = field(default_factory=Counter)  # how the refusals began, to see how deep the fuzz got


@dataclass
class Report:
    examples_per_target: int
    tallies: dict[str, Tally] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    alive_at_end: bool = False
    tools_listed_after: list[str] = field(default_factory=list)
    tracebacks_in_stderr: int = 0
    wall_s: float = 0.0


def _cut(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def _kind(text: str) -> str:
    return " ".join(text.removeprefix("Error: ").split()[:5])[:60]


_CANCELLED = object()


def check_tool(name: str, outcome: Any, tally: Tally) -> None:
    """A `tools/call` outcome (a result or the MCPError raised) as the fuzz requires it; counted in `tally`."""
    tally.examples += 1
    if isinstance(outcome, MCPError):
        raise AssertionError(f"JSON-RPC error {outcome.code} for tools/call {name}: {_cut(outcome.message)}")
    blocks = [block for block in outcome.content if block.type == "text"]
    text = "".join(block.text for block in blocks)
    others = {block.type for block in outcome.content} - {"text"}
    assert blocks, f"{name}: no text content: {_cut(outcome.content)}"
    if outcome.is_error:
        assert not others, f"{name}: an error with {others} content: {_cut(outcome.content)}"
        tally.refused += 1
        tally.kinds[_kind(text)] += 1
        assert text.startswith("Error: "), f"{name}: an error result not starting 'Error:': {_cut(text)}"
        assert INTERNAL not in text, f"{name}: an unexpected exception behind the result: {_cut(text)}"
        for noise in NOISE:
            assert noise not in text, f"{name}: {noise!r} in the error: {_cut(text)}"
        assert len(text) <= MAX_ERROR_CHARS, f"{name}: error of {len(text)} chars: {_cut(text)}"
        return
    tally.ok += 1
    # A cut reply links the resource with the full text (server/chat_result.py); nothing else but text.
    assert others <= ({"resource_link"} if name == "kimi_chat" else set()), f"{name}: {others} content"
    if name == "kimi_chat":
        assert "[conversation_id: " in text and outcome.meta, f"kimi_chat: no footer/_meta: {_cut(text)}"
    else:
        document = json.loads(text)
        assert isinstance(document, dict) and outcome.meta, f"{name}: not a JSON document: {_cut(text)}"
        if name == "kimi_upload_media":
            assert str(document.get("media_id", "")).startswith("ms://"), _cut(text)


def check_resource(outcome: Any, tally: Tally) -> None:
    """A `resources/read` outcome: contents, or a JSON-RPC error of ours, bounded."""
    tally.examples += 1
    if isinstance(outcome, MCPError):
        tally.refused += 1
        message = outcome.message
        tally.kinds[_kind(message)] += 1
        assert message and not message.startswith(SDK_UNEXPECTED), f"an unexpected exception: {_cut(message)}"
        assert "Traceback" not in message, _cut(message)
        assert len(message) <= MAX_RESOURCE_ERROR_CHARS, f"error of {len(message)} chars: {_cut(message)}"
        return
    tally.ok += 1
    assert outcome.contents and all(hasattr(c, "text") for c in outcome.contents), _cut(outcome)


class FuzzSession:
    """Calls into the served `kimi-mcp serve` from synchronous code (hypothesis), through a blocking portal."""

    def __init__(self, portal: BlockingPortal, client: Client) -> None:
        self._portal = portal
        self._client = client

    def _run(self, call: Callable[[], Any]) -> tuple[Any, float]:
        async def bounded() -> Any:
            with anyio.fail_after(CALL_BOUND):
                try:
                    return await call()
                except MCPError as exc:
                    return exc

        started = time.perf_counter()
        try:
            outcome = self._portal.call(bounded)
        except TimeoutError:
            raise AssertionError(f"no answer within {CALL_BOUND:.0f} s") from None
        return outcome, time.perf_counter() - started

    def call_tool(self, name: str, arguments: dict[str, Any], tally: Tally) -> None:
        async def progressed(progress: float, total: float | None, message: str | None) -> None:
            tally.progress_notifications += 1

        # With a progress callback the client sends a progress token, so the server's progress path runs too.
        outcome, seconds = self._run(lambda: self._client.call_tool(name, arguments, progress_callback=progressed))
        tally.slowest_s = max(tally.slowest_s, seconds)
        tally.total_s += seconds
        check_tool(name, outcome, tally)

    def read_resource(self, uri: str, tally: Tally) -> None:
        outcome, seconds = self._run(lambda: self._client.read_resource(uri, cache_mode="bypass"))
        tally.slowest_s = max(tally.slowest_s, seconds)
        tally.total_s += seconds
        check_resource(outcome, tally)

    def burst(self, calls: list[tuple[str, Any]], tally: Tally, *, cancel_every: int = 5) -> None:
        """All `calls` at once; every `cancel_every`-th is given up by the client after a few tens of ms (the
        client then sends notifications/cancelled), so the server also sees requests abandoned mid-flight."""
        outcomes: list[Any] = [None] * len(calls)

        async def one(index: int, name: str, value: Any) -> None:
            async def send() -> Any:
                if name == RESOURCES:
                    return await self._client.read_resource(value, cache_mode="bypass")
                return await self._client.call_tool(name, value)

            try:
                if index % cancel_every == cancel_every - 1:
                    with anyio.move_on_after(0.01 * (index % 11)) as scope:
                        outcomes[index] = await send()
                    if scope.cancelled_caught:
                        outcomes[index] = _CANCELLED
                    return
                outcomes[index] = await send()
            except MCPError as exc:
                outcomes[index] = exc

        async def all_at_once() -> None:
            with anyio.fail_after(CALL_BOUND * 2):
                async with anyio.create_task_group() as group:
                    for index, (name, value) in enumerate(calls):
                        group.start_soon(one, index, name, value)

        started = time.perf_counter()
        try:
            self._portal.call(all_at_once)
        except TimeoutError:
            unanswered = sum(outcome is None for outcome in outcomes)
            raise AssertionError(f"{unanswered} of {len(calls)} concurrent requests unanswered") from None
        tally.total_s = tally.slowest_s = time.perf_counter() - started
        for (name, value), outcome in zip(calls, outcomes, strict=True):
            if outcome is _CANCELLED:
                tally.cancelled += 1
                continue
            try:
                check_resource(outcome, tally) if name == RESOURCES else check_tool(name, outcome, tally)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n  sent ({name}, in the burst): {_cut(value, 2000)}") from None

    def list_tools(self) -> list[str]:
        outcome, _ = self._run(lambda: self._client.list_tools())
        assert not isinstance(outcome, MCPError), outcome
        return sorted(tool.name for tool in outcome.tools)

    def first_conversation(self) -> str:
        outcome, _ = self._run(lambda: self._client.call_tool("kimi_chat", {"prompt": "a conversation to fuzz"}))
        assert not isinstance(outcome, MCPError) and not outcome.is_error, outcome
        return str(outcome.meta["kimi-mcp/chat"]["conversation_id"])


def _served_pids() -> set[int]:
    """`kimi-mcp serve` children of this process (Linux /proc), to see that the very same one is alive at the end."""
    pids: set[int] = set()
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        with suppress(OSError):
            pids.update(int(pid) for pid in children.read_text().split())
    return {pid for pid in pids if _is_kimi_mcp(pid)}


def _is_kimi_mcp(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and any(part.endswith(b"kimi-mcp") for part in command) and b"serve" in command


@contextmanager
def fuzz_session(env: dict[str, str], stderr: Path) -> Iterator[tuple[FuzzSession, int | None]]:
    """One `kimi-mcp serve` child with `env` (and PATH), its stderr to `stderr`, driven by a real `mcp.Client`."""
    params = StdioServerParameters(
        command=str(KIMI_MCP), args=["serve"], env={"PATH": os.environ.get("PATH", ""), **env}
    )
    before = _served_pids()

    @asynccontextmanager
    async def connected() -> AsyncIterator[Client]:
        with stderr.open("a", encoding="utf-8") as errlog:
            transport = escaping(stdio_client(params, errlog=errlog))
            # Legacy (2025-era) sessions, as hosts speak today: the SDK's 2026-07-28 client copies the tool name and
            # resource URI into request headers, and refuses a lone surrogate there before anything is sent.
            async with Client(transport, mode="legacy", read_timeout_seconds=CALL_BOUND * 2) as client:
                yield client

    with start_blocking_portal() as portal, portal.wrap_async_context_manager(connected()) as client:
        session = FuzzSession(portal, client)
        session.list_tools()
        started = _served_pids() - before
        yield session, (min(started) if len(started) == 1 else None)


def fuzz_target(
    session: FuzzSession,
    name: str,
    targets: Targets,
    tally: Tally,
    *,
    examples: int,
    seed: int | None,
    keep: list[tuple[str, Any]] | None = None,
    keep_at_most: int = 0,
) -> None:
    """Run hypothesis on one tool (or the resources) against the live server; raises on the first failure.
    The first `keep_at_most` inputs are appended to `keep` (for the burst).

    No shrinking: against one live server a shrink would replay a hang for every step, and the failing example is
    shown whole in the error anyway.
    """
    strategy = STRATEGIES[name](targets)
    kept = 0

    def check(value: Any) -> None:
        nonlocal kept
        if keep is not None and kept < keep_at_most:
            keep.append((name, value))
            kept += 1
        try:
            if name == RESOURCES:
                session.read_resource(value, tally)
            else:
                session.call_tool(name, value, tally)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n  sent: {_cut(value, 2000)}") from None

    run = given(strategy)(check)
    for value in explicit_examples(targets)[name]:
        run = example(value)(run)
    run = settings(
        max_examples=examples,
        deadline=None,
        derandomize=seed is None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )(run)
    if seed is not None:
        run = hypothesis_seed(seed)(run)
    run()


def run(env: dict[str, str], workdir: Path, *, examples: int, seed: int | None = None) -> Report:
    """Fuzz every tool and the resources with `examples` generated inputs each (plus the explicit ones).

    `env` points kimi-mcp at a fake Kimi; KIMI_MCP_ALLOWED_DIRS is set here to a fresh playground under `workdir`.
    `seed=None` is derandomised (the suite's profile): the same inputs every run.
    """
    root = make_playground(workdir / "allowed")
    stderr = workdir / "serve.log"
    report = Report(examples_per_target=examples)
    started = time.perf_counter()
    kept: list[tuple[str, Any]] = []
    per_target = min(examples, MAX_BURST) // (len(TOOLS) + 1)
    with fuzz_session({**env, "KIMI_MCP_ALLOWED_DIRS": str(root)}, stderr) as (session, pid):
        targets = Targets(root, session.first_conversation())
        for name in (*TOOLS, RESOURCES):
            tally = report.tallies.setdefault(name, Tally())
            began = time.perf_counter()
            try:
                fuzz_target(
                    session, name, targets, tally, examples=examples, seed=seed, keep=kept, keep_at_most=per_target
                )
            except Exception as exc:
                report.failures[name] = f"{type(exc).__name__}: {exc}"[:5000]
            tally.wall_s = time.perf_counter() - began
        # The same inputs again, all at once, some abandoned mid-flight; then a plain call must still work.
        tally = report.tallies.setdefault(BURST, Tally())
        began = time.perf_counter()
        try:
            session.burst(kept[0::4] + kept[1::4] + kept[2::4] + kept[3::4], tally)
            session.call_tool("kimi_chat", {"prompt": "after the burst"}, after := Tally())
            assert after.ok == 1, "kimi_chat failed after the burst"
        except Exception as exc:
            report.failures[BURST] = f"{type(exc).__name__}: {exc}"[:5000]
        tally.wall_s = time.perf_counter() - began
        report.tools_listed_after = session.list_tools()
        report.alive_at_end = pid is not None and _is_kimi_mcp(pid)
    report.wall_s = time.perf_counter() - started
    report.tracebacks_in_stderr = stderr.read_text(encoding="utf-8", errors="replace").count("Traceback")
    return report


def summary(report: Report) -> str:
    lines = [
        f"{'target':<20}{'examples':>9}{'ok':>6}{'refused':>9}{'calls s':>9}{'wall s':>8}{'slowest s':>11}  failure"
    ]
    for name, tally in report.tallies.items():
        failure = "none" if name not in report.failures else report.failures[name].splitlines()[0][:80]
        lines.append(
            f"{name:<20}{tally.examples:>9}{tally.ok:>6}{tally.refused:>9}{tally.total_s:>9.1f}{tally.wall_s:>8.1f}"
            f"{tally.slowest_s:>11.2f}"
            f"  {failure}"
        )
    lines.append(
        f"alive at end: {report.alive_at_end} · tools/list after: {', '.join(report.tools_listed_after)} · "
        f"tracebacks in stderr: {report.tracebacks_in_stderr} · wall {report.wall_s:.1f} s"
    )
    if BURST in report.tallies:
        burst = report.tallies[BURST]
        lines.append(
            f"burst: {burst.examples + burst.cancelled} calls at once, {burst.cancelled} cancelled by the client"
        )
    for name, tally in report.tallies.items():
        common = "; ".join(f"{kind} ×{count}" for kind, count in tally.kinds.most_common(12))
        lines.append(f"  {name} refusals: {common}")
    return "\n".join(lines)


def main() -> int:
    from kimi_mcp.testing.fake_kimi import DEFAULT_API_KEY, FakeKimi

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="generated inputs per tool and for the resources")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: derandomised)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    options = parser.parse_args()
    with FakeKimi() as fake, tempfile.TemporaryDirectory(prefix="kimi-fuzz-") as folder:
        work = Path(folder)
        env = {
            "KIMI_API_KEY": DEFAULT_API_KEY,
            "KIMI_CODE_BASE_URL": fake.base_url,
            "KIMI_CODE_OAUTH_HOST": fake.oauth_host,
            "KIMI_MCP_HOME": str(work / "home"),
        }
        report = run(env, work, examples=options.examples, seed=options.seed)
    print(summary(report))
    if options.json is not None:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        document = asdict(report)
        for name, tally in report.tallies.items():  # asdict rebuilds a Counter from its items: keep the dict
            document["tallies"][name]["kinds"] = dict(tally.kinds.most_common())
        options.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    healthy = report.alive_at_end and not report.tracebacks_in_stderr and set(TOOLS) <= set(report.tools_listed_after)
    return 0 if healthy and not report.failures else 1


if __name__ == "__main__":
    sys.exit(main())
