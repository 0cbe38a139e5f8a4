"""What every benchmark writes with `--json PATH`: its figures, its headline ratios against floors, the machine.

bench/ is no package. A script run as `python bench/x.py` finds this module beside it (Python puts the script's
folder first on sys.path); a test that loads a script by path puts bench/ on sys.path first (tests/bench/). The
schema, one JSON object:

- `bench`, `command` (the argv that reproduces it), `date` (UTC, ISO 8601), `smoke` (a tiny run: its figures
  prove the script works, not how fast anything is);
- `machine`: cpu count and model, RAM, Python version, platform;
- `load_before` / `load_after`: the 1-, 5- and 15-minute load averages (the machine is shared: read every figure
  next to them);
- `figures`: every number the script measured, flat, name → number;
- `headlines`: the figures docs/performance.md's table shows, each `{id, what, value, unit, floor, floor_value,
  floor_unit, goal, goal_met}`: `value` a ratio against `floor` (measured in the same run, `floor_value`) where
  the figure has one, `goal` as text ("<= 1.3x") or null when the issue sets none, `goal_met` true/false/null.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

SCHEMA_KEYS = ("bench", "command", "date", "smoke", "machine", "load_before", "load_after", "figures", "headlines")
HEADLINE_KEYS = ("id", "what", "value", "unit", "floor", "floor_value", "floor_unit", "goal", "goal_met")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def headline(
    id: str,
    what: str,
    value: float,
    *,
    unit: str = "x",
    floor: str | None = None,
    floor_value: float | None = None,
    floor_unit: str | None = None,
    goal: str | None = None,
    goal_met: bool | None = None,
) -> dict[str, Any]:
    """One row of the table: `value` (a ratio against `floor` when unit is "x"), and its goal if the issue sets one.
    `floor_unit`: seconds for a ratio's floor, else the value's own unit, unless given."""
    return {
        "id": id,
        "what": what,
        "value": round(value, 3),
        "unit": unit,
        "floor": floor,
        "floor_value": None if floor_value is None else round(floor_value, 4),
        "floor_unit": floor_unit or ("s" if unit == "x" else unit),
        "goal": goal,
        "goal_met": goal_met,
    }


class Recorder:
    """Notes the load and the date when a benchmark starts; `write` adds the rest and saves the JSON."""

    def __init__(self, bench: str, *, smoke: bool) -> None:
        self.bench = bench
        self.smoke = smoke
        self.load_before = load_average()
        self.date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def write(self, path: str | Path | None, figures: dict[str, Any], headlines: list[dict[str, Any]]) -> dict:
        report = {
            "bench": self.bench,
            "command": " ".join(["python", *sys.argv]),
            "date": self.date,
            "smoke": self.smoke,
            "machine": machine(),
            "load_before": self.load_before,
            "load_after": load_average(),
            "figures": flat_numbers(figures),
            "headlines": headlines,
        }
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return report


def flat_numbers(figures: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested figures flattened to `a.b` → number (booleans and text left out: they are not figures)."""
    flat: dict[str, float] = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flat_numbers(value, f"{name}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = value
    return flat
