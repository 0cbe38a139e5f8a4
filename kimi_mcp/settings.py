"""Every setting kimi-mcp reads, with its environment name, default and validation, in one place.

Names follow docs/kimi-api.md §1: the `KIMI_*`/`KIMI_CODE_*` names that users of the pi provider already set,
and our own under `KIMI_MCP_`. `Settings.from_env()` reports every bad value at once in one `SettingsError`, one
line per variable, naming it and what is allowed (limits come from the field constraints below).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

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
# The public client id of Moonshot's open-source CLI (docs/kimi-api.md §3).
DEFAULT_OAUTH_CLIENT_ID = "17e5f671-d194-4dfb-9706-5516cb48c098"
DEFAULT_MODEL = "kimi-for-coding"
# The context window assumed for a model GET /v1/models does not list with a length (docs/backends.md): Kimi Code's
# `kimi-for-coding` and the Kimi K2 models have 262,144 tokens (docs/kimi-api.md §1).
CONTEXT_WINDOW_TOKENS = 262_144
# The smallest host limit on one text block decides (docs/hosts.md): Gemini CLI shows a block over ~40,000
# characters as head and tail only, Codex cuts at ~48,000 with its default model, Claude Code saves a result over
# 50,000 to a file. 36,000 leaves a reply plus its footer and a note whole in all three; non-ASCII characters weigh
# 3 each in the cut (server/output.py), which keeps CJK text under the hosts' token limits too.
DEFAULT_MAX_OUTPUT_CHARS = 36_000
# KIMI_MCP_STREAM_IDLE_SECONDS' default: a chat stream silent this long has stalled (docs/reliability.md).
STREAM_IDLE_SECONDS = 120.0

ThinkingLevel = Literal["off", "low", "high", "max"]
# Which of Kimi's chat surfaces to speak (docs/kimi-api.md §1): `anthropic` (POST /v1/messages, no allow-list) or
# `openai` (POST /v1/chat/completions: on Kimi Code only allow-listed clients, §2; the wire of OpenAI-compatible
# backends such as Moonshot's pay-as-you-go platform).
WireProtocol = Literal["anthropic", "openai"]
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
_HEADER_ENTRY = re.compile(r"\s*[!#$%&'*+\-.^_`|~0-9A-Za-z]+\s*:")  # "Name:" at the start of an entry


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


# Where each setting is listed in docs/configuration.md (settings_doc.py), in this order.
Area = Literal["credentials", "backend", "output", "files", "limits", "http", "debugging"]


def _doc(area: Area, text: str, *, default: str | None = None, allowed: str | None = None) -> dict[str, Any]:
    """A setting's documentation, kept on its `Field` so docs/configuration.md is generated from here alone.

    `default` and `allowed` (Markdown) are needed only where the field's default value or its type and limits do
    not say it in words (settings_doc.py derives them otherwise). Validation never reads any of this.
    """
    extra: dict[str, str] = {"area": area}
    if default is not None:
        extra["default"] = default
    if allowed is not None:
        extra["allowed"] = allowed
    return {"description": text, "json_schema_extra": extra}


class Settings(BaseModel):
    """kimi-mcp's configuration. Build it with `Settings.from_env()`; every field can also be passed directly."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    api_key: SecretStr | None = Field(
        None,
        validation_alias=_env("KIMI_API_KEY", "api_key"),
        **_doc(
            "credentials",
            "Kimi Code API key (or a Moonshot platform or gateway key, [backends.md](backends.md)); takes precedence "
            "over a stored login. Blank counts as unset.",
            allowed="a key",
        ),
    )
    base_url: str = Field(
        DEFAULT_BASE_URL,
        validation_alias=_env("KIMI_CODE_BASE_URL", "KIMI_BASE_URL", "base_url"),
        **_doc(
            "backend",
            "API base; a trailing `/v1` or `/` is tolerated. Moonshot's pay-as-you-go platform: "
            "`https://api.moonshot.ai/v1` (China: `https://api.moonshot.cn/v1`); [backends.md](backends.md).",
            allowed="`http(s)://` URL",
        ),
    )
    oauth_host: str = Field(
        DEFAULT_OAUTH_HOST,
        validation_alias=_env("KIMI_CODE_OAUTH_HOST", "KIMI_OAUTH_HOST", "oauth_host"),
        **_doc(
            "credentials",
            "The device-login host `kimi-mcp login` and token refreshes talk to "
            "([authentication.md](authentication.md)).",
            allowed="`http(s)://` URL",
        ),
    )
    oauth_client_id: str = Field(
        DEFAULT_OAUTH_CLIENT_ID,
        validation_alias=_env("KIMI_CODE_OAUTH_CLIENT_ID", "oauth_client_id"),
        **_doc(
            "credentials",
            "OAuth client id of the device login: by default the public id of Moonshot's open-source CLI "
            "([kimi-api.md §3](kimi-api.md#3-oauth-device-login)).",
            allowed="text",
        ),
    )
    protocol: WireProtocol = Field(
        "anthropic",
        validation_alias=_env("KIMI_CODE_PROTOCOL", "protocol"),
        **_doc(
            "backend",
            "Chat wire: `anthropic` (`/v1/messages`, open to any client with a Kimi Code key) or `openai` "
            "(`/v1/chat/completions`: on Kimi Code only allow-listed clients, so it answers 403 there; use it for "
            "Moonshot's platform and OpenAI-compatible gateways). [Which to use](backends.md#which-one-to-use).",
        ),
    )
    debug: bool = Field(
        False,
        validation_alias=_env("KIMI_CODE_DEBUG", "debug"),
        **_doc("debugging", "DEBUG logs on stderr (secrets are always redacted).", default="off"),
    )
    custom_headers: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=_env("KIMI_CODE_CUSTOM_HEADERS", "custom_headers"),
        **_doc(
            "backend",
            "Extra request headers, e.g. for a gateway or proxy; they can never set `User-Agent`, auth or `X-Msh-*` "
            "([the exact rule](authentication.md#identity-headers)). Values are never echoed in errors.",
            allowed="`Name: Value` lines, or `A: 1; B: 2` on one line",
        ),
    )
    home: Path = Field(
        default_factory=lambda: Path.home() / ".kimi-mcp",
        validation_alias=_env("KIMI_MCP_HOME", "home"),
        **_doc(
            "credentials",
            "The state folder: stored login, device id, conversations, upload cache. Created 0700 (with any "
            "missing parents); an existing folder keeps its mode and is refused if others can write to it "
            "([the home folder](authentication.md#the-home-folder)).",
            default="`~/.kimi-mcp` (Windows: `%USERPROFILE%\\.kimi-mcp`)",
            allowed="a folder only you can write to; not empty",
        ),
    )
    model: str = Field(
        DEFAULT_MODEL,
        validation_alias=_env("KIMI_MCP_MODEL", "model"),
        **_doc(
            "backend",
            "Model id; on Moonshot's platform one it lists, e.g. `kimi-k2-0905-preview` (`kimi-mcp status` shows "
            "the list).",
            allowed="text",
        ),
    )
    # The model's context window in tokens, for the output budget (docs/backends.md). Unset: what GET /v1/models
    # lists for the model, else CONTEXT_WINDOW_TOKENS. For a model listed without one (or a backend without a list).
    context_tokens: int | None = Field(
        None,
        ge=1024,
        le=10_000_000,
        validation_alias=_env("KIMI_MCP_CONTEXT_TOKENS", "context_tokens"),
        **_doc(
            "backend",
            "The model's context window in tokens, from which the reply budget is computed; set it for a model "
            "listed without one (e.g. `moonshot-v1-auto`) or a backend without `/v1/models` "
            "([the reply budget](backends.md#the-reply-budget)).",
            default=f"unset: what `/v1/models` lists for the model, else {CONTEXT_WINDOW_TOKENS:,}",
        ),
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        600.0,
        validation_alias=_env("KIMI_MCP_TIMEOUT", "timeout_seconds"),
        **_doc(
            "limits",
            "Seconds one Kimi call may take in all: the wait for a free slot, model lookup, token refresh and reply "
            "with its retries (not the wait behind an earlier turn of the same conversation). A host's own tool "
            "timeout should be longer ([hosts.md](hosts.md)).",
        ),
    )
    # The longest a chat stream may stay silent (docs/reliability.md): the wait for the answer's first byte and any
    # gap between two of its events. Past it a request that got no answer is retried like a reset connection,
    # and a reply that stalled mid-stream is an error, long before KIMI_MCP_TIMEOUT would end the call.
    stream_idle_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        STREAM_IDLE_SECONDS,
        validation_alias=_env("KIMI_MCP_STREAM_IDLE_SECONDS", "stream_idle_seconds"),
        **_doc(
            "limits",
            "Seconds a chat request may wait with nothing arriving: for the answer to begin (then it is retried like "
            "a reset connection) or between two events of a reply (then the call ends with an error saying the "
            "stream stalled) "
            "([the stream idle limit](reliability.md#the-stream-idle-limit-kimi_mcp_stream_idle_seconds)).",
        ),
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        2,
        validation_alias=_env("KIMI_MCP_MAX_RETRIES", "max_retries"),
        **_doc(
            "limits",
            "Retries of a rate-limited, busy or failed request (so at most this plus one attempts); "
            "[the retry policy](reliability.md#the-retry-policy).",
        ),
    )
    # pi's PI_CACHE_RETENTION also knows `short` and `long`; Kimi has no retention knob, so both mean "on".
    cache_retention: Literal["default", "short", "long", "none"] = Field(
        "default",
        validation_alias=_env("KIMI_MCP_CACHE_RETENTION", "PI_CACHE_RETENTION", "cache_retention"),
        **_doc(
            "backend",
            "`none` sends no cache key (`prompt_cache_key`, `metadata.user_id`); the others all mean on "
            "([prompt caching](conversations.md#prompt-caching)).",
        ),
    )
    max_output_chars: Annotated[int, Field(ge=1000, le=10_000_000)] = Field(
        DEFAULT_MAX_OUTPUT_CHARS,
        validation_alias=_env("KIMI_MCP_MAX_OUTPUT_CHARS", "max_output_chars"),
        **_doc(
            "output",
            "Replies longer than this are cut for the host, a non-ASCII character counting 3; the full text stays "
            "readable as a resource. Raising it needs the host's limit raised too "
            "([raising the cap](hosts.md#raising-the-cap)).",
        ),
    )
    # docs/kimi-api.md §9: the service answers 403 "concurrent request limit" past ~30 requests in flight per account.
    max_concurrency: Annotated[int, Field(ge=1, le=1000)] = Field(
        30,
        validation_alias=_env("KIMI_MCP_MAX_CONCURRENCY", "max_concurrency"),
        **_doc(
            "limits",
            "Kimi calls in flight at once per server; excess calls are queued (Kimi refuses about 30 per account, "
            "so lower it when several servers or clients share one).",
        ),
    )
    thinking: ThinkingLevel = Field(
        "off",
        validation_alias=_env("KIMI_MCP_THINKING", "thinking"),
        **_doc(
            "backend",
            "Default thinking level of `kimi_chat` (a call's `thinking` argument overrides it; "
            "[thinking](conversations.md#thinking)).",
        ),
    )
    conversation_max_age_days: Annotated[float, Field(gt=0)] = Field(
        30.0,
        validation_alias=_env("KIMI_MCP_CONVERSATION_MAX_AGE_DAYS", "conversation_max_age_days"),
        **_doc("output", "Conversations idle longer than this are deleted ([expiry](conversations.md#expiry))."),
    )
    # `serve --transport http` (server/http.py): the bearer token every MCP request must carry, the Host and
    # Origin values a proxy in front may use besides the loopback ones, the request body cap and the shutdown grace.
    http_token: SecretStr | None = Field(
        None,
        validation_alias=_env("KIMI_MCP_HTTP_TOKEN", "http_token"),
        **_doc(
            "http",
            "The bearer token every MCP request must carry (`Authorization: Bearer …`); `--token-file` reads it "
            "from a file instead. Required to listen beyond loopback. Make one with `openssl rand -hex 32`.",
            allowed="16 characters or more",
        ),
    )
    allowed_hosts: tuple[str, ...] = Field(
        (),
        validation_alias=_env("KIMI_MCP_ALLOWED_HOSTS", "allowed_hosts"),
        **_doc(
            "http",
            "`Host` values accepted besides the loopback ones (a hostname behind a proxy); others get 421.",
            allowed="comma-separated `host[:port]` (`host:*` for any port)",
        ),
    )
    allowed_origins: tuple[str, ...] = Field(
        (),
        validation_alias=_env("KIMI_MCP_ALLOWED_ORIGINS", "allowed_origins"),
        **_doc(
            "http",
            "Browser `Origin` values accepted besides the loopback ones; others get 403.",
            allowed="comma-separated origins, e.g. `https://example.com`",
        ),
    )
    http_max_body_bytes: Annotated[int, Field(ge=1024, le=1_073_741_824)] = Field(
        26_214_400,
        validation_alias=_env("KIMI_MCP_HTTP_MAX_BODY_BYTES", "http_max_body_bytes"),
        **_doc("http", "Largest request body (25 MiB); a larger one gets 413."),
    )
    shutdown_grace_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        30.0,
        validation_alias=_env("KIMI_MCP_SHUTDOWN_GRACE_SECONDS", "shutdown_grace_seconds"),
        **_doc("http", "On SIGTERM/SIGINT, how long calls in flight may finish before they are stopped."),
    )
    # Media (kimi/media.py, docs/media.md): the largest file accepted (Moonshot's CLI refuses over 100 MB,
    # docs/kimi-api.md §7), and the size above which an image is uploaded rather than sent inline.
    max_media_bytes: Annotated[int, Field(ge=1, le=10_737_418_240)] = Field(
        100_000_000,
        validation_alias=_env("KIMI_MCP_MAX_MEDIA_BYTES", "max_media_bytes"),
        **_doc(
            "files",
            "Largest image or video accepted (100 MB, as Moonshot's CLI); a larger one is refused before anything "
            "is sent ([media.md](media.md#types-and-limits)).",
        ),
    )
    upload_threshold_bytes: Annotated[int, Field(ge=0, le=2_097_152)] = Field(
        1_048_576,
        validation_alias=_env("KIMI_CODE_UPLOAD_THRESHOLD_BYTES", "upload_threshold_bytes"),
        **_doc(
            "files",
            "Images larger than this are uploaded to Kimi's Files API (`ms://` id); smaller ones go inline; videos "
            "are always uploaded ([inline or uploaded](media.md#inline-or-uploaded)).",
        ),
    )
    # Files as context (context_files/, docs/files.md): a larger file is skipped, with its reason, unread.
    max_file_bytes: Annotated[int, Field(ge=1, le=16_777_216)] = Field(
        524_288,
        validation_alias=_env("KIMI_MCP_MAX_FILE_BYTES", "max_file_bytes"),
        **_doc(
            "files",
            "Largest file read as context for `kimi_chat`'s `files` (512 KiB); a larger one is skipped, with its "
            "reason, before it is read ([files.md](files.md)).",
        ),
    )
    # The folders whose files kimi-mcp may read for a caller (access.py); empty: the server's working folder.
    allowed_dirs: tuple[Path, ...] = Field(
        (),
        validation_alias=_env("KIMI_MCP_ALLOWED_DIRS", "allowed_dirs"),
        **_doc(
            "files",
            "Where kimi-mcp may read the files named in `media`, `files` and `kimi_upload_media`; a client's roots "
            "can only narrow it. Unset, a stdio host's roots replace the working folder "
            "([which files kimi-mcp may read](media.md#which-files-kimi-mcp-may-read)).",
            default="unset: the server's working folder",
            allowed="absolute folders, separated by `:` (`;` on Windows); `~` is expanded",
        ),
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

    @field_validator("custom_headers", mode="before")
    @classmethod
    def _parse_headers(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        headers: dict[str, str] = {}
        for line in _header_entries(value):
            name, sep, header_value = line.partition(":")
            name, header_value = name.strip(), header_value.strip()
            if not sep or not _HEADER_NAME.fullmatch(name):
                raise ValueError(
                    "expected 'Name: Value' entries, one per line (or separated by ';' on a single line), "
                    "each with an ASCII header name"
                )
            if not all(32 <= ord(ch) < 127 or ch == "\t" for ch in header_value):
                raise ValueError(f"the value of {name} must be printable ASCII")
            headers[name] = header_value
        return headers

    @field_validator("api_key", "http_token", "context_tokens", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("http_token", mode="after")
    @classmethod
    def _long_enough_token(cls, value: SecretStr | None) -> SecretStr | None:
        # Short tokens can be guessed, and logs.register_secret ignores values under 8 characters.
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("must be at least 16 characters (e.g. the output of `openssl rand -hex 32`)")
        return SecretStr(value.get_secret_value().strip()) if value is not None else None

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _path_list(cls, value: object) -> object:
        """os.pathsep-separated, like PATH (`:` on Unix); each entry must be absolute once `~` is expanded."""
        if not isinstance(value, str):
            return value
        dirs = tuple(Path(part.strip()).expanduser() for part in value.split(os.pathsep) if part.strip())
        relative = [str(d) for d in dirs if not d.is_absolute()]
        if relative:
            raise ValueError(f"entries must be absolute folders (got {', '.join(relative)[:80]})")
        return dirs

    @field_validator("cache_retention", "thinking", "protocol", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("home", mode="before")
    @classmethod
    def _expand_home(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not value.strip():
            # Path("") is the current folder: credentials would land wherever the host happened to start us.
            raise ValueError("is empty; set it to a folder, or unset it to use ~/.kimi-mcp")
        return Path(value).expanduser()

    @property
    def cache_enabled(self) -> bool:
        return self.cache_retention != "none"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read settings from `environ` (default `os.environ`); raise `SettingsError` naming every bad variable."""
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


def _header_entries(raw: str) -> list[str]:
    """The `Name: Value` entries of KIMI_CODE_CUSTOM_HEADERS.

    Lines, as Moonshot's own client reads the variable (docs/kimi-api.md §2). A value with no line break may also
    list entries separated by `;` (handy where a newline is hard to type), but only when every part starts with
    `Name:`; otherwise the `;` belongs to the value (`X-Tags: a;b=c` is one header).
    """
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) != 1 or "\n" in raw or "\r" in raw:
        return lines
    parts = [part for part in lines[0].split(";") if part.strip()]
    if len(parts) > 1 and all(_HEADER_ENTRY.match(part) for part in parts):
        return parts
    return lines


def _describe(exc: ValidationError, source: Mapping[str, str]) -> str:
    """One line per bad variable: `NAME: what is wrong and what is allowed`."""
    lines: dict[str, str] = {}
    for error in exc.errors():
        field_name = str(error["loc"][0]) if error["loc"] else ""
        if field_name in lines:
            continue
        if field_name not in Settings.model_fields:
            lines[field_name] = str(error["msg"]).removeprefix("Value error, ")
            continue
        alias = Settings.model_fields[field_name].validation_alias
        names = [n for n in getattr(alias, "choices", []) if isinstance(n, str) and n.isupper()]
        used = next((n for n in names if n in source), names[0] if names else field_name)
        lines[field_name] = f"{used}: {_problem(field_name, error)}"
    return "\n".join(lines.values())


def _problem(field_name: str, error: Mapping[str, object]) -> str:
    if error["type"] == "value_error":  # our own validators: their text already says what is allowed
        return str(error["msg"]).removeprefix("Value error, ")
    allowed = _allowed(field_name)
    if allowed is None:
        return str(error["msg"])
    # Only plain numbers, switches and choices reach here, never a key or a header value: safe to echo.
    got = repr(error["input"]) if isinstance(error["input"], str) else None
    return f"{allowed} (got {got[:40]})" if got else allowed


def _allowed(field_name: str) -> str | None:
    """What a field accepts, in words, from its type and constraints; None for free-form text."""
    field = Settings.model_fields[field_name]
    kind = field.annotation
    if get_origin(kind) in (Union, UnionType) and type(None) in get_args(kind):  # an optional number: unset is None
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    if get_origin(kind) is Literal:
        return "must be one of " + ", ".join(str(choice) for choice in get_args(kind))
    if kind is bool:
        return "must be 1 or 0 (true/false, yes/no and on/off work too)"
    if kind not in (int, float):
        return None
    noun = "a whole number" if kind is int else "a number"
    # The constraints are annotated-types objects (Ge, Gt, Le, Lt): read their one attribute by name.
    limits = {name: getattr(m, name) for m in field.metadata for name in ("ge", "gt", "le", "lt") if hasattr(m, name)}
    if "ge" in limits and "le" in limits:
        return f"must be {noun} between {limits['ge']:,} and {limits['le']:,}"
    words = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
    bounds = [f"{words[name]} {value:,}" for name, value in limits.items()]
    return f"must be {noun}" + (" " + " and ".join(bounds) if bounds else "")
