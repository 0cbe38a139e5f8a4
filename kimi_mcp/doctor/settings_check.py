"""The settings in effect, every secret masked, and whether the environment holds a valid configuration at all."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import AliasChoices, SecretStr

from kimi_mcp.errors import SettingsError
from kimi_mcp.settings import Settings, env_name_of

from .model import Check, fail, ok

NAME = "settings"
# A key this long may show its last characters (enough to tell two keys apart, far too few to guess one).
_SHOW_TAIL_FROM = 20


def load(environ: Mapping[str, str]) -> tuple[Settings | None, Check]:
    """The settings, or None and a failed check naming every bad variable (doctor runs on with what it can)."""
    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        return None, fail(NAME, exc.message.replace("\n", "; "), "fix or unset each variable named there")
    return settings, ok(NAME, f"{settings.base_url} ({settings.protocol} wire, model {settings.model})")


def masked(secret: SecretStr | None) -> str:
    """How a key or token is shown: never whole."""
    if secret is None:
        return "not set"
    value = secret.get_secret_value()
    return f"set (ends …{value[-4:]})" if len(value) >= _SHOW_TAIL_FROM else "set"


def listing(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """{environment variable: value shown}, each value marked "(default)" when no variable set it."""
    shown: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = (
            [n for n in alias.choices if isinstance(n, str) and n.isupper()] if isinstance(alias, AliasChoices) else []
        )
        if not names:
            continue
        value = _show(getattr(settings, field_name))
        shown[env_name_of(field_name)] = value if any(n in environ for n in names) else f"{value} (default)"
    return shown


def _show(value: object) -> str:
    if isinstance(value, SecretStr) or value is None:
        return masked(value)
    if isinstance(value, dict):  # KIMI_CODE_CUSTOM_HEADERS: a proxy's credentials may sit in a value
        return ", ".join(f"{name}: (value hidden)" for name in value) or "none"
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value) or "none"
    return str(value)
