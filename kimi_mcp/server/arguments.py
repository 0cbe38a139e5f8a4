"""Bad tool arguments as a model should read them: each field, what it allows, and what was sent.

Left to the SDK, a refused argument reaches the model as pydantic's report ("Error executing tool kimi_chat:
1 validation error for kimi_chatArguments … [type=literal_error, input_value='extreme', input_type=str] For
further information visit https://errors.pydantic.dev/…", from `Tool.run` in mcp/server/mcpserver/tools/
base.py). So a server middleware checks a `tools/call` first, with the very argument model the SDK builds from
the tool function (`func_metadata`), and answers a refused call itself with an `isError` result; the wording of
what is allowed comes from the tool's published input schema, so it always matches what hosts were told.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.utilities.context_injection import find_context_parameter
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata, func_metadata
from mcp_types import CallToolResult, TextContent
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from kimi_mcp import errors

SHOWN_VALUE_CHARS = 64


@dataclass(frozen=True)
class _Tool:
    metadata: FuncMetadata
    properties: dict[str, Any]


class ArgumentCheck:
    """A `ServerMiddleware`: refuses a call to a checked tool whose arguments do not validate, readably."""

    def __init__(self) -> None:
        self._tools: dict[str, _Tool] = {}

    def add(self, name: str, fn: Callable[..., Any]) -> None:
        """Check calls to tool `name`, registered from `fn`, as the SDK will validate them."""
        context = find_context_parameter(fn)
        metadata = func_metadata(fn, skip_names=[context] if context else [])
        schema = metadata.arg_model.model_json_schema(by_alias=True)
        self._tools[name] = _Tool(metadata, dict(schema.get("properties", {})))

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and isinstance(ctx.params, Mapping):
            refused = self.refusal(ctx.params.get("name"), ctx.params.get("arguments"))
            if refused is not None:
                return refused
        return await call_next(ctx)

    def refusal(self, name: object, arguments: object) -> CallToolResult | None:
        """The error result for these arguments, or None when they are fine (or not ours to check)."""
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None or not isinstance(arguments, dict | None):
            return None
        try:
            tool.metadata.validate_arguments(arguments or {})
        except ValidationError as exc:
            message = errors.InvalidArguments(str(name), problems(exc.errors(), tool.properties)).message
            # "Error:" in the text itself, like every kimi-mcp error: Codex does not show its model isError.
            return CallToolResult(content=[TextContent(type="text", text=f"Error: {message}")], is_error=True)
        return None


def problems(details: list[ErrorDetails], properties: dict[str, Any]) -> list[str]:
    """One line per refused field (pydantic reports each member of a union separately: the first one speaks)."""
    lines: dict[str, str] = {}
    for detail in details:
        field = str(detail["loc"][0]) if detail["loc"] else "arguments"
        if field in lines:
            continue
        schema = properties.get(field, {})
        if detail["type"] == "missing":
            lines[field] = f"{field} is required ({allowed(schema)})"
        else:
            lines[field] = f"{field} must be {allowed(schema)} (got {shown(detail['input'])})"
    return list(lines.values())


def allowed(schema: Mapping[str, Any]) -> str:
    """What a JSON schema property accepts, in words."""
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        words = " or ".join(allowed(option) for option in options) or "null"
        return f"{words}, or null" if len(options) < len(schema["anyOf"]) else words
    if "enum" in schema:
        choices = [f"'{value}'" if isinstance(value, str) else json.dumps(value) for value in schema["enum"]]
        return choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]
    kind = schema.get("type")
    if kind == "string":
        least = schema.get("minLength")
        return f"a string of at least {least} character{'' if least == 1 else 's'}" if least else "a string"
    if kind == "integer":
        return "a whole number" + _range(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return "a number" + _range(schema.get("minimum"), schema.get("maximum"))
    if kind == "boolean":
        return "true or false"
    return f"a JSON {kind}" if isinstance(kind, str) else "a valid value"


def _range(low: object, high: object) -> str:
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    return f" of at most {high}" if high is not None else ""


def shown(value: object) -> str:
    """The refused value as JSON (what the model sent), cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "…"
