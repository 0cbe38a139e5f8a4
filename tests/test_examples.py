"""Every file in examples/ works: each host recipe parses and its command runs, and the two scripts run.

examples/hosts/ holds one file per host and transport. Each is parsed here with the parser its host uses (JSON,
TOML, a shell line), and what it states is used as written:

- a stdio recipe's command and arguments start the installed `kimi-mcp` (`installed_kimi_mcp()`: the wheel venv in
  CI) with the environment the recipe names, its placeholders filled in; an `mcp` client does an `initialize`
  round trip with it and calls `kimi_chat` against the fake Kimi, which only answers the fake's API key, so the
  recipe's variable name is checked too;
- http-server/serve.sh's command starts one `kimi-mcp serve --transport http` (on port 0 rather than 8765, which may
  be taken); each HTTP recipe's URL (its port swapped for the child's) and header, its token placeholder filled in,
  then connect, list the tools and call `kimi_chat`. The server refuses a wrong token, so the header is what
  got the client in.

`RECIPES` names every file; a file added to examples/hosts that it does not name fails
`test_every_file_in_examples_hosts_is_checked`, so no recipe goes unchecked. The real hosts that can run here also
run with these files (tests/hosts/).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from kimi_mcp import __version__
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import DEFAULT_API_KEY, DEFAULT_MODEL, FakeKimi, Fault, Reply
from kimi_mcp.testing.http_child import serving_http
from kimi_mcp.testing.installed import installed_kimi_mcp

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
HOSTS = EXAMPLES / "hosts"

API_KEY_VARIABLE = "KIMI_API_KEY"
TOKEN_VARIABLE = "KIMI_MCP_HTTP_TOKEN"
TOKEN = "test-http-token-0123456789abcdef"  # KIMI_MCP_HTTP_TOKEN wants 16 characters or more
DEFAULT_URL = "http://127.0.0.1:8765/mcp"  # where `kimi-mcp serve --transport http` serves without flags
READY_SECONDS = 120.0  # importing the MCP SDK alone took 10 s at a load average of 16 (docs/hosts.md)
CALL_SECONDS = 120.0


# -- what a recipe says ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """One host's entry for kimi-mcp, as written in its file."""

    transport: str  # "stdio" or "http"
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # VS Code's prompted secrets, by id
    entry: Mapping[str, Any] = field(default_factory=dict)  # the whole server entry, for host-specific keys


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def json_entry(document: Mapping[str, Any], servers_key: str = "mcpServers") -> Recipe:
    """The `kimi` server of a JSON config: stdio when it has a command, else HTTP at its `url` or `httpUrl`."""
    entry = document[servers_key]["kimi"]
    inputs = {item["id"]: item for item in document.get("inputs", [])}
    if "command" in entry:
        return Recipe(
            "stdio", entry["command"], tuple(entry.get("args", ())), entry.get("env", {}), inputs=inputs, entry=entry
        )
    url = entry.get("url") or entry.get("httpUrl")
    return Recipe("http", url=url, headers=entry.get("headers", {}), inputs=inputs, entry=entry)


def shell_command(path: Path, program: str) -> list[str]:
    """The one command line of a shell recipe that starts with `program`, split as sh would (no expansion)."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line for line in text.splitlines() if line.strip().startswith(program)]
    assert len(lines) == 1, f"{path}: expected one `{program}` line, found {lines}"
    return shlex.split(lines[0], comments=True)


def claude_mcp_add(path: Path) -> Recipe:
    """`claude mcp add [options] kimi -- command args…` (stdio) or `claude mcp add --transport http kimi URL`."""
    words = shell_command(path, "claude mcp add")
    assert words[:3] == ["claude", "mcp", "add"]
    rest, options, positional = words[3:], {"transport": "stdio"}, []
    env: dict[str, str] = {}
    headers: dict[str, str] = {}
    while rest:
        word = rest.pop(0)
        if word == "--":
            return Recipe("stdio", rest[0], tuple(rest[1:]), env, entry={"name": positional[0], **options})
        if word in ("-e", "--env"):
            key, _, value = rest.pop(0).partition("=")
            env[key] = value
        elif word in ("-H", "--header"):
            name, _, value = rest.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-t", "--transport"):
            options["transport"] = rest.pop(0)
        elif word in ("-s", "--scope"):
            options["scope"] = rest.pop(0)
        else:
            positional.append(word)
    [name, url] = positional
    assert options["transport"] == "http", words
    return Recipe("http", url=url, headers=headers, entry={"name": name, **options})


def codex_toml(path: Path) -> Recipe:
    """`[mcp_servers.kimi]` of a Codex config; over HTTP Codex sends `Authorization: Bearer $<bearer_token_env_var>`."""
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    entry = document["mcp_servers"]["kimi"]
    # A top-level key: TOML puts it inside the last [table] when written below one, where Codex ignores it.
    assert document["mcp_optional_startup_grace_ms"] >= 5000, "the start-up grace must be at the top level"
    assert entry["startup_timeout_sec"] >= 30
    assert entry["tool_timeout_sec"] >= Settings.model_fields["timeout_seconds"].default  # else Codex cuts calls
    if "command" in entry:
        return Recipe("stdio", entry["command"], tuple(entry["args"]), entry.get("env", {}), entry=entry)
    header = {"Authorization": "Bearer ${" + entry["bearer_token_env_var"] + "}"}
    return Recipe("http", url=entry["url"], headers=header, entry=entry)


def claude_code_json(path: Path) -> Recipe:
    recipe = json_entry(read_json(path))
    assert recipe.entry["type"] == recipe.transport  # Claude Code's .mcp.json names the transport
    return recipe


def vscode_json(path: Path) -> Recipe:
    recipe = json_entry(read_json(path), servers_key="servers")  # VS Code's key is "servers", not "mcpServers"
    assert recipe.entry["type"] == recipe.transport
    return recipe


def gemini_json(path: Path) -> Recipe:
    recipe = json_entry(read_json(path))
    # Gemini CLI: `httpUrl` is streamable HTTP (`url` would be SSE); the timeout (ms) must outlast KIMI_MCP_TIMEOUT.
    assert recipe.transport == "stdio" or "httpUrl" in recipe.entry
    assert recipe.entry["timeout"] >= Settings.model_fields["timeout_seconds"].default * 1000
    assert recipe.entry["trust"] is True
    return recipe


def plain_json(path: Path) -> Recipe:
    return json_entry(read_json(path))


def stdio_only(parse: Callable[[Path], Recipe]) -> Callable[[Path], Recipe]:
    def parse_stdio(path: Path) -> Recipe:
        recipe = parse(path)
        assert recipe.transport == "stdio", f"{path}: this host's config file takes local (stdio) servers only"
        return recipe

    return parse_stdio


def serve_script(path: Path) -> Recipe:
    """serve.sh: the `kimi-mcp serve --transport http` every HTTP recipe connects to."""
    words = shell_command(path, "kimi-mcp")
    assert f"export {TOKEN_VARIABLE}=" in path.read_text(encoding="utf-8")
    return Recipe("server", words[0], tuple(words[1:]))


# Every file under examples/hosts but README.md, and how to read it.
RECIPES: dict[str, Callable[[Path], Recipe]] = {
    "claude-code/add.sh": claude_mcp_add,
    "claude-code/add-http.sh": claude_mcp_add,
    "claude-code/.mcp.json": claude_code_json,
    "claude-code/.mcp.http.json": claude_code_json,
    "codex/config.toml": codex_toml,
    "codex/config.http.toml": codex_toml,
    "cursor/mcp.json": plain_json,
    "cursor/mcp.http.json": plain_json,
    "vscode/mcp.json": vscode_json,
    "vscode/mcp.http.json": vscode_json,
    "claude-desktop/claude_desktop_config.json": stdio_only(plain_json),
    "gemini-cli/settings.json": gemini_json,
    "gemini-cli/settings.http.json": gemini_json,
    "http-server/serve.sh": serve_script,
}


def recipe(name: str) -> Recipe:
    return RECIPES[name](HOSTS / name)


def names(transport: str) -> list[str]:
    return [name for name in RECIPES if recipe(name).transport == transport]


# -- placeholders ---------------------------------------------------------------------------------------------

# The forms a secret takes in a recipe: the value itself never (sk-kimi-… is an obvious placeholder), else a
# reference the host fills in: ${VAR} (Claude Code, Gemini), $VAR (shell, Gemini), ${env:VAR} (Cursor),
# ${input:id} (VS Code: asks once, stores it as a secret).
KEY_PLACEHOLDER = "sk-kimi-…"
REFERENCE = re.compile(r"\$\{env:(\w+)\}|\$\{input:([\w-]+)\}|\$\{(\w+)\}|\$(\w+)")


def fill(value: str, variable: str, secret: str, recipe: Recipe) -> str:
    """`value` with its one placeholder for `variable` replaced by `secret`; fails on any other secret in it."""
    if variable == API_KEY_VARIABLE and value == KEY_PLACEHOLDER:
        return secret
    found = list(REFERENCE.finditer(value))
    assert len(found) == 1, f"{value!r} should refer to ${variable} once"
    env_name, input_id, braced, bare = found[0].groups()
    if input_id is not None:
        prompt = recipe.inputs[input_id]  # an id the file's "inputs" declares, asked for as a password
        assert prompt["type"] == "promptString" and prompt["password"] is True, prompt
    else:
        assert (env_name or braced or bare) == variable, f"{value!r} refers to another variable than {variable}"
    return value[: found[0].start()] + secret + value[found[0].end() :]


def test_every_file_in_examples_hosts_is_checked() -> None:
    on_disk = {str(path.relative_to(HOSTS)) for path in HOSTS.rglob("*") if path.is_file()}
    on_disk -= {"README.md"}
    assert on_disk == set(RECIPES), "add each new recipe to RECIPES (and so to the tests below)"
    readme = (HOSTS / "README.md").read_text(encoding="utf-8")
    for name in RECIPES:
        assert f"]({name})" in readme, f"examples/hosts/README.md does not link {name}"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_parses_and_names_kimi_mcp(name: str) -> None:
    parsed = recipe(name)
    # The server's name makes the tool names hosts show (mcp__kimi__kimi_chat: docs/hosts.md).
    assert parsed.entry.get("name", "kimi") == "kimi", parsed.entry
    if parsed.transport in ("stdio", "server"):
        assert parsed.command == "kimi-mcp" and parsed.args[0] == "serve", parsed
    if parsed.transport == "stdio":
        assert parsed.args == ("serve",)
        assert set(parsed.env) <= {API_KEY_VARIABLE}, parsed.env  # a credential, nothing else to set
        for value in parsed.env.values():
            fill(value, API_KEY_VARIABLE, "x", parsed)
    if parsed.transport == "http":
        assert parsed.url == DEFAULT_URL, parsed.url
        assert set(parsed.headers) == {"Authorization"}
        assert parsed.headers["Authorization"].startswith("Bearer ")
        fill(parsed.headers["Authorization"], TOKEN_VARIABLE, "x", parsed)
    # No real-looking secret in any file: keys only as the sk-kimi-… placeholder.
    text = (HOSTS / name).read_text(encoding="utf-8")
    assert re.findall(r"sk-kimi-[^…\s\"]", text) == []


# -- stdio: the recipe's command, run ------------------------------------------------------------------------


def fake_settings(fake: FakeKimi, home: Path) -> dict[str, str]:
    """Where the fake Kimi is: what a user's machine gets from its defaults, this test from the environment."""
    return {"KIMI_CODE_BASE_URL": fake.base_url, "KIMI_CODE_OAUTH_HOST": fake.oauth_host, "KIMI_MCP_HOME": str(home)}


def command_path(command: str) -> str:
    """The installed console script for the recipe's `kimi-mcp` (every recipe names it on PATH)."""
    assert command == "kimi-mcp", command
    return str(installed_kimi_mcp())


@pytest.mark.parametrize("name", names("stdio"))
async def test_a_stdio_recipe_starts_kimi_mcp_and_answers(name: str, fake_kimi: FakeKimi, tmp_path: Path) -> None:
    parsed = recipe(name)
    # Only the variables the recipe names carry the credential: a wrong name leaves the server without a key.
    env = {key: fill(value, key, DEFAULT_API_KEY, parsed) for key, value in parsed.env.items()}
    env |= fake_settings(fake_kimi, tmp_path)
    server = StdioServerParameters(command=command_path(parsed.command), args=list(parsed.args), env=env)
    async with Client(server, mode="legacy", read_timeout_seconds=CALL_SECONDS) as client:
        assert (client.server_info.name, client.server_info.version) == ("kimi-mcp", __version__)
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert "kimi_chat" in tools
        result = await client.call_tool("kimi_chat", {"prompt": f"Hello from {name}"})
    text = "".join(block.text for block in result.content if block.type == "text")
    assert not result.is_error and f"Fake Kimi reply to: Hello from {name}" in text, text
    assert [request.headers.get("authorization") for request in fake_kimi.chat_requests()] == [
        f"Bearer {DEFAULT_API_KEY}"
    ]


# -- HTTP: serve.sh's server, each recipe's URL and header -----------------------------------------------------


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakeKimi]]:
    """serve.sh's command, run once for every HTTP recipe: its arguments plus `--port 0` (8765 may be in use),
    the token in KIMI_MCP_HTTP_TOKEN as serve.sh exports it, the fake Kimi's key as the server's credential."""
    server = recipe("http-server/serve.sh")
    command = [command_path(server.command), *server.args, "--port", "0"]
    with FakeKimi() as fake:
        env = {TOKEN_VARIABLE: TOKEN, API_KEY_VARIABLE: DEFAULT_API_KEY}
        env |= fake_settings(fake, tmp_path_factory.mktemp("kimi-home"))
        with serving_http(command, env, READY_SECONDS) as served:
            yield served, fake


def on_port_of(url: str, served: str) -> str:
    """The recipe's URL with the served port: scheme, host and path stay as the recipe wrote them."""
    port = re.search(r":(\d+)/", served)
    assert port is not None, served
    return re.sub(r":\d+/", f":{port.group(1)}/", url, count=1)


async def connect_and_chat(url: str, headers: Mapping[str, str], prompt: str) -> tuple[Any, set[str], str]:
    async with httpx2.AsyncClient(headers=dict(headers), timeout=httpx2.Timeout(30.0, read=CALL_SECONDS)) as http:
        async with Client(
            streamable_http_client(url, http_client=http), mode="legacy", read_timeout_seconds=CALL_SECONDS
        ) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool("kimi_chat", {"prompt": prompt})
            info = client.server_info
    text = "".join(block.text for block in result.content if block.type == "text")
    assert not result.is_error, text
    return info, tools, text


@pytest.mark.parametrize("name", names("http"))
async def test_an_http_recipe_reaches_the_served_kimi_mcp_with_its_header(
    name: str, http_server: tuple[str, FakeKimi]
) -> None:
    served, _fake = http_server
    parsed = recipe(name)
    url = on_port_of(parsed.url, served)
    assert url == served, (url, served)  # same host and path as the server prints: only the port differs
    headers = {key: fill(value, TOKEN_VARIABLE, TOKEN, parsed) for key, value in parsed.headers.items()}
    info, tools, text = await connect_and_chat(url, headers, f"Hello over HTTP from {name}")
    assert (info.name, info.version) == ("kimi-mcp", __version__)
    assert "kimi_chat" in tools
    assert f"Fake Kimi reply to: Hello over HTTP from {name}" in text, text


async def test_the_served_kimi_mcp_refuses_a_wrong_token(http_server: tuple[str, FakeKimi]) -> None:
    """What makes the test above a test of the header: without the right token the same server lets no one in."""
    served, _fake = http_server
    async with httpx2.AsyncClient(timeout=30.0) as http:
        for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}):
            answer = await http.post(
                served,
                headers={**headers, "Accept": "application/json, text/event-stream"},
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            )
            assert answer.status_code == 401, (headers, answer.status_code, answer.text)


# -- the scripts: KimiClient as a library, and an agent over MCP ---------------------------------------------


def run_example(script: str, *args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """examples/<script> as a user runs it, with the installed package's interpreter and its `kimi-mcp` on PATH."""
    bin_dir = installed_kimi_mcp().parent
    return subprocess.run(
        [str(bin_dir / "python"), str(EXAMPLES / script), *args],
        env={"PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def user_and_assistant_texts(request: Any) -> list[tuple[str, str]]:
    """(role, text) of each message one chat request sent to the fake."""
    out = []
    for message in request.json()["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        out.append((message["role"], "".join(block["text"] for block in blocks if block.get("type") == "text")))
    return out


def test_the_library_example_streams_one_reply(fake_kimi: FakeKimi, kimi_env: dict[str, str], tmp_path: Path) -> None:
    fake_kimi.script(Reply(text="Line one of the answer.\nLine two."))
    done = run_example("library_client.py", "Explain", "the GIL.", env={**kimi_env, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    reply, usage = done.stdout.split("\n\n(", 1)
    assert reply == "Line one of the answer.\nLine two."
    assert re.fullmatch(re.escape(DEFAULT_MODEL) + r": \d+ tokens in, \d+ out, stop: end_turn\)\n", usage), usage
    assert "[answering]" in done.stderr.splitlines()
    [request] = fake_kimi.chat_requests()
    assert user_and_assistant_texts(request) == [("user", "Explain the GIL.")]
    assert request.headers["user-agent"].startswith("kimi-mcp/")


def test_the_library_example_says_why_a_call_failed(
    fake_kimi: FakeKimi, kimi_env: dict[str, str], tmp_path: Path
) -> None:
    fake_kimi.script(Fault(status=400, error_type="invalid_request_error", message="no such thing"))
    done = run_example("library_client.py", "Hi", env={**kimi_env, "HOME": str(tmp_path)})
    assert done.returncode == 1 and done.stdout.strip() == ""
    assert "Error: Kimi rejected the request (400: no such thing)" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and DEFAULT_API_KEY not in done.stderr


def test_the_agent_example_continues_the_conversation_over_mcp(
    fake_kimi: FakeKimi, kimi_env: dict[str, str], tmp_path: Path
) -> None:
    fake_kimi.script(Reply(text="def is_palindrome(s): return s == s[::-1]"), Reply(text="It ignores case."))
    done = run_example("agent.py", "Write is_palindrome.", env={**kimi_env, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    first, second = done.stdout.split("\n\nturn 2 ")
    header = re.match(r"turn 1 \((kc_[0-9a-f]+)\):\n", first)
    assert header, first
    conversation = header.group(1)
    assert "def is_palindrome(s): return s == s[::-1]" in first
    assert second.startswith(f"({conversation}):\nIt ignores case.")
    # Kimi saw turn 1 in the second call's history: the agent only passed the conversation id back.
    [_, follow_up] = fake_kimi.chat_requests()
    texts = user_and_assistant_texts(follow_up)
    assert texts[:2] == [("user", "Write is_palindrome."), ("assistant", "def is_palindrome(s): return s == s[::-1]")]
    assert texts[2][0] == "user" and texts[2][1].startswith("Review your answer above")


# -- the recipes the docs show inline agree with these files -----------------------------------------------------

DOCS_WITH_RECIPES = ("README.md", "docs/http.md", "docs/hosts.md")
SECRET_KEYS = {"env", "headers"}  # their values are placeholders, written differently from file to file


def inline_entries(text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each `kimi` server entry a Markdown text shows as JSON or TOML: in fenced blocks and in `…` spans."""
    for block in re.findall(r"```(?:toml)\n(.*?)```", text, re.S):
        document = tomllib.loads(block)
        if "kimi" in document.get("mcp_servers", {}):
            yield "toml", document["mcp_servers"]["kimi"]
    for snippet in re.findall(r"```json\n(.*?)```", text, re.S) + re.findall(r"`(\{\"mcpServers\".*?\})`", text):
        try:
            document = json.loads(snippet)
        except json.JSONDecodeError:
            continue  # several JSON lines in one block: examples of tool calls, not a config
        servers = document.get("mcpServers") or document.get("servers") or {}
        if "kimi" in servers:
            yield "json", servers["kimi"]


def recipe_entries() -> list[tuple[str, dict[str, Any]]]:
    entries = []
    for name in RECIPES:
        path = HOSTS / name
        if path.suffix == ".toml":
            entries.append(("toml", tomllib.loads(path.read_text(encoding="utf-8"))["mcp_servers"]["kimi"]))
        elif path.suffix == ".json":
            document = read_json(path)
            entries.append(("json", (document.get("mcpServers") or document["servers"])["kimi"]))
    return entries


@pytest.mark.parametrize("doc", DOCS_WITH_RECIPES)
def test_the_recipes_the_docs_show_are_ones_examples_hosts_has(doc: str) -> None:
    """A config the docs show inline is one of the tested files, or part of one: its keys are the file's, with the
    same values (secrets aside). So a recipe fixed here but not there, or the other way round, fails."""
    recipes = recipe_entries()
    for kind, shown in inline_entries((REPO / doc).read_text(encoding="utf-8")):
        plain = {key: value for key, value in shown.items() if key not in SECRET_KEYS}
        matches = [
            entry
            for entry_kind, entry in recipes
            if entry_kind == kind and set(shown) <= set(entry) and all(entry[k] == v for k, v in plain.items())
        ]
        assert matches, f"{doc} shows a kimi server no file in examples/hosts has: {shown}"
