"""Benchmark (issue 12): reading and packing a 5,000-file tree for kimi_chat's `files`, against git reading it.

A generated git repository of 5,000 files, about 40 MB, most of it what a developer never reads: node_modules,
build output, a .gitignore'd folder of generated code and .gitignore'd logs. The source itself (1,000 files,
about 0.7 MB) fits Kimi's window and the 2 MiB request cap, so the packing is the real one, not its error path.

- baseline: `git ls-files -z | xargs -0 cat > /dev/null` in the repository: git lists the tracked files (the same
  source files kimi-mcp keeps) and cat reads them, all in C;
- kimi-mcp: `prepare_files([repo], …)` as kimi_chat calls it, in a running event loop: the walk (folder rules,
  every .gitignore), reading in a worker thread, binary checks, sha256, token estimates, and the blocks within
  the budget.

Both run warm (each once before timing), in alternating order within each round; medians over the rounds, of the
wall time (the target) and of the CPU time (steadier on a loaded machine: the baseline's is that of its four
processes, which may run on two cores at once). Target: kimi-mcp <= 1.5x the baseline's wall time.

    python bench/bench_context_files.py [--rounds 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from anyio.from_thread import BlockingPortal, start_blocking_portal

from kimi_mcp.access import FileAccessPolicy
from kimi_mcp.context_files import Budget, PackedFiles, prepare_files

TARGET_RATIO = 1.5
BUDGET = Budget(tokens=262_144, bytes=2_097_152)
MAX_FILE_BYTES = 524_288
BASELINE = "git ls-files -z | xargs -0 cat > /dev/null"

# (folder, files, bytes each): 5,000 files, about 40 MB; only src/ is read.
LAYOUT = (
    ("src", 1000, 700),
    ("src-logs", 100, 1_000),  # *.log files among the sources: gitignored one by one
    ("node_modules", 2500, 8_000),
    ("build", 800, 10_000),
    ("generated", 600, 16_000),  # gitignored by name in .gitignore
)


def source_text(rng: random.Random, size: int, index: int) -> str:
    """Python-looking text of about `size` bytes."""
    lines = [f'"""Module {index}."""', "", "import os", ""]
    n = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(f"def f{n}(value: int) -> int:")
        lines.append(f"    return value * {rng.randint(1, 999)} + len(os.sep)  # step {n}")
        n += 1
    return "\n".join(lines) + "\n"


def make_tree(root: Path) -> dict[str, int]:
    rng = random.Random(12)
    counts = {"files": 0, "bytes": 0}
    (root / ".gitignore").write_text("node_modules/\nbuild/\ngenerated/\n*.log\n")
    for folder, files, size in LAYOUT:
        for i in range(files):
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


def bench(root: Path, rounds: int) -> dict[str, object]:
    policy = FileAccessPolicy([root])
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
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
    return {"baseline": baseline, "ours": ours, "packed": packed, "tracked": len(tracked.splitlines())}


def report(name: str, runs: list[tuple[float, float]]) -> tuple[float, float]:
    wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    walls = [round(r[0] * 1000, 1) for r in runs]
    print(f"{name}: wall median {wall * 1000:.1f} ms, CPU median {cpu * 1000:.1f} ms  (walls {walls})")
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the tree in this (empty) folder and leave it there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-files-") as scratch:
        root = (args.keep or Path(scratch) / "repo").resolve()
        root.mkdir(parents=True, exist_ok=True)
        counts = make_tree(root)
        result = bench(root, max(3, args.rounds))
    packed: PackedFiles = result["packed"]  # type: ignore[assignment]
    print(f"tree: {counts['files']:,} files, {counts['bytes'] / 1e6:.1f} MB; git tracks {result['tracked']:,}")
    print(f"packed: {packed.summary()}; {packed.wire_bytes:,} bytes of request body")
    print(f"skipped: {packed.skipped_counts()}")
    b_wall, b_cpu = report(f"baseline `{BASELINE}`", result["baseline"])  # type: ignore[arg-type]
    o_wall, o_cpu = report("kimi-mcp prepare_files", result["ours"])  # type: ignore[arg-type]
    ratio = o_wall / b_wall
    verdict = "OK" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"ratio {ratio:.2f}x wall (target <= {TARGET_RATIO}x): {verdict}; {o_cpu / b_cpu:.2f}x CPU")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
