"""One doctor check's result: a stable name, ok/fail/skipped, what was found, and the one-line fix of a failure."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["ok", "fail", "skipped"]

# Every network step (a DNS lookup, a TCP connect, a TLS handshake, one HTTP request) gives up after this long, so
# a doctor run stays well under half a minute even when every host swallows packets.
STEP_SECONDS = 5.0
# The whole run: a check still going past this is reported as failed, never waited for.
RUN_SECONDS = 20.0


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return asdict(self)


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "fail", detail, fix)


def skipped(name: str, detail: str) -> Check:
    return Check(name, "skipped", detail)
