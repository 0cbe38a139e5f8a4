"""Every setting kimi-mcp reads, with its environment name, default and validation, in one place.

Names follow kimi-wire.md §1: the `KIMI_*`/`KIMI_CODE_*` names that users of the pi provider already set,
and our own under `KIMI_MCP_`. `Settings.from_env()` turns a bad value into one `SettingsError` line that
names the variable and what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from kimi_mcp.errors import SettingsError

DEFAULT_BASE_URL = "https://api.kimi.com/coding"
DEFAULT_OAUTH_HOST = "https://auth.kimi.com"
# The public client id of Moonshot's open-source CLI (kimi-wire.md §3).
DEFAULT_OAUTH_CLIENT_ID = "17e5f671-d194-4dfb-9706-5516cb48c098"
DEFAULT_MODEL = "kimi-for-coding"
CONTEXT_WINDOW_TOKENS = 262_144
# The smallest host limit on one text block decides (docs/hosts.md): Gemini CLI shows a block over ~40,000
# characters as head and tail only, Codex cuts at ~48,000 with its default model, Claude Code saves a result over
# 50,000 to a file. 36,000 leaves a reply plus its footer and a note whole in all three; non-ASCII characters weigh
# 3 each in the cut (server/output.py), which keeps CJK text under the hosts' token limits too.
DEFAULT_MAX_OUTPUT_CHARS = 36_000

ThinkingLevel = Literal["off", "low", "high", "max"]
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseModel):
    """kimi-mcp's configuration. Build it with `Settings.from_env()`; every field can also be passed directly."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    api_key: SecretStr | None = Field(None, validation_alias=_env("KIMI_API_KEY", "api_key"))
    base_url: str = Field(DEFAULT_BASE_URL, validation_alias=_env("KIMI_CODE_BASE_URL", "KIMI_BASE_URL", "base_url"))
    oauth_host: str = Field(
        DEFAULT_OAUTH_HOST, validation_alias=_env("KIMI_CODE_OAUTH_HOST", "KIMI_OAUTH_HOST", "oauth_host")
    )
    oauth_client_id: str = Field(
        DEFAULT_OAUTH_CLIENT_ID, validation_alias=_env("KIMI_CODE_OAUTH_CLIENT_ID", "oauth_client_id")
    )
    protocol: Literal["anthropic"] = Field("anthropic", validation_alias=_env("KIMI_CODE_PROTOCOL", "protocol"))
    debug: bool = Field(False, validation_alias=_env("KIMI_CODE_DEBUG", "debug"))
    custom_headers: dict[str, str] = Field(
        default_factory=dict, validation_alias=_env("KIMI_CODE_CUSTOM_HEADERS", "custom_headers")
    )
    home: Path = Field(
        default_factory=lambda: Path.home() / ".kimi-mcp", validation_alias=_env("KIMI_MCP_HOME", "home")
    )
    model: str = Field(DEFAULT_MODEL, validation_alias=_env("KIMI_MCP_MODEL", "model"))
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        600.0, validation_alias=_env("KIMI_MCP_TIMEOUT", "timeout_seconds")
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        2, validation_alias=_env("KIMI_MCP_MAX_RETRIES", "max_retries")
    )
    # pi's PI_CACHE_RETENTION also knows `short` and `long`; Kimi has no retention knob, so both mean "on".
    cache_retention: Literal["default", "short", "long", "none"] = Field(
        "default", validation_alias=_env("KIMI_MCP_CACHE_RETENTION", "PI_CACHE_RETENTION", "cache_retention")
    )
    max_output_chars: Annotated[int, Field(ge=1000, le=10_000_000)] = Field(
        DEFAULT_MAX_OUTPUT_CHARS, validation_alias=_env("KIMI_MCP_MAX_OUTPUT_CHARS", "max_output_chars")
    )
    # kimi-wire.md §9: the service answers 403 "concurrent request limit" past ~30 requests in flight per account.
    max_concurrency: Annotated[int, Field(ge=1, le=1000)] = Field(
        30, validation_alias=_env("KIMI_MCP_MAX_CONCURRENCY", "max_concurrency")
    )
    thinking: ThinkingLevel = Field("off", validation_alias=_env("KIMI_MCP_THINKING", "thinking"))
    conversation_max_age_days: Annotated[float, Field(gt=0)] = Field(
        30.0, validation_alias=_env("KIMI_MCP_CONVERSATION_MAX_AGE_DAYS", "conversation_max_age_days")
    )

    @field_validator("base_url", "oauth_host", mode="before")
    @classmethod
    def _normalise_url(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        url = value.strip().rstrip("/")
        if url.endswith("/v1"):
            url = url[: -len("/v1")]
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://api.kimi.com/coding")
        return url

    @field_validator("protocol", mode="before")
    @classmethod
    def _known_protocol(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "openai":
            raise ValueError("'openai' is not supported yet; use 'anthropic' (the default)")
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("custom_headers", mode="before")
    @classmethod
    def _parse_headers(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        headers: dict[str, str] = {}
        for line in value.splitlines():
            if not line.strip():
                continue
            name, sep, header_value = line.partition(":")
            name, header_value = name.strip(), header_value.strip()
            if not sep or not _HEADER_NAME.fullmatch(name):
                raise ValueError("expected lines of the form 'Name: Value' with an ASCII header name")
            if not all(32 <= ord(ch) < 127 or ch == "\t" for ch in header_value):
                raise ValueError(f"the value of {name} must be printable ASCII")
            headers[name] = header_value
        return headers

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cache_retention", "thinking", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("home", mode="before")
    @classmethod
    def _expand_home(cls, value: object) -> object:
        return Path(value).expanduser() if isinstance(value, str) else value

    @property
    def cache_enabled(self) -> bool:
        return self.cache_retention != "none"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read settings from `environ` (default `os.environ`); raise `SettingsError` naming the bad variable."""
        source = dict(os.environ if environ is None else environ)
        data: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            for env_name in alias.choices if isinstance(alias, AliasChoices) else ():
                if isinstance(env_name, str) and env_name.isupper() and env_name in source:
                    data[name] = source[env_name]
                    break
        data.update(overrides)
        try:
            return cls.model_validate(data, by_name=True)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, source)) from None


def env_name_of(field_name: str) -> str:
    """The main environment variable of a setting (for messages and docs)."""
    alias = Settings.model_fields[field_name].validation_alias
    assert isinstance(alias, AliasChoices)
    return str(alias.choices[0])


def _describe(exc: ValidationError, source: Mapping[str, str]) -> str:
    error = exc.errors()[0]
    field_name = str(error["loc"][0]) if error["loc"] else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if field_name in Settings.model_fields:
        alias = Settings.model_fields[field_name].validation_alias
        names = [n for n in getattr(alias, "choices", []) if isinstance(n, str) and n.isupper()]
        used = next((n for n in names if n in source), names[0] if names else field_name)
        return f"{used}: {message}"
    return message
