"""A conversation goes on whichever wire the server speaks (issue 11: history is stored wire-neutral).

Begun by a server on one wire, continued by a server on the other over the same KIMI_MCP_HOME, then back: each
request replays the earlier turns exactly as the one before carried them, in the wire-neutral view of
kimi_mcp/testing/wire_views.py (the fake's canonical prompt, which its prompt cache compares), and since Kimi's
cache is shared by its two surfaces (docs/kimi-api.md §6) every continuation reads at least 90% of the previous
prompt from the emulated cache, across each switch.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from kimi_mcp.kimi.wires import EMPTY_REPLY_STAND_IN
from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi, Reply
from kimi_mcp.testing.mcp_results import chat_meta, text_of
from kimi_mcp.testing.wire_views import chat_views

pytestmark = pytest.mark.anyio
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"
SYSTEM = "You review Python code carefully and answer briefly. " * 300  # ~16 KB: many cache chunks
FIRST_REPLY = "The first answer, at some length. " * 20


def screenshot(folder: Path) -> Path:
    """A 2 MiB PNG: over the inline threshold, so it is uploaded and replayed as its ms:// id."""
    filler = hashlib.sha256(b"screenshot").digest()
    path = folder / "screen.png"
    path.write_bytes(PNG_HEAD + (filler * (2 * 1024 * 1024 // len(filler)))[: 2 * 1024 * 1024 - len(PNG_HEAD)])
    return path


async def one_turn(env: dict[str, str], wire: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One kimi_chat call by a fresh server speaking `wire` (a restart between turns, as a host would do)."""
    async with Client(build_server(Settings.from_env({**env, "KIMI_CODE_PROTOCOL": wire})), mode="legacy") as client:
        result = await client.call_tool("kimi_chat", arguments)
    assert not result.is_error, text_of(result)
    return chat_meta(result)


@pytest.mark.parametrize(
    "wires", [("anthropic", "openai", "anthropic"), ("openai", "anthropic", "openai")], ids="-".join
)
async def test_a_conversation_continues_on_the_other_wire_and_back_with_a_byte_stable_prefix(
    wires: tuple[str, ...], kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    env = {**kimi_env, "KIMI_MCP_ALLOWED_DIRS": str(tmp_path)}
    image = screenshot(tmp_path)
    # Turn 2 answers with thinking only: its empty reply is replayed as the same stand-in on either wire.
    fake_kimi.script(Reply(text=FIRST_REPLY), Reply(thinking="mulling it over", text=""), Reply(text="Third."))
    first = await one_turn(env, wires[0], {"prompt": "Turn 1: look.", "system": SYSTEM, "media": [str(image)]})
    cid = first["conversation_id"]
    metas = [first]
    for number, wire in enumerate(wires[1:], start=2):
        metas.append(await one_turn(env, wire, {"prompt": f"Turn {number}: and now?", "conversation_id": cid}))

    views = chat_views(fake_kimi)
    assert [view.surface for view in views] == list(wires)
    assert [view.status for view in views] == [200, 200, 200]
    assert [(meta["conversation_id"], meta["turn"]) for meta in metas] == [(cid, 1), (cid, 2), (cid, 3)]
    assert {view.cache_key for view in views} == {cid} and {view.system for view in views} == {SYSTEM}
    replies = [FIRST_REPLY, EMPTY_REPLY_STAND_IN]
    for previous, current, reply in zip(views[:-1], views[1:], replies, strict=True):
        # The earlier turns as the previous request carried them, then its answer: a byte-stable prefix.
        assert current.history == [*previous.messages, {"role": "assistant", "content": [{"text": reply}]}]
        assert current.prompt.startswith(previous.prompt)
    [upload] = fake_kimi.uploads  # uploaded once, its id replayed on both wires
    assert views[-1].media_urls == [f"ms://{upload.file_id}"]
    assert views[-1].texts("user") == ["Turn 1: look.", "Turn 2: and now?", "Turn 3: and now?"]

    shares = []
    for previous, current in itertools.pairwise(metas):
        previous_prompt = previous["usage"]["input_tokens"] + previous["usage"]["cache_read_tokens"]
        shares.append(current["usage"]["cache_read_tokens"] / previous_prompt)
    assert min(shares) >= 0.9, shares
