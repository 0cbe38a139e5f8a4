from pathlib import Path

import pytest

from kimi_mcp.errors import SettingsError
from kimi_mcp.settings import DEFAULT_BASE_URL, Settings, env_name_of


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.protocol == "anthropic"
    assert settings.api_key is None
    assert settings.cache_enabled


@pytest.mark.parametrize("raw", ["https://x.test/coding/v1", "https://x.test/coding/", "https://x.test/coding/v1/"])
def test_base_url_tolerates_v1_and_trailing_slash(raw: str) -> None:
    assert Settings.from_env({"KIMI_CODE_BASE_URL": raw}).base_url == "https://x.test/coding"


def test_base_url_alias_is_read() -> None:
    assert Settings.from_env({"KIMI_BASE_URL": "http://127.0.0.1:9/coding"}).base_url == "http://127.0.0.1:9/coding"


@pytest.mark.parametrize("raw", ["openai", " OpenAI ", "anthropic"])
def test_both_protocols_are_accepted_in_any_case(raw: str) -> None:
    assert Settings.from_env({"KIMI_CODE_PROTOCOL": raw}).protocol == raw.strip().lower()


def test_unknown_protocol_is_refused_with_a_clear_line() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"KIMI_CODE_PROTOCOL": "gemini"})
    assert str(err.value).startswith("KIMI_CODE_PROTOCOL:")
    assert "anthropic, openai" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("KIMI_MCP_TIMEOUT", "soon"), ("KIMI_MCP_THINKING", "medium"), ("KIMI_CODE_BASE_URL", "ftp://x")],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({name: value})
    assert str(err.value).startswith(f"{name}:")


def test_bad_api_key_shape_never_echoes_the_value() -> None:
    settings = Settings.from_env({"KIMI_API_KEY": "sk-secret-value-123"})
    assert "sk-secret-value-123" not in repr(settings)


def test_custom_headers_parse_and_home_expands(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"KIMI_CODE_CUSTOM_HEADERS": "X-Gateway: a\nX-Team: b", "KIMI_MCP_HOME": str(tmp_path / "h")}
    )
    assert settings.custom_headers == {"X-Gateway": "a", "X-Team": "b"}
    assert settings.home == tmp_path / "h"


def test_cache_retention_none_from_pi_variable() -> None:
    assert not Settings.from_env({"PI_CACHE_RETENTION": "none"}).cache_enabled
    assert not Settings.from_env({"KIMI_MCP_CACHE_RETENTION": "NONE"}).cache_enabled


def test_pi_cache_retention_values_are_accepted() -> None:
    for value in ("short", "long"):
        assert Settings.from_env({"PI_CACHE_RETENTION": value}).cache_enabled


@pytest.mark.parametrize("raw", ["Bad Name: x", "X-Ü: v", "X-Ok: caf\u00e9", "no colon here"])
def test_malformed_custom_headers_are_refused(raw: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"KIMI_CODE_CUSTOM_HEADERS": raw})
    assert str(err.value).startswith("KIMI_CODE_CUSTOM_HEADERS:")


def test_custom_header_values_may_hold_semicolons() -> None:
    assert Settings.from_env({"KIMI_CODE_CUSTOM_HEADERS": "X-Tags: a;b=c"}).custom_headers == {"X-Tags": "a;b=c"}


def test_every_bad_variable_is_reported_at_once_one_line_each() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"KIMI_MCP_TIMEOUT": "0", "KIMI_MCP_THINKING": "medium", "KIMI_MCP_MAX_RETRIES": "2"})
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("KIMI_MCP_TIMEOUT: ") and lines[1].startswith("KIMI_MCP_THINKING: ")


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("KIMI_MCP_TIMEOUT", "0", "must be a number greater than 0 and at most 3,600 (got '0')"),
        ("KIMI_MCP_TIMEOUT", "soon", "must be a number greater than 0 and at most 3,600 (got 'soon')"),
        ("KIMI_MCP_MAX_RETRIES", "11", "must be a whole number between 0 and 10 (got '11')"),
        ("KIMI_MCP_MAX_CONCURRENCY", "0", "must be a whole number between 1 and 1,000 (got '0')"),
        ("KIMI_MCP_MAX_OUTPUT_CHARS", "10", "must be a whole number between 1,000 and 10,000,000"),
        ("KIMI_MCP_CONVERSATION_MAX_AGE_DAYS", "-1", "must be a number greater than 0 (got '-1')"),
        ("KIMI_MCP_THINKING", "medium", "must be one of off, low, high, max (got 'medium')"),
        ("KIMI_MCP_CACHE_RETENTION", "forever", "must be one of default, short, long, none"),
        ("KIMI_CODE_DEBUG", "maybe", "must be 1 or 0"),
    ],
)
def test_limits_are_stated_in_words(name: str, value: str, allowed: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({name: value})
    assert str(err.value).startswith(f"{name}: {allowed}")
    assert "Input should" not in str(err.value) and "pydantic" not in str(err.value)


def test_a_bad_custom_header_value_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"KIMI_CODE_CUSTOM_HEADERS": "X-Gateway-Token: s\u00e9cret-gateway-token"})
    assert "cret-gateway-token" not in str(err.value)


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_an_empty_home_is_refused_not_the_current_folder(raw: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"KIMI_MCP_HOME": raw})
    assert str(err.value) == "KIMI_MCP_HOME: is empty; set it to a folder, or unset it to use ~/.kimi-mcp"


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        # Lines: what Moonshot's own client reads; a `;` inside a line then belongs to the value.
        ("X-A: 1\nX-B: 2", {"X-A": "1", "X-B": "2"}),
        ("X-A: 1\r\nX-B: 2; X-C: 3\n", {"X-A": "1", "X-B": "2; X-C: 3"}),
        ("X-A: a; b: c\n", {"X-A": "a; b: c"}),
        # One line: `;` separates entries when every part is `Name: Value`.
        ("X-A: 1; X-B: 2", {"X-A": "1", "X-B": "2"}),
        (" X-A : 1 ;X-B:2; ", {"X-A": "1", "X-B": "2"}),
        # ... otherwise the `;` is part of the value.
        ("X-Tags: a;b=c", {"X-Tags": "a;b=c"}),
        ("Cookie: a=1; b=2", {"Cookie": "a=1; b=2"}),
        ("X-A: 1;", {"X-A": "1;"}),
    ],
)
def test_custom_headers_by_line_or_by_semicolon(raw: str, parsed: dict[str, str]) -> None:
    assert Settings.from_env({"KIMI_CODE_CUSTOM_HEADERS": raw}).custom_headers == parsed


@pytest.mark.parametrize("raw", ["X-A: 1\nBad Name: 2", "X-A: 1\nno colon"])
def test_a_malformed_entry_among_good_ones_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"KIMI_CODE_CUSTOM_HEADERS": raw})
    assert str(err.value).startswith("KIMI_CODE_CUSTOM_HEADERS: expected 'Name: Value' entries")


def test_the_settings_table_lists_every_setting_with_its_default() -> None:
    # The table lives in docs/configuration.md, generated from settings.py (tests/test_configuration_doc.py).
    readme = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| `")}
    for name, field in Settings.model_fields.items():
        variable = env_name_of(name)
        row = next((row for key, row in rows.items() if key.startswith(f"`{variable}`")), None)
        assert row is not None, f"{variable} is missing from the settings table"
        if isinstance(field.default, int | float) and not isinstance(field.default, bool):
            # `:g` would write a large whole number such as 26214400 as 2.62144e+07.
            default = str(field.default) if isinstance(field.default, int) else f"{field.default:g}"
            assert f"`{default}`" in row, f"docs/configuration.md gives another default for {variable}"
