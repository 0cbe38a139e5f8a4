"""Files, folders and globs as context (kimi_mcp/context_files/): exactly the right files read, every skip with its
reason, the policy's escapes refused, the budget (error or visible cut), an honest token estimate, a stable order,
and the "already sent" diff that keeps a conversation's prefix cacheable.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import anyio
import pytest

from kimi_mcp.access import FileAccessPolicy, read_regular
from kimi_mcp.context_files import (
    Budget,
    ContextFile,
    FileSet,
    PackedFiles,
    SkippedPath,
    budget_for,
    budget_left,
    collect,
    diff_sent,
    estimate_tokens,
    pack,
    prepare_files,
    read_files,
    wire_bytes,
)
from kimi_mcp.context_files import read as read_module
from kimi_mcp.context_files import walk as walk_module
from kimi_mcp.context_files.budget import REQUEST_CAP_BYTES
from kimi_mcp.errors import ContextFilesOverBudget, FileAccessDenied, NoContextFiles, TooManyContextFiles
from kimi_mcp.kimi import wires
from kimi_mcp.kimi.anthropic_wire import body_bytes
from kimi_mcp.kimi.models import ChatRequest, Message, TextBlock
from kimi_mcp.kimi.upstream import MAX_REQUEST_BYTES
from kimi_mcp.settings import Settings, WireProtocol
from kimi_mcp.testing.fake_cache import token_count

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX symlinks and FIFOs")
CAP = 10_000  # the per-file cap in these tests
ROOMY = Budget(tokens=262_144, bytes=2_097_152)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return write(tmp_path / "outside" / "secret.txt", "not for Kimi\n").resolve()


@pytest.fixture
def repo(tmp_path: Path, outside: Path) -> Path:
    """A repository with everything a folder walk must leave out, each for its own reason."""
    root = (tmp_path / "repo").resolve()
    write(root / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(root / ".gitignore", "build/\nartifacts/\n*.log\n/generated.py\n")
    write(root / "README.md", "# Demo\n")
    write(root / "src" / "app.py", "import util\n\nprint(util.helpers.answer())\n")
    write(root / "src" / "generated.py", "# only the top-level generated.py is ignored (anchored pattern)\n")
    write(root / "src" / ".gitignore", "local_*.py\n!local_keep.py\n")  # nested: relative to src/
    write(root / "src" / "local_debug.py", "DEBUG = True\n")
    write(root / "src" / "local_keep.py", "KEEP = True\n")
    write(root / "src" / "util" / "helpers.py", "def answer():\n    return 42\n")
    write(root / "src" / "util" / "local_x.py", "X = 1\n")  # src/.gitignore's pattern applies at any depth
    write(root / "src" / "util" / "data.json", '{"a": 1}\n')
    write(root / "src" / "__pycache__" / "app.cpython-311.pyc", b"\xa7\r\r\n\0\0\0\0")
    write(root / "generated.py", "x = 1\n")
    write(root / "app.log", "a log line\n")
    write(root / "build" / "bundle.js", "var x;\n")
    write(root / "artifacts" / "report.txt", "gitignored folder\n")
    write(root / "node_modules" / "lib" / "index.js", "module.exports = 1;\n")
    write(root / ".venv" / "pyvenv.cfg", "home = /usr/bin\n")
    write(root / ".venv" / "lib" / "site.py", "x = 1\n")
    write(root / "env2" / "pyvenv.cfg", "home = /usr/bin\n")  # a virtualenv by its content, whatever its name
    write(root / "env2" / "lib.py", "x = 1\n")
    write(root / "package-lock.json", '{"lockfileVersion": 3}\n')
    write(root / "logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)))
    write(root / "notes-latin1.txt", "caf\xe9 cr\xe8me\n".encode("latin-1"))
    write(root / "huge.txt", "x" * (CAP + 1))
    if os.name != "nt":
        (root / "src" / "escape.txt").symlink_to(outside)
    return root


def policy(*roots: Path) -> FileAccessPolicy:
    return FileAccessPolicy(roots)


def read(root: Path, *specs: str, cap: int = CAP) -> FileSet:
    return collect(list(specs), policy(root), max_file_bytes=cap)


def paths(fileset: FileSet) -> set[str]:
    return {f.path for f in fileset.files}


def skips(fileset: FileSet) -> set[tuple[str, str]]:
    return {(s.path, s.reason) for s in fileset.skipped}


# -- what a folder gives --------------------------------------------------------------------------------------


@posix_only
def test_a_folder_gives_exactly_its_source_files_and_every_skip_with_its_reason(repo: Path) -> None:
    fileset = read(repo, str(repo))
    assert paths(fileset) == {
        ".gitignore",
        "README.md",
        "src/.gitignore",
        "src/app.py",
        "src/generated.py",
        "src/local_keep.py",  # re-included by the nested .gitignore's `!local_keep.py`
        "src/util/data.json",
        "src/util/helpers.py",
    }
    assert skips(fileset) == {
        (".git/", "vcs"),
        (".venv/", "virtualenv"),
        ("env2/", "virtualenv"),
        ("node_modules/", "dependencies"),
        ("src/__pycache__/", "cache"),
        ("build/", "build_output"),
        ("artifacts/", "gitignored"),
        ("app.log", "gitignored"),
        ("generated.py", "gitignored"),
        ("src/local_debug.py", "gitignored"),
        ("src/util/local_x.py", "gitignored"),
        ("package-lock.json", "generated"),
        ("logo.png", "binary"),
        ("notes-latin1.txt", "binary"),
        ("huge.txt", "too_large"),
        ("src/escape.txt", "outside_roots"),
    }
    assert fileset.skipped_counts()["gitignored"] == 5
    app = next(f for f in fileset.files if f.path == "src/app.py")
    assert (app.lines, app.text) == (3, (repo / "src" / "app.py").read_text())
    assert app.size == len((repo / "src" / "app.py").read_bytes())
    assert app.real_path == repo / "src" / "app.py"


@posix_only
def test_a_symlink_out_of_the_roots_is_refused_when_named(repo: Path, outside: Path) -> None:
    allowed = policy(repo)
    for spec in (
        str(repo / "src" / "escape.txt"),  # the link itself
        f"{repo}/../outside/secret.txt",  # `..`
        str(outside),  # the file outside
        str(outside.parent),  # a folder outside
        f"{outside.parent}/**/*.txt",  # a glob outside
        "src/app.py",  # relative
    ):
        with pytest.raises(FileAccessDenied) as err:
            collect([str(repo / "README.md"), spec], allowed, max_file_bytes=CAP)
        assert str(repo) in str(err.value), spec  # the refusal names the allowed folder
        assert "not for Kimi" not in str(err.value)


def test_a_missing_path_is_refused_with_its_name(repo: Path) -> None:
    with pytest.raises(FileAccessDenied, match="no such"):
        read(repo, str(repo / "nope.py"))
    with pytest.raises(FileAccessDenied, match="no such folder"):
        read(repo, str(repo / "nope" / "*.py"))


def test_what_is_named_directly_is_read_whatever_the_folder_rules_say(repo: Path) -> None:
    fileset = read(
        repo, str(repo / "app.log"), str(repo / "node_modules" / "lib" / "index.js"), str(repo / "artifacts")
    )
    assert paths(fileset) == {"app.log", "node_modules/lib/index.js", "artifacts/report.txt"}
    # ... but a binary or an oversized file named directly is still not sent: skipped, with its reason.
    fileset = read(repo, str(repo / "README.md"), str(repo / "logo.png"), str(repo / "huge.txt"))
    assert skips(fileset) == {("logo.png", "binary"), ("huge.txt", "too_large")}


def test_a_subfolder_keeps_the_gitignore_rules_of_the_folders_above_it(repo: Path) -> None:
    write(repo / "src" / "util" / "trace.log", "ignored by the top-level *.log\n")
    fileset = read(repo, str(repo / "src" / "util"))
    assert paths(fileset) == {"src/util/data.json", "src/util/helpers.py"}
    assert skips(fileset) == {("src/util/trace.log", "gitignored"), ("src/util/local_x.py", "gitignored")}


def test_an_edited_gitignore_counts_on_the_next_read(repo: Path) -> None:
    """Parsed .gitignore files are cached by their text: editing one between two reads still changes the walk."""
    assert ("src/util/local_x.py", "gitignored") in skips(read(repo, str(repo / "src")))
    write(repo / "src" / ".gitignore", "*.json\n")
    again = read(repo, str(repo / "src"))
    assert "src/util/local_x.py" in paths(again)
    assert ("src/util/data.json", "gitignored") in skips(again)


def test_git_info_exclude_counts_and_a_build_named_python_package_is_source(repo: Path) -> None:
    write(repo / ".git" / "info" / "exclude", "scratch/\n")
    write(repo / "scratch" / "notes.md", "mine\n")
    write(repo / "src" / "dist" / "__init__.py", "# a package called dist\n")
    write(repo / "src" / "target" / "out.txt", "build output\n")
    fileset = read(repo, str(repo / "src"), str(repo / "scratch" / ".." / "README.md"))
    assert "src/dist/__init__.py" in paths(fileset)
    assert ("src/target/", "build_output") in skips(fileset)
    assert ("scratch/", "gitignored") in skips(read(repo, str(repo)))


def test_globs_match_by_name_and_depth(repo: Path) -> None:
    assert paths(read(repo, f"{repo}/src/**/*.py")) == {
        "src/app.py",
        "src/generated.py",
        "src/local_keep.py",
        "src/util/helpers.py",
    }
    assert paths(read(repo, f"{repo}/src/util/*.py")) == {"src/util/helpers.py"}
    assert paths(read(repo, f"{repo}/*.md")) == {"README.md"}
    # A folder the glob matches stands for everything under it, as a folder named.
    assert paths(read(repo, f"{repo}/sr?/util")) == {"src/util/data.json", "src/util/helpers.py"}
    # Skips are reported only where the glob could have matched.
    assert skips(read(repo, f"{repo}/src/util/*.py")) == {("src/util/local_x.py", "gitignored")}


def test_a_glob_that_matches_nothing_is_reported_and_nothing_at_all_is_an_error(repo: Path) -> None:
    fileset = read(repo, str(repo / "README.md"), f"{repo}/src/**/*.rs")
    # `**` could have reached into src/__pycache__/: reported; nothing else was met.
    assert skips(fileset) == {(f"{repo}/src/**/*.rs", "no_match"), ("src/__pycache__/", "cache")}
    with pytest.raises(NoContextFiles, match=r"1 no_match"):
        read(repo, f"{repo}/src/**/*.rs")
    with pytest.raises(NoContextFiles, match=r"1 binary, 1 too_large"):
        read(repo, str(repo / "logo.png"), str(repo / "huge.txt"))


@posix_only
def test_symlinks_inside_the_roots_are_followed_once(repo: Path) -> None:
    (repo / "src" / "util" / "loop").symlink_to(repo / "src")  # a cycle
    (repo / "docs").mkdir()
    (repo / "docs" / "app_link.py").symlink_to(repo / "src" / "app.py")
    (repo / "docs" / "dangling.md").symlink_to(repo / "nowhere.md")
    fileset = read(repo, str(repo / "src"), str(repo / "docs"))
    assert sorted(f.real_path.name for f in fileset.files).count("app.py") == 1  # one file, read once
    assert ("docs/dangling.md", "broken_symlink") in skips(fileset)


@posix_only
def test_a_fifo_in_a_folder_is_skipped_without_blocking(repo: Path) -> None:
    os.mkfifo(repo / "src" / "pipe")
    fileset = read(repo, str(repo / "src"))
    assert ("src/pipe", "special_file") in skips(fileset)


def test_two_roots_show_each_path_under_its_root_name(tmp_path: Path) -> None:
    front = write(tmp_path / "front" / "ui.ts", "export {}\n").parent.resolve()
    back = write(tmp_path / "back" / "api.py", "pass\n").parent.resolve()
    fileset = collect([str(front), str(back)], policy(front, back), max_file_bytes=CAP)
    assert paths(fileset) == {"front/ui.ts", "back/api.py"}


def test_a_tree_too_large_for_any_budget_stops_the_walk(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk_module, "MAX_FILES", 3)
    with pytest.raises(TooManyContextFiles, match="more than 3 files"):
        read(repo, str(repo))


def test_text_is_decoded_as_sent(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    write(root / "bom.py", b"\xef\xbb\xbfx = 1\r\ny = 2")  # a BOM, CRLF, no final newline
    write(root / "late.txt", b"a" * 9000 + b"\xe9 stray Latin-1 byte past the head\n")
    fileset = read(root, str(root))
    bom, late = fileset.files
    assert (bom.text, bom.lines) == ("x = 1\ny = 2", 2)
    assert late.text.endswith("\ufffd stray Latin-1 byte past the head\n")


def test_the_setting_caps_the_file_size() -> None:
    assert Settings.from_env({}).max_file_bytes == 524_288
    assert Settings.from_env({"KIMI_MCP_MAX_FILE_BYTES": "1000"}).max_file_bytes == 1000


# -- order and blocks -----------------------------------------------------------------------------------------


def test_order_is_stable_sorted_and_slash_separated(tmp_path: Path) -> None:
    blocks = []
    for run, names in enumerate((["b.py", "a/z.py", "a.py", "a-b/c.py"], ["a-b/c.py", "a.py", "a/z.py", "b.py"])):
        root = (tmp_path / f"run{run}").resolve()
        for name in names:  # created in another order each run: the listing order differs
            write(root / name, f"# {name}\n")
        fileset = collect([str(root / "b.py"), str(root)], policy(root), max_file_bytes=CAP)
        packed = pack(fileset.files, fileset.skipped, ROOMY)
        blocks.append([b.text for b in packed.blocks()])
    assert blocks[0] == blocks[1]
    assert [f.split('"')[1] for f in blocks[0]] == ["a/z.py", "a-b/c.py", "a.py", "b.py"]


def test_a_block_names_the_path_and_line_count() -> None:
    packed = pack([context_file("src/x.py", "a\nb\n")], [], ROOMY)
    (block,) = packed.blocks()
    assert block.text == '<file path="src/x.py" lines="2">\na\nb\n</file>'
    assert packed.tokens == estimate_tokens(block.text) == 13  # the header counts too
    assert packed.summary() == "1 file, 13 tokens, 0 skipped"


@pytest.mark.parametrize(
    "text",
    [
        'print("hi")\n',
        'print("中文\\t", "\u2028")\r\n\tx = 1\n',  # quotes, a backslash, CJK, a line separator, CR, tab
        "bell \x07, form feed \x0c, escape \x1b and DEL \x7f\n",  # written as \\uXXXX or \\f by JSON
        "",
    ],
)
def test_wire_bytes_is_what_the_block_adds_to_the_request_body(text: str) -> None:
    block = f'<file path="a.py" lines="1">\n{text}</file>'
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]}
    with_block = json.loads(json.dumps(body))
    with_block["messages"][0]["content"].insert(0, {"type": "text", "text": block})
    assert body_bytes(with_block) - body_bytes(body) == wire_bytes(block)


@pytest.mark.parametrize(
    "content",
    [
        b"plain = 1\n",
        b'quotes = "a\\b"\tand a tab, no newline at the end',
        "\ufeffbom = 'é'\r\nwindows = 2\r\n".encode(),  # a BOM and CRLF: the text is not the bytes read
        b"x = 1\n" * 1500 + b"caf\xe9\n",  # a stray Latin-1 byte past the head: U+FFFD, 3 bytes, not 1
        "中文 \x1b[0m \x7f \u2028 😀\n".encode(),  # CJK, an escape, DEL, a line separator, an emoji
    ],
)
def test_what_reading_measures_is_what_the_block_sends(tmp_path: Path, content: bytes) -> None:
    """The JSON size and line count measured from the bytes read are those of the decoded text's block."""
    write(tmp_path / "f.txt", content)
    (file,) = read(tmp_path, str(tmp_path / "f.txt")).files
    assert file.lines == read_module.count_lines(file.text)
    assert file.tokens == estimate_tokens(file.text)
    (packed,) = pack([file], [], ROOMY).files
    assert packed.text is not None and packed.wire_bytes == wire_bytes(packed.text)
    assert packed.tokens == estimate_tokens(packed.text)
    by_hand = file._replace(json_bytes=None)  # a ContextFile built without the measure: pack measures it
    assert pack([by_hand], [], ROOMY).files[0].wire_bytes == packed.wire_bytes


# -- the budget -----------------------------------------------------------------------------------------------


def test_the_budget_is_the_window_less_the_request_and_a_reply_reserve() -> None:
    # docs/files.md's example: a 6,000-byte request on a 262,144-token window.
    assert budget_left(6_000, window_tokens=262_144) == Budget(227_376, 2_090_128, window=262_144)
    # The reserve: the call's max_output_tokens, never more than a quarter of the window.
    assert budget_left(6_000, window_tokens=262_144, max_output_tokens=4_000).tokens == 262_144 - 2_000 - 4_000
    assert budget_left(6_000, window_tokens=32_768).tokens == 32_768 - 2_000 - 8_192
    assert budget_left(6_000, window_tokens=32_768, max_output_tokens=100_000).tokens == 32_768 - 2_000 - 8_192
    # Never below nothing: a request already filling the window or the body cap leaves 0.
    assert budget_left(3_000_000, window_tokens=262_144) == Budget(0, 0, window=262_144)
    assert REQUEST_CAP_BYTES == MAX_REQUEST_BYTES == 2_097_152  # the cap the wire enforces


@pytest.mark.parametrize("protocol", ["anthropic", "openai"])
def test_budget_for_counts_the_request_as_its_wire_writes_it(protocol: WireProtocol) -> None:
    def request(history: int, max_output_tokens: int | None = None) -> ChatRequest:
        earlier = [Message(role="user", content=[TextBlock(text="é" * history)])] if history else []
        return ChatRequest(
            model="kimi-for-coding",
            system="Be brief.",
            messages=[*earlier, Message(role="user", content=[TextBlock(text="Review this.")])],
            max_output_tokens=max_output_tokens,
        )

    small = budget_for(request(0), protocol=protocol, window_tokens=262_144)
    used = wires.body_bytes(wires.build_body(protocol, request(0)))
    assert small == budget_left(used, window_tokens=262_144)
    # A history of 30,000 two-byte characters costs 60,000 bytes more (with its message around it) and a third of
    # that in tokens.
    longer = budget_for(request(30_000), protocol=protocol, window_tokens=262_144)
    assert 60_000 < small.bytes - longer.bytes < 60_100
    assert 20_000 <= small.tokens - longer.tokens < 20_050
    # The call's max_output_tokens is the reserve (its own digits in the body change the count by a byte or two).
    reserved = budget_for(request(0, 1_000), protocol=protocol, window_tokens=262_144)
    assert abs(reserved.tokens - (small.tokens + 32_768 - 1_000)) <= 1
    assert budget_for(request(0), protocol=protocol, window_tokens=100_000).window == 100_000


def context_file(path: str, text: str) -> ContextFile:
    data = text.encode()
    return ContextFile(
        path=path,
        real=f"/{path}",
        text=text,
        size=len(data),
        lines=read_module.count_lines(text),
        tokens=estimate_tokens(text),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def code(lines: int, tag: str) -> str:
    return "".join(f"def {tag}_{i}(value):  # line {i}\n    return value * {i}\n" for i in range(lines // 2))


@pytest.fixture
def sizes() -> list[ContextFile]:
    return [
        context_file("small.py", code(20, "s")),
        context_file("medium.py", code(400, "m")),
        context_file("big.py", code(4000, "b")),
        context_file("bigger.py", code(8000, "g")),
    ]


def test_over_budget_is_an_error_naming_the_total_and_the_largest_files(sizes: list[ContextFile]) -> None:
    whole = pack(sizes, [], ROOMY)
    budget = Budget(tokens=whole.tokens // 2, bytes=2_097_152)
    with pytest.raises(ContextFilesOverBudget) as err:
        pack(sizes, [], budget)
    message = str(err.value)
    assert f"about {whole.tokens:,} tokens" in message
    assert f"only {budget.tokens:,} tokens are left" in message
    assert message.index("bigger.py") < message.index("big.py (") < message.index("medium.py")
    assert 'on_overflow="truncate"' in message
    assert [path for path, _ in err.value.largest][:2] == ["bigger.py", "big.py"]


@pytest.mark.parametrize("window", [32_768, 1_000_000])
def test_the_over_budget_error_names_the_window_in_use(sizes: list[ContextFile], window: int) -> None:
    budget = budget_left(3 * (window - 10_000), window_tokens=window)  # a long conversation: little room left
    assert budget.window == window and budget.tokens < 10_000
    with pytest.raises(ContextFilesOverBudget) as err:
        pack(sizes, [], budget)
    message = str(err.value)
    assert f"Kimi's context window ({window:,} tokens, less the system text" in message
    assert "262,144" not in message
    assert err.value.window_tokens == window


def test_a_budget_without_a_known_window_names_no_number(sizes: list[ContextFile]) -> None:
    with pytest.raises(ContextFilesOverBudget) as err:
        pack(sizes, [], Budget(tokens=100, bytes=2_097_152))
    assert "Kimi's context window (less the system text" in str(err.value)


def test_the_byte_cap_counts_too(sizes: list[ContextFile]) -> None:
    whole = pack(sizes, [], ROOMY)
    with pytest.raises(ContextFilesOverBudget, match="2 MiB request cap") as err:
        pack(sizes, [], Budget(tokens=262_144, bytes=whole.wire_bytes - 1))
    assert "context window" not in str(err.value)


@pytest.mark.parametrize("share", [0.5, 0.1])
def test_truncate_cuts_the_largest_files_visibly_and_fits(sizes: list[ContextFile], share: float) -> None:
    whole = pack(sizes, [], ROOMY)
    budget = Budget(tokens=int(whole.tokens * share), bytes=2_097_152)
    packed = pack(sizes, [], budget, on_overflow="truncate")
    assert packed.tokens <= budget.tokens
    assert packed.tokens > budget.tokens * 0.9  # cut to fit, not cut to nothing
    by_path = {f.file.path: f for f in packed.files}
    assert by_path["bigger.py"].truncated and by_path["big.py"].truncated
    assert not by_path["small.py"].truncated  # small files go whole
    for entry in packed.files:
        assert entry.text is not None
        if not entry.truncated:
            assert entry.text == whole.files[[f.file.path for f in whole.files].index(entry.file.path)].text
            continue
        shown = entry.shown_lines
        assert shown is not None and 0 < shown < entry.file.lines
        assert f'shown="lines 1-{shown}"' in entry.text
        assert (
            f"kimi-mcp cut this file here to fit the context budget: {shown:,} of {entry.file.lines:,} lines shown"
            in entry.text
        )
        kept = "".join(entry.file.text.splitlines(keepends=True)[:shown])
        assert entry.text.split("\n", 1)[1].startswith(kept)  # a prefix of the file, cut at a line end
    entries = packed.files_included()
    assert {e["path"] for e in entries if e.get("truncated")} == {f.file.path for f in packed.files if f.truncated}
    assert "cut to fit" in packed.summary()


def test_truncate_fits_the_byte_cap_with_dense_text() -> None:
    cjk = context_file(
        "说明.md", "".join(f"第{i}行：这是一个很长的中文说明文件，用来测试字节上限。\n" for i in range(3000))
    )
    budget = Budget(tokens=262_144, bytes=40_000)
    packed = pack([cjk, context_file("a.py", "x = 1\n")], [], budget, on_overflow="truncate")
    assert packed.wire_bytes <= budget.bytes
    assert packed.files[1].truncated and "lines shown" in (packed.files[1].text or "")


def test_a_single_long_line_is_cut_by_characters() -> None:
    minified = context_file("app.min.css", "a{b:c}" * 5000)
    packed = pack([minified], [], Budget(tokens=1000, bytes=2_097_152), on_overflow="truncate")
    (entry,) = packed.files
    assert entry.truncated and packed.tokens <= 1000
    assert "characters of line 1 shown" in (entry.text or "")


def test_truncate_that_cannot_fit_is_still_an_error(sizes: list[ContextFile]) -> None:
    with pytest.raises(ContextFilesOverBudget, match="even cut to nothing"):
        pack(sizes, [], Budget(tokens=20, bytes=2_097_152), on_overflow="truncate")


# -- the token estimate ---------------------------------------------------------------------------------------


def test_the_estimate_per_kind_of_text() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a" * 350) == 100  # ASCII: bytes / 3.5
    assert estimate_tokens("中" * 100) == 75  # Han: 0.75 each (Moonshot: 1.5-2 characters a token)
    assert estimate_tokens("한" * 100) == 100  # Hangul, kana, CJK punctuation: 1 each
    assert estimate_tokens("カ" * 100) == 100
    assert estimate_tokens("é" * 350) == 200  # other non-ASCII: by UTF-8 bytes, 2 each here
    assert estimate_tokens("中" * 4 + "a" * 7) == 5


def test_code_is_estimated_above_the_bytes_over_4_floor() -> None:
    text = code(400, "f")
    assert estimate_tokens(text) >= len(text.encode()) / 4


def fake_tokens(block: str) -> int:
    """What the fake Kimi counts for a block: 4 bytes a token over its JSON (kimi_mcp/testing/fake_cache.py)."""
    return token_count(json.dumps({"type": "text", "text": block}, ensure_ascii=False).encode())


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "".join(f"第{i}章：函数返回一个新的列表，其中包含所有满足条件的元素。\n" for i in range(500)), id="chinese"
        ),
        pytest.param(
            "".join(f"# 関数{i}：条件を満たす要素のリストを返します。\nx{i} = [{i}]\n" for i in range(500)),
            id="japanese",
        ),
        pytest.param(code(2000, "f"), id="code"),
    ],
)
def test_the_estimate_is_within_25_percent_of_the_fakes_count(text: str) -> None:
    packed = pack([context_file("f.txt", text)], [], ROOMY)
    (entry,) = packed.files
    assert entry.text is not None
    ratio = entry.tokens / fake_tokens(entry.text)
    assert 0.75 <= ratio <= 1.25, ratio


# -- already sent ---------------------------------------------------------------------------------------------


def test_unchanged_files_are_not_resent_and_a_changed_one_is_with_a_note(repo: Path) -> None:
    first = pack(*astuple(read(repo, f"{repo}/src/**/*.py")), ROOMY)
    sent = first.sent_hashes()
    assert set(sent) == {f.file.path for f in first.files} and len(first.blocks()) == 4

    again = pack(*astuple(read(repo, f"{repo}/src/**/*.py")), ROOMY, previously_sent=sent)
    assert again.blocks() == [] and again.tokens == 0 and again.sent_hashes() == {}
    assert {e["status"] for e in again.files_included()} == {"unchanged"}
    assert again.summary() == "4 files (4 unchanged since sent earlier, not resent), 0 tokens, 3 skipped"

    write(repo / "src" / "app.py", "print('edited')\n")
    write(repo / "src" / "util" / "new.py", "NEW = 1\n")
    third = pack(*astuple(read(repo, f"{repo}/src/**/*.py")), ROOMY, previously_sent=sent)
    statuses = diff_sent([f.file for f in third.files], sent)
    assert statuses == {
        "src/app.py": "changed",
        "src/generated.py": "unchanged",
        "src/local_keep.py": "unchanged",
        "src/util/helpers.py": "unchanged",
        "src/util/new.py": "new",
    }
    app, new = third.blocks()
    assert app.text.startswith('<file path="src/app.py" lines="1" note="changed since it was sent earlier')
    assert "print('edited')" in app.text
    assert new.text == '<file path="src/util/new.py" lines="1">\nNEW = 1\n</file>'
    assert set(third.sent_hashes()) == {"src/app.py", "src/util/new.py"}


def astuple(fileset: FileSet) -> tuple[tuple[ContextFile, ...], tuple[object, ...]]:
    return fileset.files, fileset.skipped


# -- off the event loop ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_reading_happens_in_a_worker_thread_with_progress(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    reader_threads: set[int] = set()
    real_read_one = read_module.read_one

    def spying_read_one(*args: object, **kwargs: object) -> object:
        reader_threads.add(threading.get_ident())
        return real_read_one(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(read_module, "read_one", spying_read_one)
    for i in range(200):
        write(repo / "many" / f"m{i:03}.py", f"N = {i}\n")
    progress: list[tuple[int, int, int]] = []

    async def on_progress(done: int, total: int) -> None:
        progress.append((done, total, threading.get_ident()))

    fileset = await read_files([str(repo)], policy(repo), max_file_bytes=CAP, on_progress=on_progress)
    assert len(fileset.files) == 208
    assert reader_threads and loop_thread not in reader_threads
    total = len(fileset.files) + 3  # the two binaries and the huge file are opened (and skipped) too
    assert progress[-1] == (total, total, loop_thread)  # awaited on the event loop
    assert all(done <= t == total for done, t, _ in progress)


@pytest.mark.anyio
async def test_prepare_files_reads_and_packs(repo: Path) -> None:
    packed = await prepare_files(
        [f"{repo}/src/util/*.py", str(repo / "README.md")], policy(repo), budget=ROOMY, max_file_bytes=CAP
    )
    assert isinstance(packed, PackedFiles)
    assert [f["path"] for f in packed.files_included()] == ["README.md", "src/util/helpers.py"]
    assert packed.files_skipped() == [{"path": "src/util/local_x.py", "reason": "gitignored"}]
    with anyio.fail_after(30):
        with pytest.raises(ContextFilesOverBudget):
            await prepare_files([str(repo)], policy(repo), budget=Budget(10, 10), max_file_bytes=CAP)


@pytest.mark.anyio
async def test_cancelling_the_call_stops_the_reading(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(300):
        write(repo / "many" / f"m{i:03}.py", f"N = {i}\n")
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []
    real_read_one = read_module.read_one

    def held_read_one(candidate: walk_module.Candidate, cap: int) -> object:
        calls.append(candidate.path)
        if len(calls) == 1:  # hold the first read until the call is cancelled
            started.set()
            release.wait(30)
        return real_read_one(candidate, cap)

    monkeypatch.setattr(read_module, "read_one", held_read_one)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_once_reading() -> None:
                await anyio.to_thread.run_sync(started.wait, 30)
                scope.cancel()
                release.set()

            tg.start_soon(cancel_once_reading)
            await read_files([str(repo)], policy(repo), max_file_bytes=CAP)
    assert scope.cancelled_caught
    assert len(calls) <= 64  # stopped at the next check, far from the 300-odd files


# -- reading under the access policy (access.read_regular) ------------------------------------------------------


@posix_only
def test_a_file_swapped_for_a_symlink_after_the_walk_is_not_read(repo: Path, outside: Path) -> None:
    (candidate,) = walk_module.expand([str(repo / "README.md")], policy(repo)).candidates
    (repo / "README.md").unlink()
    (repo / "README.md").symlink_to(outside)
    skipped = read_module.read_one(candidate, CAP)
    assert skipped == SkippedPath("README.md", "unreadable", "a symbolic link took the checked file's place")


@posix_only
def test_read_regular_refuses_a_fifo_without_blocking_and_reads_nothing_over_the_cap(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # no writer: a blocking open or read would hang here
    with pytest.raises(FileAccessDenied, match="FIFO"):
        read_regular(tmp_path / "pipe", CAP)
    big = write(tmp_path / "big.txt", "x" * 100)
    assert read_regular(big, 99) == (100, None)
    assert read_regular(big, 100) == (100, b"x" * 100)
    assert read_regular(write(tmp_path / "empty.txt", ""), 10) == (0, b"")
