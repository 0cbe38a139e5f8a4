"""Fuzzing over stdio, the suite's profile (issue 13, item 2): bench/fuzz_tools.py with a few dozen derandomised
examples per tool and for the resources, against one `kimi-mcp serve` child pointed at the fake Kimi.

The full profile (≥ 500 per target) runs from bench: `python bench/fuzz_tools.py --examples 500`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.scripts import load_script

REPO_ROOT = Path(__file__).resolve().parents[2]
CI_EXAMPLES = 50  # per target: the whole test stays well under a minute on a loaded 2-core machine


def load_fuzz_tools() -> ModuleType:
    """bench/ is no package: its file is loaded as a module."""
    return load_script("fuzz_tools", REPO_ROOT / "bench" / "fuzz_tools.py")


def test_fuzzed_arguments_and_uris_get_readable_answers_and_the_server_keeps_serving(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    fuzz = load_fuzz_tools()
    report = fuzz.run(kimi_env, tmp_path, examples=CI_EXAMPLES)
    print(fuzz.summary(report))

    assert report.failures == {}, "\n\n".join(f"{name}: {failure}" for name, failure in report.failures.items())
    assert set(report.tallies) == {*fuzz.TOOLS, fuzz.RESOURCES, fuzz.BURST}
    for name in (*fuzz.TOOLS, fuzz.RESOURCES):
        assert report.tallies[name].examples >= CI_EXAMPLES, (name, report.tallies[name].examples)
    burst = report.tallies[fuzz.BURST]  # the kept inputs again, all at once, some abandoned by the client
    assert burst.examples + burst.cancelled >= 40 and burst.cancelled > 0 and burst.ok > 0
    assert report.alive_at_end, "the kimi-mcp serve process that took the examples is gone"
    assert report.tools_listed_after == sorted(fuzz.TOOLS)
    assert report.tracebacks_in_stderr == 0, (tmp_path / "serve.log").read_text(errors="replace")[-5000:]
    # The examples went deep, not only into the argument check: some calls reached Kimi, some were refused later.
    chat, upload, resources = (
        report.tallies["kimi_chat"],
        report.tallies["kimi_upload_media"],
        report.tallies["resources"],
    )
    assert chat.ok > 0 and chat.refused > 0 and len(fake_kimi.chat_requests()) > chat.ok // 2
    assert any(not kind.startswith("Invalid arguments") for kind in chat.kinds), chat.kinds
    assert upload.refused > 0 and any(kind.startswith("Cannot read") for kind in upload.kinds), upload.kinds
    assert resources.ok > 0 and resources.refused > 0
