"""Side-API payloads: `/v1/models` and `/v1/usages` (docs/kimi-api.md §1, §9), parsed into typed models.

Only Kimi Code plans serve `/v1/usages`; Moonshot's pay-as-you-go platform and OpenAI-compatible gateways answer 404
(docs/backends.md), which `KimiClient.quota` reports as `errors.UsageNotAvailable`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

_FIVE_HOUR_MINUTES = 300


class ModelInfo(BaseModel):
    id: str
    display_name: str | None = None
    context_length: int | None = None
    efforts: list[str] = []


class QuotaWindow(BaseModel):
    used: float
    limit: float
    reset_at: str | None = None  # ISO 8601

    @property
    def used_share(self) -> float:
        return self.used / self.limit if self.limit else 0.0


class Quota(BaseModel):
    five_hour: QuotaWindow | None = None
    weekly: QuotaWindow | None = None


def parse_models(payload: Any) -> list[ModelInfo]:
    models = []
    for item in (payload or {}).get("data", []) if isinstance(payload, dict) else []:
        if not isinstance(item, dict) or "id" not in item:
            continue
        models.append(
            ModelInfo(
                id=str(item["id"]),
                display_name=item.get("display_name"),
                context_length=_positive_int(item.get("context_length")),
                efforts=_efforts(item.get("think_efforts")),
            )
        )
    return models


def _positive_int(value: Any) -> int | None:
    """A listed context length, or None when it is absent or not a positive whole number (a gateway's own fields
    vary: an unusable value means "not listed", never a failed model list)."""
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _efforts(think_efforts: Any) -> list[str]:
    """Efforts a chat may ask for: listed in `valid_efforts` and only when `support` is true (docs/kimi-api.md §5)."""
    if not isinstance(think_efforts, dict) or think_efforts.get("support") is not True:
        return []
    listed = think_efforts.get("valid_efforts")
    return [str(e) for e in listed if isinstance(e, str)] if isinstance(listed, list) else []


def _number(value: Any) -> float:
    try:
        return float(Decimal(str(value)))  # the service sends decimal strings (§9)
    except (InvalidOperation, ValueError):
        return 0.0


def _iso(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    try:
        if text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text)).astimezone().isoformat()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()
    except (ValueError, OverflowError):
        return text


def _window(detail: Any) -> QuotaWindow | None:
    if not isinstance(detail, dict):
        return None
    return QuotaWindow(
        used=_number(detail.get("used")),
        limit=_number(detail.get("limit")),
        reset_at=_iso(detail.get("resetTime")),
    )


def _window_minutes(window: Any) -> float | None:
    if not isinstance(window, dict):
        return None
    duration = _number(window.get("duration"))
    unit = str(window.get("timeUnit", "TIME_UNIT_MINUTE"))
    factor = {"TIME_UNIT_SECOND": 1 / 60, "TIME_UNIT_MINUTE": 1, "TIME_UNIT_HOUR": 60, "TIME_UNIT_DAY": 1440}
    return duration * factor.get(unit, 1)


def parse_quota(payload: Any) -> Quota:
    if not isinstance(payload, dict):
        return Quota()
    five_hour = None
    for entry in payload.get("limits") or []:
        if isinstance(entry, dict) and _window_minutes(entry.get("window")) == _FIVE_HOUR_MINUTES:
            five_hour = _window(entry.get("detail"))
    return Quota(five_hour=five_hour, weekly=_window(payload.get("usage")))
