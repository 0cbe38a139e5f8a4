from pathlib import Path

import pytest

from kimi_mcp.errors import SettingsError
from kimi_mcp.settings import DEFAULT_BASE_URL, Settings


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


def test_openai_protocol_is_refused_with_a_clear_line() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"KIMI_CODE_PROTOCOL": "openai"})
    assert str(err.value).startswith("KIMI_CODE_PROTOCOL:")
    assert "not supported yet" in str(err.value)
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
