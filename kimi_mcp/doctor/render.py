"""The doctor's report as text (one line per check, a fix line under each failure) or as one JSON object."""

from __future__ import annotations

import json

from kimi_mcp._version import __version__

from .runner import Report

MARKS = {"ok": "✓", "fail": "✗", "skipped": "–"}


def text(report: Report) -> str:
    lines = [f"kimi-mcp {__version__} doctor"]
    if report.settings is not None:
        lines.append("Settings in effect:")
        width = max(len(name) for name in report.settings)
        lines += [f"  {name:<{width}}  {value}" for name, value in report.settings.items()]
    lines.append("Checks:")
    for check in report.checks:
        suffix = " (skipped)" if check.status == "skipped" else ""
        lines.append(f"{MARKS[check.status]} {check.name}: {check.detail}{suffix}")
        if check.fix:
            lines.append(f"  fix: {check.fix}")
    failed = sum(check.status == "fail" for check in report.checks)
    lines.append("All checks passed." if not failed else f"{failed} check(s) failed.")
    return "\n".join(lines)


def as_json(report: Report) -> str:
    body = {
        "ok": report.ok,
        "version": __version__,
        "settings": report.settings,
        "checks": [check.as_json() for check in report.checks],
    }
    return json.dumps(body, indent=2, ensure_ascii=False)
