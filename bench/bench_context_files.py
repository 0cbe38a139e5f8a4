"""Benchmark (issue 12): reading and packing a 5,000-file tree for kimi_chat's `files`, against git reading it.

A generated git repository of 5,000 files, about 40 MB, most of it what a developer never reads: node_modules,
build output, a .gitignore'd folder of generated code and .gitignore'd logs. The source itself (1,000 files,
about 0.7 MB) fits Kimi's window and the 2 MiB request cap, so the packing is the real one, not its error path.

- baseline: `git ls-files -z | xargs -0 cat > /dev/null` in the repository: git lists the tracked files from its
  index (no walk, no .gitignore matching) and cat reads them, all in C, in four processes;
- kimi-mcp: `prepare_files([repo], …)` as kimi_chat calls it, in a running event loop: the walk (folder rules,
  every .gitignore), reading in one worker thread, binary checks, sha256, token estimates, and the blocks within
  the budget. The bench checks that it sends exactly the files git tracks: the same files read, so what kimi-mcp
  does beyond the baseline (the walk, .gitignore, binary sniffing, hashing, estimates, packing) is its own cost.

Both run warm (each once before timing), in alternating order within each round. Reported: medians over the
rounds of the wall time (the target) and of the CPU time (the baseline's is that of its processes, which may run
on two cores at once), and the median of each round's own ratio (the two runs of a round are next to each other
in time, so a load that changes during the run moves both). Target: kimi-mcp <= 1.5x the baseline's median wall
time. The machine is shared: read the figures next to the load averages before and after.

    python bench/bench_context_files.py [--rounds 15] [--keep DIR] [--smoke] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from anyio.from_thread import BlockingPortal, start_blocking_portal

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is no package: _results.py sits beside us
from _results import Recorder, headline

from kimi_mcp.access import FileAccessPolicy
from kimi_mcp.context_files import Budget, PackedFiles, prepare_files

TARGET_RATIO = 1.5
BUDGET = Budget(tokens=262_144, bytes=2_097_152, window=262_144)
MAX_FILE_BYTES = 524_288
BASELINE = "git ls-files -z | xargs -0 cat > /dev/null"
GOAL_NAME = "files packing vs git ls-files|xargs cat"

# (folder, files, bytes each): 5,000 files, about 40 MB; only src/ is read.
LAYOUT = (
    ("src", 1000, 700),
    ("src-logs", 100, 1_000),  # *.log files among the sources: gitignored one by one
    ("node_modules", 2500, 8_000),
    ("build", 800, 10_000),
    ("generated", 600, 16_000),  # gitignored by name in .gitignore
)
SMOKE_DIVISOR = 50  # --smoke: a 100-file tree, one round: proves the script works, measures nothing


def source_text(rng: random.Random, size: int, index: int) -> str:
    """Python-looking text of about `size` bytes."""
    lines = [f'"""Module {index}."""', "", "import os", ""]
    n = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(f"def f{n}(value: int) -> int:")
        lines.append(f"    return value * {rng.randint(1, 999)} + len(os.sep)  # step {n}")
        n += 1
    return "\n".join(lines) + "\n"


def make_tree(root: Path, divisor: int = 1) -> dict[str, int]:
    rng = random.Random(12)
    counts = {"files": 0, "bytes": 0}
    (root / ".gitignore").write_text("node_modules/\nbuild/\ngenerated/\n*.log\n")
    for folder, files, size in LAYOUT:
        for i in range(max(files // divisor, 1)):
            if folder == "src-logs":  # beside the sources, not in a folder of their own
                path, data = root / "src" / f"pkg{i % 40:02}" / f"run{i}.log", b"log line\n" * (size // 9)
            elif folder == "src":
                path, data = root / folder / f"pkg{i % 40:02}" / f"mod{i % 7}" / f"m{i}.py", b""
                data = source_text(rng, size, i).encode()
            else:
                path = root / folder / f"pkg{i % 40:02}" / f"mod{i % 7}" / f"f{i}.js"
                data = rng.randbytes(size // 2).hex().encode()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            counts["files"] += 1
            counts["bytes"] += len(data)
    git = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(root)], check=True)
    subprocess.run([*git, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-q", "-m", "tree"], check=True)
    return counts


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_baseline(root: Path) -> tuple[float, float]:
    """(wall, CPU) seconds: the CPU of the shell, git, xargs and cat."""
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run(BASELINE, shell=True, cwd=root, check=True)
    return time.perf_counter() - start, children_cpu() - cpu


def run_kimi_mcp(portal: BlockingPortal, root: Path, policy: FileAccessPolicy) -> tuple[float, float, PackedFiles]:
    """(wall, CPU) seconds and the result of one call on an event loop that keeps running between calls, as the
    server's does. The CPU is this process's, all threads (the caller and the loop only wait meanwhile)."""
    start, cpu = time.perf_counter(), time.process_time()
    packed = portal.call(partial(prepare_files, [str(root)], policy, budget=BUDGET, max_file_bytes=MAX_FILE_BYTES))
    return time.perf_counter() - start, time.process_time() - cpu, packed


@dataclass
class Runs:
    baseline: list[tuple[float, float]]
    ours: list[tuple[float, float]]
    packed: PackedFiles
    tracked: list[str]


def bench(root: Path, rounds: int) -> Runs:
    policy = FileAccessPolicy([root])
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True).stdout
    baseline: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    with start_blocking_portal() as portal:
        run_baseline(root)  # warm: the page cache holds the tree, git its index
        *_, packed = run_kimi_mcp(portal, root, policy)
        for n in range(rounds):
            if n % 2 == 0:
                baseline.append(run_baseline(root))
                ours.append(run_kimi_mcp(portal, root, policy)[:2])
            else:
                ours.append(run_kimi_mcp(portal, root, policy)[:2])
                baseline.append(run_baseline(root))
    return Runs(baseline, ours, packed, sorted(filter(None, listed.split("\0"))))


def medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def report(name: str, runs: list[tuple[float, float]]) -> None:
    wall, cpu = medians(runs)
    walls = [round(r[0] * 1000, 1) for r in runs]
    print(f"{name}: wall median {wall * 1000:.1f} ms, CPU median {cpu * 1000:.1f} ms  (walls {walls})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds measured (at least 3)")
    parser.add_argument("--keep", type=Path, help="build the tree in this (empty) folder and leave it there")
    parser.add_argument("--smoke", action="store_true", help="a 100-file tree, one round, seconds: it works")
    parser.add_argument("--json", metavar="PATH", help="write the figures, headline, machine and load here")
    args = parser.parse_args()
    recorder = Recorder("bench_context_files", smoke=args.smoke)
    rounds = 1 if args.smoke else max(3, args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-files-") as scratch:
        root = (args.keep or Path(scratch) / "repo").resolve()
        root.mkdir(parents=True, exist_ok=True)
        counts = make_tree(root, SMOKE_DIVISOR if args.smoke else 1)
        runs = bench(root, rounds)
    packed = runs.packed
    sent = [f.file.path for f in packed.files]
    same = sorted(sent) == runs.tracked  # the same set of paths (git sorts by bytes, kimi-mcp folder by folder)
    print(f"tree: {counts['files']:,} files, {counts['bytes'] / 1e6:.1f} MB; git tracks {len(runs.tracked):,}")
    print(f"packed: {packed.summary()}; {packed.wire_bytes:,} bytes of request body")
    print(f"skipped: {packed.skipped_counts()}; the files sent are exactly the files git tracks: {same}")
    report(f"baseline `{BASELINE}`", runs.baseline)
    report("kimi-mcp prepare_files", runs.ours)
    (b_wall, b_cpu), (o_wall, o_cpu) = medians(runs.baseline), medians(runs.ours)
    ratio, cpu_ratio = o_wall / b_wall, o_cpu / b_cpu
    paired = statistics.median(o[0] / b[0] for o, b in zip(runs.ours, runs.baseline, strict=True))
    met = ratio <= TARGET_RATIO
    verdict = "OK" if met else "OVER TARGET"
    print(f"ratio {ratio:.2f}x wall (target <= {TARGET_RATIO}x): {verdict}; {cpu_ratio:.2f}x CPU; "
          f"median of the rounds' own ratios {paired:.2f}x; {rounds} rounds")  # fmt: skip
    figures = {
        "tree_files": counts["files"],
        "tree_mb": round(counts["bytes"] / 1e6, 2),
        "tracked_files": len(runs.tracked),
        "files_sent": len(sent),
        "same_files_as_git": int(same),
        "skipped": len(packed.skipped),
        "tokens": packed.tokens,
        "wire_bytes": packed.wire_bytes,
        "rounds": rounds,
        "baseline_wall_ms": round(b_wall * 1000, 2),
        "baseline_cpu_ms": round(b_cpu * 1000, 2),
        "kimi_mcp_wall_ms": round(o_wall * 1000, 2),
        "kimi_mcp_cpu_ms": round(o_cpu * 1000, 2),
        "wall_ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "paired_wall_ratio_median": round(paired, 3),
        "target": TARGET_RATIO,
    }
    headlines = [
        headline("Files packing", f"prepare_files on a {counts['files']:,}-file tree (kimi_chat `files`), vs git "
                 "ls-files | xargs cat", ratio, floor="git ls-files -z | xargs -0 cat", floor_value=b_wall,
                 goal=f"<= {TARGET_RATIO}x", goal_met=met),
    ]  # fmt: skip
    result = recorder.write(None, figures, headlines)
    result["goals"] = [{"name": GOAL_NAME, "ratio": round(ratio, 3), "target": TARGET_RATIO, "met": met}]
    if args.json:
        write_json(Path(args.json), result)
    if not same:
        print("the files sent differ from the files git tracks: the comparison is not like for like")
        return 1
    return 0 if met else 1


def write_json(path: Path, result: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
