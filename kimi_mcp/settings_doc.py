"""docs/configuration.md, generated from the settings themselves (kimi_mcp/settings.py) so the two cannot drift.

    python -m kimi_mcp.settings_doc            # print the page
    python -m kimi_mcp.settings_doc --write    # rewrite docs/configuration.md in this checkout

Each `Settings` field carries its area and description (`settings._doc`); the environment names, the default and
the allowed values come from the field's alias, default and constraints — the same words `Settings.from_env()`
uses when it refuses a value. tests/test_configuration_doc.py fails when the page and this output differ.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

from kimi_mcp.settings import Area, Settings, _allowed

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
REGENERATE = "python -m kimi_mcp.settings_doc --write"

AREAS: dict[Area, str] = {
    "credentials": "Credentials and the state folder",
    "backend": "Backend, model and wire",
    "output": "Output and conversations",
    "files": "Files and media",
    "limits": "Timeouts and limits",
    "http": "HTTP transport (`serve --transport http` only)",
    "debugging": "Debugging",
}

INTRO = f"""\
# Configuration

<!-- Generated from kimi_mcp/settings.py by `{REGENERATE}`: edit the settings, not this page. -->

kimi-mcp reads every setting from its environment. In a host, put them in the server's `env` block (examples in
the [README](../README.md#use-it) and [hosts.md](hosts.md)); for `kimi-mcp serve --transport http`, in the
service's environment ([http.md](http.md)). Names in parentheses are aliases read when the first name is unset:
the `KIMI_*`/`KIMI_CODE_*` names are the ones Moonshot's clients and the pi provider use, the `KIMI_MCP_*` names
are kimi-mcp's own.

A bad value stops the command (exit status 2) before anything runs. Every bad variable is reported at once, one
line each, naming it and what is allowed, e.g.
`kimi-mcp: KIMI_MCP_TIMEOUT: must be a number greater than 0 and at most 3,600 (got '0')`.
The "allowed" column below is that same wording. Secrets (the API key, the HTTP token) are never logged or
shown, not even in errors; `kimi-mcp doctor` shows the settings with them masked.

The HTTP client also honours the usual `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, `SSL_CERT_FILE` and
`SSL_CERT_DIR` ([troubleshooting.md](troubleshooting.md#a-proxy-or-tls-interception)).
"""


def render() -> str:
    """The whole page, one table per area in `AREAS` order, settings in their order in `Settings`."""
    fields = Settings.model_fields
    parts = [INTRO]
    for area, title in AREAS.items():
        names = [name for name, field in fields.items() if _extra(field).get("area") == area]
        if not names:
            continue
        parts.append(f"\n## {title}\n\n| variable | default | allowed | meaning |\n|---|---|---|---|\n")
        parts.extend(_row(name, fields[name]) for name in names)
    return "".join(parts)


def environment_names(field: FieldInfo) -> list[str]:
    """The environment variables a field is read from, main name first (what `Settings.from_env()` looks up)."""
    alias = field.validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else []
    return [name for name in choices if isinstance(name, str) and name.isupper()]


def _extra(field: FieldInfo) -> dict[str, object]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _row(name: str, field: FieldInfo) -> str:
    main, *aliases = environment_names(field)
    variable = f"`{main}`" + "".join(f" (`{alias}`)" for alias in aliases)
    extra = _extra(field)
    default = str(extra.get("default") or _default_in_words(field))
    allowed = str(extra.get("allowed") or _allowed_in_words(name))
    if is_secret(field):
        allowed += "; a secret: never logged or shown"
    meaning = field.description or ""
    return f"| {variable} | {default} | {allowed} | {_cell(meaning)} |\n"


def _default_in_words(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None or value in ((), {}, ""):
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"`{value:g}`"  # 600.0 reads as 600
    return f"`{value}`"


def _allowed_in_words(name: str) -> str:
    words = _allowed(name)
    if words is None:  # free-form text: settings._doc must then say what is allowed
        raise ValueError(f"Settings.{name} needs `allowed=` in its _doc(): its type does not say it")
    words = words.removeprefix("must be ")
    if words.startswith("one of "):  # choices, typed as they are
        return "one of " + ", ".join(f"`{choice}`" for choice in words.removeprefix("one of ").split(", "))
    return words


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def is_secret(field: FieldInfo) -> bool:
    return SecretStr in getattr(field.annotation, "__args__", (field.annotation,))


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    text = render()
    if args == ["--write"]:
        DOC_PATH.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {DOC_PATH}", file=sys.stderr)
    elif not args:
        sys.stdout.write(text)
    else:
        sys.exit(f"usage: python -m kimi_mcp.settings_doc [--write]\n{__doc__}")


if __name__ == "__main__":
    main()
