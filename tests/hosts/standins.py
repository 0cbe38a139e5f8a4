"""Scripted stand-ins for the model APIs of real MCP hosts: Anthropic Messages (Claude Code), OpenAI Responses
(Codex CLI) and Gemini generateContent (Gemini CLI).

Each is a small HTTP server on 127.0.0.1 (any free port, one thread per request). When the host's main turn
offers our tool, the stand-in answers with a call of `kimi_chat`; when the tool's result comes back it answers
with the next call of its plan, and with plain text once the plan is done. It records every tool result exactly
as the host passed it on (the `tool_result` block, `function_call_output` item or `functionResponse` part), which
is what the host's real model would read. Requests the host makes on the side (titles, routing, "who speaks
next") get a harmless answer. The wire shapes follow hosts-harness measurements, summarised in docs/hosts.md.

Loaded by conftest.py by path (test modules cannot import each other under --import-mode=importlib).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

FINAL_TEXT = "Stand-in done: no more tool calls."


@dataclass
class ToolExchange:
    """One tool call the stand-in made and the result as the host handed it back."""

    index: int
    arguments: dict[str, Any]
    raw: Any  # the host's own block/item/part carrying the result, as JSON
    text: str  # every piece of text in it, in order, joined by newlines: what the model reads
    flagged_error: bool | None  # how the host marked a failed call (None: it has no such mark)


# Builds the arguments of the next call from the exchanges so far (so a call can use an earlier result).
Step = Callable[[list["ToolExchange"]], dict[str, Any]]


@dataclass
class Answer:
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b""
    events: list[bytes] = field(default_factory=list)  # SSE frames, written one by one


def sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def json_answer(data: Any, status: int = 200) -> Answer:
    return Answer(status=status, body=json.dumps(data).encode())


class ModelStandIn:
    """The shared part: HTTP, the plan of tool calls, and the record of what came back."""

    tool_name: ClassVar[str]  # the host's name for kimi_chat

    def __init__(self, steps: list[Step], log_file: Path) -> None:
        self.steps = steps
        self.exchanges: list[ToolExchange] = []
        self.seen: list[str] = []  # one line per request, for failure messages
        self._arguments: dict[int, dict[str, Any]] = {}
        self._log_file = log_file
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ModelStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # -- what each protocol defines -------------------------------------------------------------------

    def answer(self, method: str, path: str, body: Any) -> Answer:
        raise NotImplementedError

    def results_in(self, body: Any) -> list[Any]:
        """The tool results carried by a request's history, oldest first."""
        raise NotImplementedError

    def text_of(self, raw: Any) -> str:
        raise NotImplementedError

    def flag_of(self, raw: Any) -> bool | None:
        return None

    # -- the plan -------------------------------------------------------------------------------------

    def next_call(self, body: Any) -> tuple[int, dict[str, Any]] | None:
        """Record the results this request carries; return (index, arguments) of the next call, if any."""
        results = self.results_in(body)
        with self._lock:
            for index, raw in enumerate(results[len(self.exchanges) :], start=len(self.exchanges)):
                self.exchanges.append(
                    ToolExchange(index, self._arguments.get(index, {}), raw, self.text_of(raw), self.flag_of(raw))
                )
            done = len(results)
            if done >= len(self.steps):
                return None
            if done not in self._arguments:  # a retried request gets the same call again
                self._arguments[done] = self.steps[done](list(self.exchanges[:done]))
            return done, self._arguments[done]

    def note(self, line: str) -> None:
        with self._lock:
            self.seen.append(line)

    # -- HTTP -----------------------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        with self._lock, self._log_file.open("a") as log:
            log.write(json.dumps({"method": method, "path": handler.path, "body": body}) + "\n")
        try:
            answer = self.answer(method, handler.path, body)
        except Exception as exc:  # a bug here must show up in the test's message, not as a hung host
            self.note(f"{method} {handler.path}: stand-in failed: {exc!r}")
            answer = json_answer({"error": {"message": f"stand-in failed: {exc!r}"}}, status=500)
        handler.send_response(answer.status)
        handler.send_header("content-type", answer.content_type)
        if answer.events:
            handler.send_header("cache-control", "no-cache")
            handler.end_headers()
            for frame in answer.events:
                handler.wfile.write(frame)
                handler.wfile.flush()
        else:
            handler.send_header("content-length", str(len(answer.body)))
            handler.end_headers()
            handler.wfile.write(answer.body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: one request per connection, and a streamed answer simply ends when the connection closes.
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                standin._serve(self, "POST")

            def do_GET(self) -> None:
                standin._serve(self, "GET")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# -- Anthropic Messages (Claude Code) ---------------------------------------------------------------------


class AnthropicStandIn(ModelStandIn):
    """`POST /v1/messages` (Claude Code adds `?beta=true`), answered as an SSE stream."""

    tool_name = "mcp__kimi__kimi_chat"

    def answer(self, method: str, path: str, body: Any) -> Answer:
        route = path.split("?")[0]
        if method == "POST" and route == "/v1/messages/count_tokens":
            # Claude Code counts a large tool result this way before deciding whether it fits; English prose
            # and code run about four characters a token.
            self.note(f"{path}: count_tokens")
            return json_answer({"input_tokens": len("".join(_strings(body))) // 4})
        if method != "POST" or route != "/v1/messages" or not isinstance(body, dict):
            self.note(f"{method} {path}: not served")
            return json_answer({"type": "error", "error": {"type": "not_found_error", "message": path}}, 404)
        tools = [tool.get("name") for tool in body.get("tools") or []]
        if not tools:  # a side request (title, summary): no tools offered
            self.note(f"{path}: side request")
            return self._stream(body, {"type": "text", "text": ""}, {"type": "text_delta", "text": "Side answer."})
        if self.tool_name not in tools:
            self.note(f"{path}: main turn WITHOUT {self.tool_name} (the host had not connected kimi-mcp)")
            return self._final(body, f"{self.tool_name} was not offered.")
        call = self.next_call(body)
        self.note(f"{path}: main turn with {len(self.results_in(body))} result(s) -> {call and call[0]}")
        if call is None:
            return self._final(body, FINAL_TEXT)
        index, arguments = call
        block = {"type": "tool_use", "id": f"toolu_standin_{index:02d}", "name": self.tool_name, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(arguments)}
        return self._stream(body, block, delta, stop_reason="tool_use")

    def _final(self, body: dict[str, Any], text: str) -> Answer:
        return self._stream(body, {"type": "text", "text": ""}, {"type": "text_delta", "text": text})

    def _stream(
        self, body: dict[str, Any], block: dict[str, Any], delta: dict[str, Any], stop_reason: str = "end_turn"
    ) -> Answer:
        message = {
            "id": "msg_standin",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-sonnet-4-5"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 1},
        }
        events = [
            sse({"type": "message_start", "message": message}, "message_start"),
            sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start"),
            sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"),
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": 10},
                },
                "message_delta",
            ),
            sse({"type": "message_stop"}, "message_stop"),
        ]
        return Answer(content_type="text/event-stream", events=events)

    def results_in(self, body: Any) -> list[Any]:
        return [
            block
            for message in body.get("messages") or []
            if message.get("role") == "user" and isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]

    def text_of(self, raw: Any) -> str:
        content = raw.get("content")
        if isinstance(content, str):
            return content
        return "\n".join(block["text"] for block in content or [] if block.get("type") == "text")

    def flag_of(self, raw: Any) -> bool | None:
        return bool(raw.get("is_error", False))


# -- OpenAI Responses (Codex CLI) -------------------------------------------------------------------------


class ResponsesStandIn(ModelStandIn):
    """`POST /v1/responses`, answered as an SSE stream of response events."""

    tool_name = "kimi_chat"
    namespace = "mcp__kimi"

    def answer(self, method: str, path: str, body: Any) -> Answer:
        if method != "POST" or path.split("?")[0] != "/v1/responses" or not isinstance(body, dict):
            self.note(f"{method} {path}: not served")
            return json_answer({"error": {"message": f"not served: {path}"}}, 404)
        # With Codex's default model our tools are deferred: the request names the namespace in its text
        # ("Deferred tool namespaces: - mcp__kimi: …") instead of listing the tool.
        if self.namespace not in json.dumps(body):
            self.note(f"{path}: turn WITHOUT {self.namespace} (the host had not connected kimi-mcp)")
            return self._message(f"{self.namespace} was not offered.")
        call = self.next_call(body)
        self.note(f"{path}: turn with {len(self.results_in(body))} result(s) -> {call and call[0]}")
        if call is None:
            return self._message(FINAL_TEXT)
        index, arguments = call
        item = {
            "type": "function_call",
            "id": f"fc_standin_{index:02d}",
            "call_id": f"call_standin_{index:02d}",
            "name": self.tool_name,
            "namespace": self.namespace,
            "arguments": json.dumps(arguments),
            "status": "completed",
        }
        return self._events(
            [
                sse({"type": "response.output_item.added", "output_index": 0, "item": item}),
                sse({"type": "response.output_item.done", "output_index": 0, "item": item}),
            ]
        )

    def _message(self, text: str) -> Answer:
        done = {"type": "message", "id": "msg_standin", "role": "assistant", "status": "completed"}
        return self._events(
            [
                sse({"type": "response.output_item.added", "output_index": 0, "item": {**done, "content": []}}),
                sse(
                    {
                        "type": "response.output_text.delta",
                        "item_id": "msg_standin",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": text,
                    }
                ),
                sse(
                    {
                        "type": "response.output_item.done",
                        "output_index": 0,
                        "item": {**done, "content": [{"type": "output_text", "text": text, "annotations": []}]},
                    }
                ),
            ]
        )

    def _events(self, middle: list[bytes]) -> Answer:
        usage = {
            "input_tokens": 100,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 10,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 110,
        }
        events = [
            sse({"type": "response.created", "response": {"id": "resp_standin"}}),
            *middle,
            sse({"type": "response.completed", "response": {"id": "resp_standin", "usage": usage}}),
        ]
        return Answer(content_type="text/event-stream", events=events)

    def results_in(self, body: Any) -> list[Any]:
        items = body.get("input")
        items = items if isinstance(items, list) else []
        return [item for item in items if isinstance(item, dict) and item.get("type") == "function_call_output"]

    def text_of(self, raw: Any) -> str:
        output = raw.get("output")
        if isinstance(output, str):
            return output
        return "\n".join(part["text"] for part in output or [] if part.get("type") in ("input_text", "output_text"))


# -- Gemini generateContent (Gemini CLI) ------------------------------------------------------------------


class GeminiStandIn(ModelStandIn):
    """`…/models/M:generateContent` and `…:streamGenerateContent?alt=sse`."""

    tool_name = "mcp_kimi_kimi_chat"

    def answer(self, method: str, path: str, body: Any) -> Answer:
        route = path.split("?")[0]
        if method != "POST" or not route.endswith(("GenerateContent", "generateContent")) or not isinstance(body, dict):
            self.note(f"{method} {path}: not served")
            return json_answer({"error": {"code": 404, "message": f"not served: {path}"}}, 404)
        config = body.get("generationConfig") or {}
        if config.get("responseMimeType") == "application/json":  # routing, "who speaks next" and the like
            schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
            self.note(f"{route}: JSON side request")
            return self._parts(path, [{"text": json.dumps(_fill(schema))}])
        declared = [
            declaration.get("name")
            for tool in body.get("tools") or []
            for declaration in tool.get("functionDeclarations") or []
        ]
        if self.tool_name not in declared:
            self.note(f"{route}: turn WITHOUT {self.tool_name} (no tools: a side request, or kimi-mcp missing)")
            return self._parts(path, [{"text": f"{self.tool_name} was not offered."}])
        call = self.next_call(body)
        self.note(f"{route}: turn with {len(self.results_in(body))} result(s) -> {call and call[0]}")
        if call is None:
            return self._parts(path, [{"text": FINAL_TEXT}])
        _, arguments = call
        return self._parts(path, [{"functionCall": {"name": self.tool_name, "args": arguments}}])

    def _parts(self, path: str, parts: list[dict[str, Any]]) -> Answer:
        response = {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110},
        }
        if "alt=sse" in path:
            return Answer(content_type="text/event-stream", events=[sse(response)])
        return json_answer(response)

    def results_in(self, body: Any) -> list[Any]:
        return [
            part["functionResponse"]
            for content in body.get("contents") or []
            for part in content.get("parts") or []
            if isinstance(part, dict) and "functionResponse" in part
        ]

    def text_of(self, raw: Any) -> str:
        return "\n".join(_strings(raw.get("response")))

    def flag_of(self, raw: Any) -> bool | None:
        response = raw.get("response")
        return isinstance(response, dict) and "error" in response


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _fill(schema: dict[str, Any]) -> Any:
    """A value that satisfies a (Gemini or JSON) schema; enums prefer "user", which ends the turn."""
    if enum := schema.get("enum"):
        return "user" if "user" in enum else enum[0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        return {name: _fill(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return False
    return "stand-in"
