"""`kimi-mcp doctor [--json] [--offline]`: run the checks, print the report, exit 1 when any check failed.

It runs before (and without) the settings the other commands insist on: broken settings are one of its findings.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

import anyio

from . import render
from .runner import run


def main(*, json_output: bool = False, offline: bool = False, out: TextIO | None = None) -> int:
    environ = dict(os.environ)
    report = anyio.run(lambda: run(environ, offline=offline))
    shown = render.as_json(report) if json_output else render.text(report)
    key = environ.get("KIMI_API_KEY", "").strip()
    if len(key) >= 4:  # the listing masks it; this is the last guard should any detail ever quote it
        shown = shown.replace(key, "[redacted]")
    print(shown, file=out or sys.stdout)
    return 0 if report.ok else 1
