"""docs/configuration.md is generated from kimi_mcp/settings.py, and no setting goes undocumented.

The page is what `python -m kimi_mcp.settings_doc` prints: a setting added, renamed or re-defaulted in settings.py
without regenerating the page fails here, with the command that fixes it. A setting added without its area and
description fails too, as does an environment variable settings.py names that the page does not list.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kimi_mcp import settings, settings_doc
from kimi_mcp.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
# Every variable name settings.py spells out, whichever way it reads it (an alias, or os.environ directly).
ENV_NAME = re.compile(r"""["']((?:KIMI|PI)_[A-Z0-9_]+)["']""")


def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def test_the_page_is_what_the_generator_prints() -> None:
    assert page() == settings_doc.render(), (
        f"docs/configuration.md is out of date with kimi_mcp/settings.py: run `{settings_doc.REGENERATE}`"
    )


def test_every_variable_settings_py_names_is_on_the_page() -> None:
    named = set(ENV_NAME.findall(Path(settings.__file__).read_text(encoding="utf-8")))
    read = {name for field in Settings.model_fields.values() for name in settings_doc.environment_names(field)}
    assert "KIMI_API_KEY" in named and "PI_CACHE_RETENTION" in read  # the patterns see aliases too
    assert named >= read
    missing = sorted(name for name in named if f"`{name}`" not in page())
    assert not missing, f"settings.py reads variables docs/configuration.md does not list: {missing}"


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_has_an_area_and_a_description(name: str) -> None:
    field = Settings.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    assert extra.get("area") in settings_doc.AREAS, f"Settings.{name} needs _doc(area, ...) in settings.py"
    assert field.description and len(field.description) > 20, f"Settings.{name} needs a description"


def test_defaults_and_limits_on_the_page_are_the_settings_own() -> None:
    rows = {line.split("|")[1].strip().split(" ")[0].strip("`"): line for line in page().splitlines() if "| `" in line}
    defaults = Settings()
    assert f"`{defaults.timeout_seconds:g}`" in rows["KIMI_MCP_TIMEOUT"]
    assert f"`{defaults.max_output_chars}`" in rows["KIMI_MCP_MAX_OUTPUT_CHARS"]
    assert f"`{defaults.base_url}`" in rows["KIMI_CODE_BASE_URL"]
    # The allowed values are the words a refusal uses.
    assert "a whole number between 1 and 1,000" in rows["KIMI_MCP_MAX_CONCURRENCY"]
    assert "one of `off`, `low`, `high`, `max`" in rows["KIMI_MCP_THINKING"]


def test_secrets_are_marked_and_never_given_a_value() -> None:
    secret = [name for name, field in Settings.model_fields.items() if settings_doc.is_secret(field)]
    assert set(secret) == {"api_key", "http_token"}
    rows = [line for line in page().splitlines() if line.startswith("| `")]
    for name in secret:
        variable = settings_doc.environment_names(Settings.model_fields[name])[0]
        [row] = [row for row in rows if row.startswith(f"| `{variable}`")]
        assert "a secret: never logged or shown" in row and "| unset |" in row
    # Nothing on the page looks like a real key or token.
    assert not re.search(r"sk-[A-Za-z0-9]{8,}|[0-9a-f]{32,}", page())


def test_the_module_prints_the_page(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "kimi_mcp.settings_doc"], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    assert printed == settings_doc.render()
    assert printed.startswith("# Configuration\n")


def test_the_pages_that_point_users_at_settings_name_only_real_ones() -> None:
    """A renamed variable left behind in the README or the troubleshooting page fails here."""
    listed = {name for field in Settings.model_fields.values() for name in settings_doc.environment_names(field)}
    for name in ("README.md", "docs/troubleshooting.md", "docs/index.md"):
        named = set(re.findall(r"\b(?:KIMI|PI)_[A-Z0-9_]*[A-Z0-9]\b", (ROOT / name).read_text(encoding="utf-8")))
        assert named - listed == set(), f"{name} names variables that are not settings: {sorted(named - listed)}"
