"""Crash safety's smoke profile: bench/crash_safety.py with 7 SIGKILLs of `kimi-mcp serve` per kind (21 in all).

Each kind on its own home: kills mid-stream (slow replies), right after a reply was sent (while the server reads
its end and stores the turn), and mid-refresh (a stored OAuth login whose access token was revoked or whose expiry
passed; the OAuth host answers slowly). After every kill: the SQLite file passes `integrity_check`, holds every
turn whose result the client received, each once and where the result said, and its turn counts match its
turns; the credentials file parses (JSON and `StoredLogin`) and its lock is free; the next server opens the same
home and lists its conversations. A last server continues conversations the rounds left behind.
The full profile (200 kills) runs from bench/ and records its figures there.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from kimi_mcp.testing.scripts import load_script

pytestmark = pytest.mark.anyio

CRASH_PY = Path(__file__).resolve().parents[2] / "bench" / "crash_safety.py"
KILLS_PER_KIND = 7
# The OpenAI wire: a server on it never imports the anthropic SDK, which costs each restart ~2.4 s of CPU on the
# anthropic wire (2-core machine). What a kill can break (the SQLite file, the credentials file) is written by the
# same code on both wires; bench/crash_safety.py alternates the two.
WIRES = ("openai",)


def load_crash_safety() -> ModuleType:
    """bench/ is no package: its file is loaded as a module."""
    return load_script("bench_crash_safety", CRASH_PY)


@pytest.mark.parametrize("kind", ["stream", "store", "refresh"])
async def test_sigkill_leaves_a_sound_store_with_every_answered_turn_and_parsable_credentials(
    kind: str, tmp_path: Path
) -> None:
    crash = load_crash_safety()
    with (tmp_path / "servers.log").open("w+", encoding="utf-8") as errlog:
        report = await crash.crash_safety(KILLS_PER_KIND, 13, tmp_path, errlog, kinds=(kind,), wires=WIRES)
        if report.problems:
            errlog.seek(0)
            print(errlog.read()[-30_000:])
    print({k: v for k, v in report.__dict__.items() if k != "rounds"})

    assert report.problems == []
    assert report.rounds_by_kind == {kind: KILLS_PER_KIND}
    assert all(r.trigger == "seen" for r in report.rounds), [r.trigger for r in report.rounds]
    assert report.integrity_ok == report.restarts_ok == report.credentials_parsed == KILLS_PER_KIND
    assert report.answered_and_stored == report.answered_before_kill
    assert report.unanswered_stored + report.unanswered_not_stored + report.answered_before_kill == report.calls
    assert report.final_continuations_ok == report.final_continuations > 0
    if kind == "refresh":
        # Both ways a login comes to need a refresh occurred; the kill never left a file that does not parse.
        assert {r.how for r in report.rounds} == {"revoked", "expired"}
        assert set(report.credentials_outcomes["refresh"]) <= {"unchanged", "refreshed", "refused"}
