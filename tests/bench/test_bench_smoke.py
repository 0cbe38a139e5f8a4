"""Every benchmark's smoke run (issue 13, item 6): it must run, and write bench/_results.py's schema.

Each script runs as a subprocess, as a person runs it, with `--smoke --json PATH` (tiny sizes, one round: seconds).
Nothing here is asserted about time: the goals are read from bench/results/, where the full run (bench/run_all.py)
records them, and docs/performance.md's table must be exactly what bench/run_all.py renders from those files,
so that a goal not met there is said to be not met in the doc.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kimi_mcp.testing.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
OURS = ("bench_calls", "bench_startup", "bench_media", "bench_http")
# The headline figures the issue names; each must be in the committed results.
REQUIRED = ("P1 stdio", "P1 HTTP", "P2 cold start", "P3 upload time", "P3 upload memory", "P4 concurrency",
            "P5 cache share", "P6 tool text", "P7 first call", "Files packing")  # fmt: skip


def load(name: str) -> ModuleType:
    """bench/ is no package: its modules are loaded by path, with bench/ on sys.path for their shared helper."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return load_script(f"bench_{name}", BENCH / f"{name}.py")


def check_schema(report: dict[str, Any], bench: str) -> None:
    results = load("_results")
    assert set(results.SCHEMA_KEYS) <= report.keys(), report.keys()
    assert report["bench"] == bench and report["command"].startswith("python bench/")
    assert report["machine"]["cpus"] >= 1 and report["machine"]["python"].startswith("3.")
    assert len(report["load_before"]) == 3 and len(report["load_after"]) == 3
    figures = report["figures"]
    assert figures and all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in figures.values())
    assert report["headlines"], "a benchmark with no headline figure"
    for row in report["headlines"]:
        assert set(results.HEADLINE_KEYS) <= row.keys(), row
        assert row["value"] > 0, row
        assert row["floor_value"] is None or row["floor_value"] > 0, row
        assert row["goal_met"] in (True, False, None) and (row["goal"] is None) == (row["goal_met"] is None), row


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
    return done


@pytest.mark.parametrize("bench", OURS)
def test_smoke_run_writes_the_results_schema(bench: str, tmp_path: Path) -> None:
    out = tmp_path / f"{bench}.json"
    done = run([f"bench/{bench}.py", "--smoke", "--json", str(out)])
    assert done.returncode == 0
    report = json.loads(out.read_text())
    check_schema(report, bench)
    assert report["smoke"] is True and "--smoke" in report["command"]


def test_context_files_smoke_run(tmp_path: Path) -> None:
    """bench_context_files.py is another engineer's: run with --smoke/--json once it has them, else with its
    smallest profile (3 rounds) and its printed report read as bench/run_all.py reads it."""
    run_all = load("run_all")
    script = "bench/bench_context_files.py"
    out = tmp_path / "bench_context_files.json"
    if run_all.supports(script, "--json"):
        smoke = ["--smoke"] if run_all.supports(script, "--smoke") else ["--rounds", "3"]
        done = run([script, *smoke, "--json", str(out)])
        report = json.loads(out.read_text())
    else:
        done = run([script, "--rounds", "3"])
        figures, headlines = run_all.context_files_report(done.stdout)
        report = load("_results").Recorder("bench_context_files", smoke=True).write(None, figures, headlines)
        report["command"] = f"python {script} --rounds 3"
    assert done.returncode in (0, 1), done.stderr  # 1: over its speed target, a figure and not a failure
    check_schema(report, "bench_context_files")
    assert [row["id"] for row in report["headlines"]] == ["Files packing"]


def committed() -> dict[str, dict[str, Any]]:
    return load("run_all").load_results()


def test_committed_results_carry_every_headline_with_its_goal() -> None:
    results = committed()
    for bench in (*OURS, "bench_context_files"):
        assert bench in results, f"bench/results/{bench}.json missing: run python bench/run_all.py"
        check_schema(results[bench], bench)
        assert results[bench]["smoke"] is False, f"{bench}: a smoke run's figures committed as the record"
    ids = [row["id"] for report in results.values() for row in report.get("headlines", [])]
    assert set(REQUIRED) <= set(ids), set(REQUIRED) - set(ids)
    assert results["faults"]["figures"]["tests"] > 0


def test_the_doc_table_is_the_committed_results() -> None:
    run_all = load("run_all")
    doc = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert run_all.BEGIN in doc and run_all.END in doc
    block = run_all.BEGIN + doc.split(run_all.BEGIN, 1)[1].split(run_all.END, 1)[0] + run_all.END
    assert block == run_all.render(committed()), "docs/performance.md is stale: python bench/run_all.py --table-only"
    # A goal not met is said so, on its own row.
    for report in committed().values():
        for row in report.get("headlines", []):
            line = next(line for line in block.splitlines() if line.startswith(f"| {row['id']} |"))
            if row["goal_met"] is False:
                assert "**not met**" in line, line
            elif row["goal_met"]:
                assert "**met**" in line, line


def test_render_says_not_met_and_shows_the_floor() -> None:
    """The generator itself, on a made-up result: the doc test above is only as good as it."""
    results = load("_results")
    row = results.headline(
        "P1 stdio", "one call", 1.5, floor="bare", floor_value=0.012, goal="<= 1.10x", goal_met=False
    )
    report = results.Recorder("bench_calls", smoke=False).write(None, {"a_s": 0.1}, [row])
    block = load("run_all").render({"bench_calls": report})
    line = next(line for line in block.splitlines() if line.startswith("| P1 stdio |"))
    assert "**1.50×**" in line and "bare: 12.0 ms" in line and "≤ 1.10x: **not met**" in line
    assert "Machine: " in block and report["command"] in block


@pytest.mark.skipif(not (Path(sys.executable).parent / "py-spy").exists(), reason="py-spy is not installed")
def test_profile_smoke_run_names_where_the_cpu_goes(tmp_path: Path) -> None:
    out = tmp_path / "profile_chat.json"
    done = run(["bench/profile_chat.py", "--smoke", "--json", str(out)])
    assert done.returncode == 0
    report = json.loads(out.read_text())
    profile = report["profile"]
    assert report["figures"]["server_cpu_ms_per_call"] > 0 and profile["calls"] == 10
    assert profile["busy_samples"] > 0 and profile["samples_with_ours_on_stack"] > 0
    # Every sample is charged to one of our frames (the server's own `main` at the least): none to anything else.
    assert profile["by_nearest_ours_frame"] and all("(kimi_mcp/" in f for f in profile["by_nearest_ours_frame"])
