"""Benchmark P3: a large video uploaded to the fake Kimi — kimi-mcp's wall time against `curl -F`, and its memory.

The fake Kimi runs in its own process (`python -m kimi_mcp.testing.fake_kimi`), so the memory measured is
kimi-mcp's alone. A generated video (a valid mp4 `ftyp` head, then random bytes written out: a real file, not a
sparse one) is uploaded to POST /coding/v1/files three ways in each round, in every order over six rounds:

- baseline: `curl -F` of the same file to the same endpoint, the same multipart shape kimi-mcp sends;
- kimi-mcp: `kimi_upload_media` called through a real MCP client over stdio on a fresh `kimi-mcp serve` (a fresh
  KIMI_MCP_HOME, so the upload cache never answers instead). Wall time is the client's, from the call to its
  result: access checks, the sha256 of the whole file for the upload cache, the upload itself, progress and all.
  The server's memory is read from /proc/<pid>/status: VmRSS just before the call (its VmHWM, the peak, reset
  to it), VmHWM just after.
  Before it, the server is brought to the state a host's server is in when a user uploads something: its
  background warm-up over (the SDK import), one `kimi_chat` and one small upload done, its CPU idle. The growth
  measured is then what the big file costs, not one-off imports.
- in-process: `inspect_path` (the hashing, timed alone) then `KimiClient.upload`, in a child process of its own
  (`--client-upload`, run by the benchmark), for comparison without MCP and with the hashing split out.

Every process runs in a session of its own (`start_new_session`), as the MCP SDK starts `kimi-mcp serve`: with the
kernel's autogroup scheduling (on here: /proc/sys/kernel/sched_autogroup_enabled) each session gets an equal share
of a busy CPU. Otherwise the fake, curl and the in-process client would share one share while the stdio server had
its own, and on a loaded machine the comparison would favour the server.

Targets (issue 9, P3): server peak RSS growth <= 64 MiB; kimi-mcp wall <= 1.3x curl, medians over the rounds.

    python bench/bench_media.py [--size-mib 512] [--rounds 3] [--quick] [--smoke] [--json PATH]

`--smoke`: 8 MiB, 1 round (it works; the figures mean nothing). `--json PATH`: bench/_results.py's schema.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is no package: _results.py sits beside us
from _results import Recorder, headline
from bench_calls import child_pids, cpu_seconds, idle

KEY = "sk-kimi-test-key"
MIB = 1 << 20
TARGET_RATIO = 1.3
TARGET_GROWTH_MIB = 64.0


# -- the file -------------------------------------------------------------------------------------------------


def mp4_head(size: int) -> bytes:
    """An `ftyp` box (major brand isom) and the header of an `mdat` box holding the rest of `size` bytes."""
    ftyp = (24).to_bytes(4, "big") + b"ftyp" + b"isom" + (512).to_bytes(4, "big") + b"isom" + b"mp41"
    return ftyp + (size - len(ftyp)).to_bytes(4, "big") + b"mdat"


def make_video(path: Path, size: int) -> None:
    """`size` bytes of real data on disk: every block written, none left as a hole."""
    head = mp4_head(size)
    with path.open("wb") as file:
        file.write(head)
        left = size - len(head)
        while left > 0:
            block = os.urandom(min(left, 4 * MIB))
            file.write(block)
            left -= len(block)
        file.flush()
        os.fsync(file.fileno())


# -- processes ------------------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) / 1024  # kB
    return figures


def reset_peak(pid: int) -> None:
    """Set a process's VmHWM back to its current RSS (Linux 4.0+), so the next peak is the upload's own. Where
    that is not allowed the peak since start stands, which can only overstate the growth."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def server_pid(before: set[int]) -> int:
    """The `kimi-mcp serve` the stdio client just spawned: our new child running it."""
    for pid in child_pids(os.getpid()) - before:
        try:
            if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise RuntimeError("could not find the kimi-mcp serve process")


class FakeProcess:
    """`python -m kimi_mcp.testing.fake_kimi` in a process of its own; `env` is what it printed."""

    def __init__(self) -> None:
        command = [sys.executable, "-m", "kimi_mcp.testing.fake_kimi"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.env: dict[str, str] = {}
        assert self.process.stdout is not None
        while len(self.env) < 3:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the fake Kimi did not start")
            key, _, value = line.strip().partition("=")
            self.env[key] = value

    @property
    def base_url(self) -> str:
        return self.env["KIMI_CODE_BASE_URL"]

    def stop(self) -> None:
        """SIGINT (its main() ends on KeyboardInterrupt), then SIGTERM: a benchmark started in the background of a
        shell passes SIGINT on ignored, and the fake keeps nothing that needs a clean exit."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(30)


# -- the three ways to upload -----------------------------------------------------------------------------------


def curl_upload(base_url: str, video: Path) -> dict[str, float]:
    command = [
        "curl", "-s", "-S", "-o", "/dev/null", "-w", "%{http_code}",
        "-F", "purpose=video", "-F", f"file=@{video};filename=upload.mp4;type=video/mp4",
        "-H", f"Authorization: Bearer {KEY}", f"{base_url}/v1/files",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, start_new_session=True)
    wall = time.perf_counter() - started
    if done.stdout != "200":
        raise RuntimeError(f"curl upload answered {done.stdout}: {done.stderr}")
    return {"wall_s": wall}


@dataclass(frozen=True)
class Setup:
    """What every round uploads, and to where."""

    fake: FakeProcess
    video: Path
    warm_up: Path  # a small video, uploaded first to warm the uploader up
    size: int

    def env(self, home: Path) -> dict[str, str]:
        """kimi-mcp's environment: the fake, a home of its own, the media folder allowed, the size limit raised."""
        return {
            "PATH": os.environ.get("PATH", ""),
            **self.fake.env,
            "KIMI_MCP_HOME": str(home),
            "KIMI_MCP_ALLOWED_DIRS": str(self.video.parent),
            "KIMI_MCP_MAX_MEDIA_BYTES": str(max(2 * self.size, 100_000_000)),
        }


async def stdio_upload(setup: Setup, home: Path) -> dict[str, float]:
    """`kimi_upload_media` through an MCP client on a fresh `kimi-mcp serve`; its time and memory."""
    fake, video = setup.fake, setup.video
    script = str(Path(sys.executable).parent / "kimi-mcp")
    params = StdioServerParameters(command=script, args=["serve"], env=setup.env(home))
    before = child_pids(os.getpid())
    first_progress: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if not first_progress:
            first_progress.append(time.perf_counter())

    async with Client(params, mode="legacy") as client:
        pid = server_pid(before)
        await client.list_tools()
        initialized = proc_status(pid)
        # As a host's server is by the time a user uploads something: its background warm-up (the SDK import,
        # docs/architecture.md "Start-up") done, a chat and a small upload behind it.
        for tool, arguments in (
            ("kimi_chat", {"prompt": "warm up"}),
            ("kimi_upload_media", {"path": str(setup.warm_up)}),
        ):
            warm = await client.call_tool(tool, arguments)
            assert not warm.is_error, warm
        await idle(pid)
        reset_peak(pid)
        ready = proc_status(pid)
        server_cpu, fake_cpu = cpu_seconds(pid), cpu_seconds(fake.process.pid)
        started = time.perf_counter()
        result = await client.call_tool("kimi_upload_media", {"path": str(video)}, progress_callback=on_progress)
        wall = time.perf_counter() - started
        assert not result.is_error, result
        assert json.loads(result.content[0].text)["cached"] is False  # type: ignore[union-attr]
        after = proc_status(pid)
        server_cpu, fake_cpu = cpu_seconds(pid) - server_cpu, cpu_seconds(fake.process.pid) - fake_cpu
    return {
        "wall_s": wall,
        # The first progress notification comes once the first few MiB are sent: before it, the access checks
        # and the sha256 of the whole file.
        "until_first_progress_s": first_progress[0] - started if first_progress else float("nan"),
        "rss_before_mib": ready["VmRSS"],
        "peak_mib": after["VmHWM"],
        "growth_mib": after["VmHWM"] - ready["VmRSS"],
        "rss_after_initialize_mib": initialized["VmRSS"],
        "server_cpu_s": server_cpu,
        "fake_cpu_s": fake_cpu,
    }


def client_upload(setup: Setup, home: Path) -> dict[str, float]:
    """`inspect_path` + `KimiClient.upload` in a child process of its own (`--client-upload`)."""
    command = [sys.executable, __file__, "--client-upload", str(setup.video), str(setup.warm_up)]
    done = subprocess.run(command, env=setup.env(home), capture_output=True, text=True, start_new_session=True)
    if done.returncode != 0:
        raise RuntimeError(f"in-process upload failed:\n{done.stderr}")
    return json.loads(done.stdout)


def run_client_upload(video: Path, warm_up: Path) -> None:
    """The child of `client_upload`: hash, then upload, with the KimiClient the server uses; JSON on stdout."""
    from kimi_mcp.kimi.client import KimiClient
    from kimi_mcp.kimi.media import inspect_path
    from kimi_mcp.settings import Settings

    settings = Settings.from_env()
    pid = os.getpid()

    async def main() -> dict[str, float]:
        async with KimiClient(settings) as kimi:
            await kimi.upload(inspect_path(warm_up, max_bytes=settings.max_media_bytes))
            # As the server's warm-up leaves it (server/warmup.py): the SDK's objects out of the collector's way.
            gc.collect()
            gc.freeze()
            await idle(pid)
            reset_peak(pid)
            ready = proc_status(pid)
            started = time.perf_counter()
            media = await anyio.to_thread.run_sync(lambda: inspect_path(video, max_bytes=settings.max_media_bytes))
            hashed = time.perf_counter()
            uploaded = await kimi.upload(media)
            done = time.perf_counter()
            assert uploaded.bytes == media.size
            after = proc_status(pid)
        return {
            "wall_s": done - started,
            "hash_s": hashed - started,
            "upload_s": done - hashed,
            "growth_mib": after["VmHWM"] - ready["VmRSS"],
        }

    print(json.dumps(anyio.run(main)))


# -- rounds and report ------------------------------------------------------------------------------------------


def median(rounds: list[dict[str, dict[str, float]]], way: str, key: str) -> float:
    return statistics.median(r[way][key] for r in rounds)


# The order of the three ways in round 1, 2, ...: every order once in six rounds, and curl before kimi-mcp in every
# other round, so that neither a position in the round nor a load spike favours one of them.
ORDERS = (
    ("curl", "kimi_mcp", "client"),
    ("client", "kimi_mcp", "curl"),
    ("curl", "client", "kimi_mcp"),
    ("kimi_mcp", "client", "curl"),
    ("client", "curl", "kimi_mcp"),
    ("kimi_mcp", "curl", "client"),
)


async def one_round(setup: Setup, home: Path, order: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """curl, kimi-mcp over stdio and the in-process client, in `order`."""
    ways: dict[str, Callable[[], Awaitable[dict[str, float]]]] = {
        "curl": lambda: anyio.to_thread.run_sync(curl_upload, setup.fake.base_url, setup.video),
        "kimi_mcp": lambda: stdio_upload(setup, home / "stdio"),
        "client": lambda: anyio.to_thread.run_sync(client_upload, setup, home / "client"),
    }
    return {name: await ways[name]() for name in order}


def load_average() -> float:
    """The 1-minute load average: how busy the (shared) machine was, next to the figures it produced."""
    return float(Path("/proc/loadavg").read_text().split()[0])


async def main(size: int, rounds: int, recorder: Recorder, json_path: str | None) -> None:
    load_before = load_average()
    fake = FakeProcess()
    results: list[dict[str, dict[str, float]]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
            folder = Path(tmp) / "media"
            folder.mkdir()
            video, warm_up = folder / "big.mp4", folder / "warm-up.mp4"
            started = time.perf_counter()
            make_video(video, size)
            make_video(warm_up, 256 * 1024)  # over the inline threshold: kimi_upload_media uploads any video anyway
            print(f"generated {size / MIB:.0f} MiB in {time.perf_counter() - started:.1f} s; fake at {fake.base_url}")
            setup = Setup(fake, video, warm_up, size)
            for i in range(rounds):  # a fresh home each round: the upload cache never answers instead of an upload
                figures = await one_round(setup, Path(tmp) / f"home-{i}", ORDERS[i % len(ORDERS)])
                results.append(figures)
                print_round(i, figures)
    finally:
        fake.stop()
    report = print_summary(results, size, (load_before, load_average()))
    size_mib = size / MIB
    headlines = [
        headline("P3 upload time", f"kimi_upload_media of a {size_mib:.0f} MiB video over stdio, vs curl -F",
                 report["kimi_upload_media_vs_curl"], floor="curl -F of the same file", floor_value=report["curl_s"],
                 goal=f"<= {TARGET_RATIO}x", goal_met=bool(report["ratio_target_met"])),
        headline("P3 upload memory", f"server peak RSS growth uploading {size_mib:.0f} MiB (worst round)",
                 report["server_peak_rss_growth_mib_worst"], unit="MiB",
                 floor="KimiClient.upload in a process of its own (worst round)",
                 floor_value=report["in_process_rss_growth_mib_worst"], goal=f"<= {TARGET_GROWTH_MIB:.0f} MiB",
                 goal_met=bool(report["rss_target_met"])),
    ]  # fmt: skip
    recorder.write(json_path, report, headlines)


def print_round(i: int, f: dict[str, dict[str, float]]) -> None:
    k, c = f["kimi_mcp"], f["client"]
    print(
        f"round {i + 1}: curl {f['curl']['wall_s']:6.2f} s | kimi_upload_media {k['wall_s']:6.2f} s "
        f"(first progress {k['until_first_progress_s']:.2f} s, peak RSS +{k['growth_mib']:.1f} MiB, "
        f"cpu server {k['server_cpu_s']:.2f} s fake {k['fake_cpu_s']:.2f} s) | "
        f"KimiClient {c['wall_s']:6.2f} s (hash {c['hash_s']:.2f} + upload {c['upload_s']:.2f}, "
        f"+{c['growth_mib']:.1f} MiB)",
        flush=True,
    )


def print_summary(
    results: list[dict[str, dict[str, float]]], size: int, load: tuple[float, float]
) -> dict[str, float | bool | list[float] | None]:
    curl = median(results, "curl", "wall_s")
    kimi = median(results, "kimi_mcp", "wall_s")
    client = median(results, "client", "wall_s")
    hashing = median(results, "client", "hash_s")
    growth = max(r["kimi_mcp"]["growth_mib"] for r in results)
    rows = [
        ("curl -F (baseline)", curl, 1.0, ""),
        ("kimi_upload_media over stdio", kimi, kimi / curl, f"peak RSS growth {growth:.1f} MiB (worst round)"),
        ("  of which until first progress", median(results, "kimi_mcp", "until_first_progress_s"), None, ""),
        ("inspect_path + KimiClient.upload", client, client / curl, ""),
        ("  inspect_path (sha256)", hashing, hashing / curl, ""),
        ("  KimiClient.upload", median(results, "client", "upload_s"), median(results, "client", "upload_s") / curl,
         ""),
    ]  # fmt: skip
    print(f"\n{size / MIB:.0f} MiB video, {len(results)} rounds, medians (ratio: to curl in the same rounds)")
    for label, seconds, ratio, note in rows:
        shown = f"{ratio:5.2f}x" if ratio is not None else "      "
        print(f"  {label:<34} {seconds:7.2f} s  {shown}  {note}")
    report = {
        "size_mib": size / MIB,
        "rounds": len(results),
        "curl_s": round(curl, 3),
        "kimi_upload_media_s": round(kimi, 3),
        "kimi_upload_media_vs_curl": round(kimi / curl, 2),
        "paired_ratio_median": round(
            statistics.median(r["kimi_mcp"]["wall_s"] / r["curl"]["wall_s"] for r in results), 2
        ),
        "until_first_progress_s": round(median(results, "kimi_mcp", "until_first_progress_s"), 3),
        "hash_s": round(hashing, 3),
        "kimi_client_upload_s": round(median(results, "client", "upload_s"), 3),
        "in_process_vs_curl": round(client / curl, 2),
        "server_peak_rss_growth_mib_worst": round(growth, 1),
        "server_rss_after_initialize_mib": round(median(results, "kimi_mcp", "rss_after_initialize_mib"), 1),
        "server_rss_before_upload_mib": round(median(results, "kimi_mcp", "rss_before_mib"), 1),
        "server_peak_rss_mib": round(max(r["kimi_mcp"]["peak_mib"] for r in results), 1),
        "in_process_rss_growth_mib_worst": round(max(r["client"]["growth_mib"] for r in results), 1),
        "server_cpu_s": round(median(results, "kimi_mcp", "server_cpu_s"), 2),
        "fake_cpu_s": round(median(results, "kimi_mcp", "fake_cpu_s"), 2),
        "ratio_target_met": kimi / curl <= TARGET_RATIO,
        "rss_target_met": growth <= TARGET_GROWTH_MIB,
        "cores": os.cpu_count(),
        "load_average_1m_before_after": list(load),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help="size of the generated video (default 512)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of curl / kimi-mcp / in-process (default 3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 MiB, 2 rounds")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 8 MiB, 1 round")
    parser.add_argument("--json", metavar="PATH", help="write the figures, headlines, machine and load here")
    parser.add_argument("--client-upload", nargs=2, metavar=("VIDEO", "WARM_UP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_upload:
        run_client_upload(Path(args.client_upload[0]), Path(args.client_upload[1]))
    else:
        size_mib, rounds = (64, 2) if args.quick else (args.size_mib, args.rounds)
        if args.smoke:
            size_mib, rounds = 8, 1
        if not 1 <= size_mib < 4096:
            parser.error("--size-mib must be from 1 to 4095 (a 32-bit mdat box)")
        anyio.run(main, size_mib * MIB, rounds, Recorder("bench_media", smoke=args.smoke), args.json)
