"""The soak's smoke profile: bench/soak.py with 60 calls over stdio and over HTTP, its goals asserted.

60 `kimi_chat` calls over 50 conversations (ten continued), 4 in flight, through one `kimi-mcp serve` child; 5% of
the calls (3) meet a 429 with Retry-After, a 5xx twice in a row and a dropped connection three times in a row (the
only call that must fail). The full profile (1,000 calls) runs from bench/ and records its figures there.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from kimi_mcp.testing.scripts import load_script

pytestmark = pytest.mark.anyio

SOAK_PY = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def load_soak() -> ModuleType:
    """bench/ is no package: its file is loaded as a module."""
    return load_script("bench_soak", SOAK_PY)


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_soak_smoke_stores_each_answer_once_and_leaks_nothing(transport: str, tmp_path: Path) -> None:
    soak = load_soak()
    with (tmp_path / "server.log").open("w+", encoding="utf-8") as errlog:
        report = await soak.soak(
            transport, calls=60, conversations=50, workers=4, batch=20, seed=13, home=tmp_path / "home", errlog=errlog
        )
        errlog.seek(0)
        print(f"--- kimi-mcp serve ({transport}) ---\n{errlog.read()}")

    # The plan: one call of each kind, faulted 1, 2 and 3 times in a row; only the 3-in-a-row one fails.
    assert report.faulted_calls == {"429": 1, "5xx": 1, "drop": 1}
    assert report.injected == {"429": 1, "502": 2, "drop": 3}
    assert (report.successes, report.failures) == (59, 1), report.unexpected_failures
    assert report.failures_by_fault == {"drop": 1} and report.unexpected_failures == []
    # Exactly one request per successful call plus one per injected fault: no retry too many, none duplicated.
    assert report.upstream_attempts == report.successes + sum(report.injected.values())
    assert report.stuck == 0 and report.call_seconds["max"] < soak.TIMEOUT_SECONDS + soak.GRACE_SECONDS
    # What the SQLite file holds: each answered call once, where its result said; the failed one nowhere.
    assert report.store.integrity == "ok"
    assert report.store.problems == []
    assert report.store.turns == 59 and report.store.conversations == 49  # the failed call was a conversation's first
    # The server process: descriptors back to where they were after the first batch, memory (generous) bounded.
    assert [s.calls for s in report.samples] == [20, 40, 60]
    assert report.fds_max_after <= report.fds_first + report.workers + 2, report.samples
    assert report.rss_growth_mib < soak.RSS_GOAL_MIB, report.samples
    assert all(report.goals().values()), report.goals()
