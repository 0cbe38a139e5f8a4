"""Files, folders and globs as context for kimi_chat through a real `mcp.Client` (issue: files as context;
docs/files.md): what reaches Kimi, what the caller reads, resending only what changed, the budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from kimi_mcp.server.app import build_server
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.mcp_results import chat_meta, text_of

pytestmark = pytest.mark.anyio


def server_for(env: dict[str, str], **extra: str) -> Any:
    return build_server(Settings.from_env({**env, **extra}))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small project: sources, a .gitignored folder and file, node_modules and a binary."""
    root = tmp_path / "repo"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "core.py").write_text("def core():\n    return 42\n" * 30)
    (root / "src" / "pkg" / "util.py").write_text("def util():\n    return 'u'\n" * 20)
    (root / "README.md").write_text("# Demo\n\nA demo project.\n")
    (root / ".gitignore").write_text("scratch/\n*.log\n")
    (root / "scratch").mkdir()
    (root / "scratch" / "notes.py").write_text("ignored = True\n")
    (root / "debug.log").write_text("noise\n")
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "index.js").write_text("module.exports = 1\n")
    (root / "logo.bin").write_bytes(b"\x00\x01\x02" * 100)
    return root


@pytest.fixture
def files_env(kimi_env: dict[str, str], repo: Path) -> dict[str, str]:
    return {**kimi_env, "KIMI_MCP_ALLOWED_DIRS": str(repo)}


def user_texts(fake: FakeKimi, index: int = -1) -> list[str]:
    body = fake.chat_requests()[index].json()
    content = body["messages"][-1]["content"]
    return [block["text"] for block in content if block["type"] == "text"]


def file_paths(texts: list[str]) -> list[str]:
    return [text.split('"', 2)[1] for text in texts if text.startswith("<file path=")]


async def test_a_folder_is_read_with_skips_reported_and_one_summary_line(
    files_env: dict[str, str], fake_kimi: FakeKimi, repo: Path
) -> None:
    async with Client(server_for(files_env)) as client:
        result = await client.call_tool("kimi_chat", {"prompt": "Review this package.", "files": [str(repo)]})
    assert not result.is_error, text_of(result)
    texts = user_texts(fake_kimi)
    assert file_paths(texts) == [".gitignore", "README.md", "src/pkg/core.py", "src/pkg/util.py"]
    assert texts[-1] == "Review this package."
    assert '<file path="src/pkg/core.py" lines="60">' in texts[2]
    meta = chat_meta(result)
    assert [f["path"] for f in meta["files_included"]] == file_paths(texts)
    skipped = {entry["path"]: entry["reason"] for entry in meta["files_skipped"]}
    assert skipped == {
        "scratch/": "gitignored",
        "debug.log": "gitignored",
        "logo.bin": "binary",
        "node_modules/": "dependencies",
    }
    summary_lines = [line for line in text_of(result).splitlines() if line.startswith("[files: ")]
    assert summary_lines == [f"[files: {meta['files_summary']}]"]
    assert meta["files_summary"].startswith("4 files") and "4 skipped" in meta["files_summary"]


async def test_the_next_turn_resends_only_the_file_that_changed_and_the_cache_hits(
    files_env: dict[str, str], fake_kimi: FakeKimi, repo: Path
) -> None:
    source = [str(repo / "src")]
    async with Client(server_for(files_env)) as client:
        first = await client.call_tool("kimi_chat", {"prompt": "Read these.", "files": source})
        cid = chat_meta(first)["conversation_id"]
        second = await client.call_tool(
            "kimi_chat", {"prompt": "Anything else?", "files": source, "conversation_id": cid}
        )
        (repo / "src" / "pkg" / "util.py").write_text("def util():\n    return 'changed'\n")
        third = await client.call_tool("kimi_chat", {"prompt": "And now?", "files": source, "conversation_id": cid})
    # Paths are relative to the allowed folder, whatever entry named them.
    assert file_paths(user_texts(fake_kimi, 0)) == ["src/pkg/core.py", "src/pkg/util.py"]
    assert file_paths(user_texts(fake_kimi, 1)) == []  # unchanged: the history already holds them
    assert [f["status"] for f in chat_meta(second)["files_included"]] == ["unchanged", "unchanged"]
    resent = user_texts(fake_kimi, 2)
    assert file_paths(resent) == ["src/pkg/util.py"] and "replaces" in resent[0]
    statuses = {f["path"]: f["status"] for f in chat_meta(third)["files_included"]}
    assert statuses == {"src/pkg/core.py": "unchanged", "src/pkg/util.py": "changed"}
    for earlier, later in ((first, second), (second, third)):
        previous = chat_meta(earlier)["usage"]
        previous_prompt = previous["input_tokens"] + previous["cache_read_tokens"]
        assert chat_meta(later)["usage"]["cache_read_tokens"] >= 0.9 * previous_prompt - 256


async def test_files_over_the_budget_fail_naming_the_largest_or_are_cut_with_a_marker(
    files_env: dict[str, str], fake_kimi: FakeKimi, repo: Path
) -> None:
    big = repo / "big"
    big.mkdir()
    for index in range(4):  # 4 × 400 KB of code: ~460k tokens, well over the window
        (big / f"part{index}.py").write_text(f"value_{index} = 'x' * 80  # padding line\n" * 9_500)
    env = {**files_env, "KIMI_MCP_MAX_FILE_BYTES": str(1 << 20)}
    async with Client(server_for(env)) as client:
        refused = await client.call_tool("kimi_chat", {"prompt": "read", "files": [str(big)]})
        cut = await client.call_tool("kimi_chat", {"prompt": "read", "files": [str(big)], "on_overflow": "truncate"})
    assert refused.is_error and "part0.py" in text_of(refused)
    assert len(fake_kimi.chat_requests()) == 1  # the refused call sent nothing
    assert not cut.is_error, text_of(cut)
    meta = chat_meta(cut)
    assert any(f.get("truncated") for f in meta["files_included"])
    assert "cut to fit" in meta["files_summary"]
    assert len(fake_kimi.chat_requests()[0].body) <= 2_097_152


async def test_the_over_budget_error_names_the_context_window_in_use(
    files_env: dict[str, str], fake_kimi: FakeKimi, repo: Path
) -> None:
    (repo / "big.py").write_text("value = 'x' * 80  # a line of padding, forty-odd tokens\n" * 4_000)  # ~63k tokens
    env = {**files_env, "KIMI_MCP_CONTEXT_TOKENS": "40000"}
    async with Client(server_for(env)) as client:
        refused = await client.call_tool("kimi_chat", {"prompt": "read", "files": [str(repo / "big.py")]})
    assert refused.is_error
    message = text_of(refused)
    assert "Kimi's context window (40,000 tokens, less the system text" in message, message
    assert "262,144" not in message
    assert not fake_kimi.chat_requests()  # refused before anything was sent


async def test_a_cjk_file_is_estimated_within_a_quarter_of_the_fakes_count(
    files_env: dict[str, str], fake_kimi: FakeKimi, repo: Path
) -> None:
    doc = repo / "说明.md"
    doc.write_text("这个函数读取配置文件并返回一个字典，其中包含所有的设置项。\n" * 400)
    async with Client(server_for(files_env)) as client:
        with_file = await client.call_tool("kimi_chat", {"prompt": "总结", "files": [str(doc)]})
        fake_kimi.reset_cache()
        without = await client.call_tool("kimi_chat", {"prompt": "总结"})
    estimated = chat_meta(with_file)["files_included"][0]["tokens"]

    def prompt_tokens(result: Any) -> int:
        usage = chat_meta(result)["usage"]
        return usage["input_tokens"] + usage["cache_read_tokens"]

    counted = prompt_tokens(with_file) - prompt_tokens(without)
    assert abs(estimated - counted) <= 0.25 * counted, (estimated, counted)


async def test_a_symlink_out_of_the_allowed_folder_is_refused_naming_it(
    files_env: dict[str, str], fake_kimi: FakeKimi, repo: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read\n")
    (repo / "escape.txt").symlink_to(secret)
    async with Client(server_for(files_env)) as client:
        named = await client.call_tool("kimi_chat", {"prompt": "read", "files": [str(repo / "escape.txt")]})
        walked = await client.call_tool("kimi_chat", {"prompt": "read", "files": [str(repo)]})
    assert named.is_error and str(repo) in text_of(named)
    assert not walked.is_error, text_of(walked)
    assert {"path": "escape.txt", "reason": "outside_roots"} in [
        {k: v for k, v in entry.items() if k in ("path", "reason")} for entry in chat_meta(walked)["files_skipped"]
    ]
    assert all("do not read" not in r.body.decode() for r in fake_kimi.chat_requests())
