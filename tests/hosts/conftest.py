"""Real MCP hosts — Claude Code, Codex CLI, Gemini CLI — running one non-interactive turn with `kimi-mcp serve`.

Each host is the pinned npm release .ci/run installs into .ci/node (or the binary at $KIMI_MCP_CLAUDE_CODE,
$KIMI_MCP_CODEX, $KIMI_MCP_GEMINI_CLI). Its model is a scripted stand-in (standins.py) that calls `kimi_chat`
six times in one session — a reply with code, a continuation, an upstream error, replies at and over the
output cap, a Chinese reply at the cap — and records each result exactly as the host passed it to its model.
Behind kimi-mcp is the fake Kimi. One host session serves all the tests of that host (hosts take seconds to
start); the tests then read what was recorded. When CI could not install a host its tests fail; on a
developer machine without it they skip.

Each host is configured with its recipe file from examples/hosts, read here (see "the recipes" below); over stdio
for the six calls, and over HTTP (two calls) against `kimi-mcp serve --transport http` with the bearer token.
Every run gets a fresh HOME and only PATH, HOME and the variables its recipe names (docs/hosts.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kimi_mcp.server.output import NON_ASCII_WEIGHT
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, RecordedRequest, Reply
from kimi_mcp.testing.http_child import serving_http
from kimi_mcp.testing.installed import installed_kimi_mcp

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_HOSTS = REPO_ROOT / "examples" / "hosts"
NODE_BIN = REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin"
KIMI_MCP = installed_kimi_mcp()  # the package as users get it: the wheel venv's script in CI
HOST_TIMEOUT_SECONDS = 180  # one whole host session; hosts are slow to start on a loaded machine
API_KEY = "sk-kimi-test-key"


def _load_standins() -> ModuleType:
    """standins.py by path: test modules and conftests cannot import their siblings under importlib mode."""
    name = "kimi_mcp_host_standins"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("standins.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


standins = _load_standins()

# -- the scenario: six kimi_chat calls in one host session -------------------------------------------------

DEFAULT_CAP = Settings.model_fields["max_output_chars"].default
FOOTER = re.compile(
    r"\[conversation_id: (kc_[0-9a-f]+) · turn (\d+)(?: · truncated to ([\d,]+) of ([\d,]+) chars; "
    r"full reply at (kimi://conversations/kc_[0-9a-f]+))?\]"
)

CODE_REPLY = (
    "Use \"double\" and 'single' quotes freely; a backslash \\ stays one backslash.\n"
    "\n"
    "```python\n"
    "def greet(name: str) -> str:\n"
    '    return f"Hello, {name}!\\n"  # a literal backslash-n in the source\n'
    "```\n"
    "\n"
    "Tabs\tand a last line."
)
CONTINUED_REPLY = "Second turn: I still remember greet()."
ERROR_DETAIL = "stand-in refused this prompt on purpose"


def weight(text: str) -> int:
    """Size as kimi-mcp's cut counts it: an ASCII character 1, any other NON_ASCII_WEIGHT."""
    return sum(1 if char < "\x80" else NON_ASCII_WEIGHT for char in text)


def sized_reply(
    label: str, size: int, line: str = "Kimi explains the code, one line at a time, as replies do. {:05d}\n"
) -> str:
    """Lines of `line` of exactly `size` weighted characters, with unique first and last lines."""
    head, tail = f"BEGIN-{label}\n", f"\nEND-{label}"
    lines, used, number = [], weight(head + tail), 0
    while used + weight(line.format(number)) <= size:
        lines.append(line.format(number))
        used += weight(lines[-1])
        number += 1
    body = head + "".join(lines) + "x" * (size - used) + tail
    assert weight(body) == size
    return body


AT_CAP_REPLY = sized_reply("AT-CAP", DEFAULT_CAP)
OVER_CAP_REPLY = sized_reply("OVER-CAP", DEFAULT_CAP + 12_000)
# Chinese prose at the cap: a third as many characters, three UTF-8 bytes and about one token each.
CJK_AT_CAP_REPLY = sized_reply("CJK-AT-CAP", DEFAULT_CAP, "这一行解释代码的一部分，就像长回复那样。第{:05d}行\n")

# The stand-in's calls, in order, and the fake Kimi's answers to them (one Kimi request per call).
PLAIN, CONTINUED, ERROR, AT_CAP, OVER_CAP, CJK_AT_CAP = range(6)
KIMI_SCRIPT = [
    Reply(text=CODE_REPLY),
    Reply(text=CONTINUED_REPLY),
    Fault(status=400, error_type="invalid_request_error", message=ERROR_DETAIL),
    Reply(text=AT_CAP_REPLY),
    Reply(text=OVER_CAP_REPLY),
    Reply(text=CJK_AT_CAP_REPLY),
]


def conversation_of(text: str) -> str | None:
    match = FOOTER.search(text)
    return match.group(1) if match else None


def _steps() -> list[Any]:
    return [
        lambda done: {"prompt": "Show me a Python greeting with quotes."},
        # The conversation id as the model would read it: parsed from the first result's text.
        lambda done: {
            "prompt": "Do you remember the function?",
            "conversation_id": conversation_of(done[PLAIN].text) or "no-id-in-the-first-result",
        },
        lambda done: {"prompt": "This one Kimi refuses."},
        lambda done: {"prompt": "A reply exactly at the cap, please."},
        lambda done: {"prompt": "A reply over the cap, please."},
        lambda done: {"prompt": "A reply in Chinese at the cap, please."},
    ]


# -- host runs --------------------------------------------------------------------------------------------


@dataclass
class HostRun:
    """What one host session left behind: the host's output, the stand-in's record, the fake Kimi's."""

    host: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    exchanges: list[Any]  # standins.ToolExchange, one per kimi_chat call, in call order
    seen: list[str]
    kimi_requests: list[RecordedRequest]
    request_log: Path
    home: Path  # the HOME the host ran with, its configuration files included
    workdir: Path  # the folder it ran in (Claude Code's --mcp-config file is there)

    def describe(self) -> str:
        return (
            f"{self.host} exited {self.returncode} after {self.seconds:.1f} s with {len(self.exchanges)} tool "
            f"result(s) recorded.\nstand-in saw:\n  " + "\n  ".join(self.seen or ["(no requests)"]) + "\n"
            f"stdout (end):\n{self.stdout[-2000:]}\nstderr (end):\n{self.stderr[-3000:]}\n"
            f"requests as the stand-in got them: {self.request_log}"
        )

    def exchange(self, index: int) -> Any:
        assert len(self.exchanges) > index, self.describe()
        return self.exchanges[index]


@dataclass(frozen=True)
class Host:
    name: str
    env_var: str
    binary_name: str
    standin: type
    run: Callable[[Host, Path, str, Path, ServerSide, dict[str, str]], subprocess.CompletedProcess[str]]

    def binary(self) -> Path:
        """Mirrors tests/server/test_inspector.py: fail when CI meant to install the host, skip otherwise."""
        configured = os.environ.get(self.env_var)
        path = Path(configured) if configured else NODE_BIN / self.binary_name
        if path.is_file() and os.access(path, os.X_OK):
            return path
        if configured or os.environ.get("CI"):
            pytest.fail(f"{self.name} is not installed at {path}: .ci/run could not install it")
        pytest.skip(f"run bash .ci/run to install the pinned {self.name} (or set {self.env_var})")


def run_host(command: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a host in its own process group, so a timeout also ends the kimi-mcp it started."""
    full_env = {"PATH": os.environ.get("PATH", ""), **env}
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=HOST_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            stderr += f"\n[test harness: killed after {HOST_TIMEOUT_SECONDS} s]"
        finally:
            _end_group(process.pid)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _end_group(pgid: int) -> None:
    """A host that exits normally stops its servers; anything left in its group is stopped here."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


PROMPT = "Ask Kimi (the kimi_chat tool) the questions of this test, then say done."

# -- the recipes, read from examples/hosts -----------------------------------------------------------------------
#
# Each host runs with its file from examples/hosts as a user would copy it. What the test changes, and only that:
# `kimi-mcp` becomes the installed script's absolute path, the `sk-kimi-…` placeholder the fake's key, the
# server's environment gains where the fake Kimi is (KIMI_CODE_BASE_URL, …: a user's defaults), and an HTTP URL's
# port becomes the test server's. References such as $KIMI_API_KEY or ${KIMI_MCP_HTTP_TOKEN} stay as written: the
# host fills them in from its environment, which the test gives the variable.

KEY_PLACEHOLDER = "sk-kimi-…"
SHELL_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class ServerSide:
    """The recipe a host runs with, and what it connects to: over stdio it starts kimi-mcp with `kimi` in its
    environment; over HTTP a `kimi-mcp serve --transport http` already serves at `url`, asking for `token`."""

    recipe: str  # its file under examples/hosts
    kimi: dict[str, str]  # the fake's variables, KIMI_API_KEY included
    url: str = ""
    token: str = ""

    def server_env(self, recipe_env: dict[str, str]) -> dict[str, str]:
        """The recipe's `env` with the key placeholder filled, plus where the fake is (all but the key)."""
        env = {key: API_KEY if value == KEY_PLACEHOLDER else value for key, value in recipe_env.items()}
        return {**{key: value for key, value in self.kimi.items() if key != "KIMI_API_KEY"}, **env}

    @property
    def transport(self) -> str:
        return HOST_RECIPES[self.recipe][1]

    def host_env(self) -> dict[str, str]:
        """The variables the recipes' references name, for the host to fill them in."""
        if self.transport == "http":
            return {"KIMI_MCP_HTTP_TOKEN": self.token}
        return {"KIMI_API_KEY": self.kimi["KIMI_API_KEY"]}

    def port_of(self, url: str) -> str:
        """The recipe's URL on the test server's port."""
        port = re.search(r":(\d+)/", self.url)
        assert port is not None, self.url
        return re.sub(r":\d+/", f":{port.group(1)}/", url, count=1)


def recipe_text(name: str) -> str:
    return (EXAMPLES_HOSTS / name).read_text(encoding="utf-8")


def shell_words(name: str, program: str, env: dict[str, str]) -> list[str]:
    """The recipe's one `program …` line, split as sh splits it, its $VARIABLEs expanded from `env`."""
    text = recipe_text(name).replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith(program)]
    return [SHELL_VARIABLE.sub(lambda m: env[m.group(1) or m.group(2)], word) for word in shlex.split(line)]


def claude_code_env(home: Path, standin_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        **extra,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": standin_url,
        "ANTHROPIC_API_KEY": "sk-ant-standin",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


def claude_print(binary: str, *options: str) -> list[str]:
    command = [binary, "-p", PROMPT, *options, "--allowedTools", "mcp__kimi__kimi_chat", "--output-format", "json"]
    return [*command, "--model", "claude-sonnet-4-5"]


# MCP_CONNECTION_NONBLOCKING=0: Claude Code 2.1 starts a `-p` turn without servers still connecting (its model may
# call WaitForMcpServers); scripts that need the tool in the first turn set this. Claude Code waits
# MCP_CONNECT_TIMEOUT_MS (default 5 s) for a server to connect; a loaded CI machine can take longer than that just
# to import the MCP SDK, so the test gives it a minute (docs/hosts.md).
CLAUDE_PRINT_ENV = {"MCP_CONNECTION_NONBLOCKING": "0", "MCP_CONNECT_TIMEOUT_MS": "60000", "MCP_TIMEOUT": "60000"}


def run_claude_code(
    host: Host, home: Path, standin_url: str, workdir: Path, server: ServerSide, extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """One `claude -p` turn after the recipe: add.sh / add-http.sh run as `claude mcp add …` (their $VARIABLEs
    expanded as sh would), .mcp.json / .mcp.http.json placed as the project's `.mcp.json` (their ${VARIABLE}s left
    for Claude Code to expand) and approved with the `enabledMcpjsonServers` setting."""
    binary = str(host.binary())
    env = claude_code_env(home, standin_url, {**extra, **server.host_env()})
    if server.recipe.endswith(".sh"):
        added = run_host(claude_mcp_add(binary, server, env), cwd=workdir, env=env)
        if added.returncode != 0:
            return added
    else:
        config = json.loads(recipe_text(server.recipe))
        entry = config["mcpServers"]["kimi"]
        if server.transport == "http":
            entry["url"] = server.port_of(entry["url"])
        else:
            assert entry["command"] == "kimi-mcp", entry
            entry["command"] = str(KIMI_MCP)
            entry["env"] = server.server_env(entry["env"])
        (workdir / ".mcp.json").write_text(json.dumps(config, indent=2))
        # A project's .mcp.json servers need the user's approval; `claude -p` cannot ask, this setting gives it.
        (home / ".claude").mkdir(exist_ok=True)
        (home / ".claude" / "settings.json").write_text(json.dumps({"enabledMcpjsonServers": ["kimi"]}))
    return run_host(claude_print(binary), cwd=workdir, env={**env, **CLAUDE_PRINT_ENV})


def claude_mcp_add(binary: str, server: ServerSide, env: dict[str, str]) -> list[str]:
    """The recipe's `claude mcp add` line with the binary's path; stdio: the installed kimi-mcp and the fake's
    variables as more `-e` options; HTTP: the test server's port."""
    words = shell_words(server.recipe, "claude mcp add", env)
    if server.transport == "http":
        return [binary, *(server.port_of(word) if word.startswith("http://") else word for word in words[1:])]
    split = words.index("--")
    [command, *args] = words[split + 1 :]
    assert command == "kimi-mcp", words
    where = [flag for key, value in server.server_env({}).items() for flag in ("-e", f"{key}={value}")]
    return [binary, *words[1:split], *where, "--", str(KIMI_MCP), *args]


def split_toml(text: str) -> tuple[str, str]:
    """A TOML file's top-level keys and its tables: the harness's own keys must go between them."""
    match = re.search(r"^\[", text, re.M)
    assert match is not None, text
    return text[: match.start()], text[match.start() :]


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def codex_recipe(server: ServerSide) -> str:
    """examples/hosts/codex/config.toml (stdio) or config.http.toml, with the test's changes made in place."""
    if server.transport == "http":
        text = recipe_text(server.recipe)
        url = tomllib.loads(text)["mcp_servers"]["kimi"]["url"]
        return text.replace(toml_string(url), toml_string(server.port_of(url)))
    text = recipe_text(server.recipe)
    entry = tomllib.loads(text)["mcp_servers"]["kimi"]
    assert entry["command"] == "kimi-mcp", entry
    env = ", ".join(f"{key} = {toml_string(value)}" for key, value in server.server_env(entry["env"]).items())
    text = re.sub(r'^command = "kimi-mcp"$', f"command = {toml_string(str(KIMI_MCP))}", text, count=1, flags=re.M)
    return re.sub(r"^env = \{.*\}$", lambda _: f"env = {{ {env} }}", text, count=1, flags=re.M)


def run_codex(
    host: Host, home: Path, standin_url: str, workdir: Path, server: ServerSide, extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The recipe, plus a model provider for the stand-in and no analytics.

    No `model`: Codex's default model, whose output limit (~48,000 chars) is what users get.
    """
    top, tables = split_toml(codex_recipe(server))
    config = f"""\
{top.rstrip()}
model_provider = "standin"

[analytics]
enabled = false

[model_providers.standin]
name = "stand-in"
base_url = {toml_string(standin_url + "/v1")}
wire_api = "responses"
env_key = "STANDIN_API_KEY"
request_max_retries = 0
stream_max_retries = 0

{tables}"""
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text(config)
    command = [str(host.binary()), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
    env = {**extra, **server.host_env(), "HOME": str(home), "STANDIN_API_KEY": "standin"}
    return run_host([*command, PROMPT], cwd=workdir, env=env)


def gemini_recipe(server: ServerSide) -> dict[str, Any]:
    """examples/hosts/gemini-cli/settings.json (stdio) or settings.http.json, with the test's changes."""
    if server.transport == "http":
        settings = json.loads(recipe_text(server.recipe))
        entry = settings["mcpServers"]["kimi"]
        entry["httpUrl"] = server.port_of(entry["httpUrl"])
        return dict(settings)
    settings = json.loads(recipe_text(server.recipe))
    entry = settings["mcpServers"]["kimi"]
    assert entry["command"] == "kimi-mcp", entry
    entry["command"] = str(KIMI_MCP)
    entry["env"] = server.server_env(entry["env"])
    return dict(settings)


def run_gemini_cli(
    host: Host, home: Path, standin_url: str, workdir: Path, server: ServerSide, extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The recipe (`mcpServers.kimi` in settings.json) plus API-key auth against the stand-in, no telemetry."""
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
        "telemetry": {"enabled": False},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        **gemini_recipe(server),
    }
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings, indent=2))
    env = {
        **extra,
        **server.host_env(),
        "HOME": str(home),
        "GEMINI_API_KEY": "standin",
        "GOOGLE_GEMINI_BASE_URL": standin_url,
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
    }
    return run_host([str(host.binary()), "--yolo", "-p", PROMPT, "--output-format", "text"], cwd=workdir, env=env)


HOSTS = {
    "claude-code": Host("Claude Code", "KIMI_MCP_CLAUDE_CODE", "claude", standins.AnthropicStandIn, run_claude_code),
    "codex": Host("Codex CLI", "KIMI_MCP_CODEX", "codex", standins.ResponsesStandIn, run_codex),
    "gemini-cli": Host("Gemini CLI", "KIMI_MCP_GEMINI_CLI", "gemini", standins.GeminiStandIn, run_gemini_cli),
}

# Every recipe of a host that runs here: its host and transport. The first of each host is the default, the one
# the six-call sessions use; tests/hosts/test_hosts.py runs the others with two calls each.
HOST_RECIPES = {
    "claude-code/add.sh": ("claude-code", "stdio"),
    "claude-code/.mcp.json": ("claude-code", "stdio"),
    "claude-code/add-http.sh": ("claude-code", "http"),
    "claude-code/.mcp.http.json": ("claude-code", "http"),
    "codex/config.toml": ("codex", "stdio"),
    "codex/config.http.toml": ("codex", "http"),
    "gemini-cli/settings.json": ("gemini-cli", "stdio"),
    "gemini-cli/settings.http.json": ("gemini-cli", "http"),
}
DEFAULT_RECIPE = {key: next(name for name, (host, _) in HOST_RECIPES.items() if host == key) for key in HOSTS}

HTTP_TOKEN = "host-test-http-token-0123456789"
SERVER_READY_SECONDS = 120.0


@contextmanager
def http_server(kimi: dict[str, str]) -> Iterator[str]:
    """examples/hosts/http-server/serve.sh's `kimi-mcp serve --transport http`, on port 0 (8765 may be taken):
    yields its URL once it says where it serves, keeps reading its stderr, stops it at the end."""
    words = shell_words("http-server/serve.sh", "kimi-mcp", {})
    command = [str(KIMI_MCP), *words[1:], "--port", "0"]
    with serving_http(command, {**kimi, "KIMI_MCP_HTTP_TOKEN": HTTP_TOKEN}, SERVER_READY_SECONDS) as url:
        yield url


def session(
    key: str,
    root: Path,
    *,
    steps: list[Any] | None = None,
    script: list[Reply | Fault] | None = None,
    settings: dict[str, str] | None = None,
    host_env: dict[str, str] | None = None,
    recipe: str | None = None,
) -> HostRun:
    """One host session — fake Kimi, stand-in, host — and what it recorded. By default the six-call scenario
    with kimi-mcp's default settings and the host's default recipe; `settings` adds KIMI_MCP_* variables to the
    server's environment, `host_env` variables to the host's; `recipe` names another of the host's files (an
    HTTP one connects the host to a served kimi-mcp)."""
    host = HOSTS[key]
    recipe = recipe or DEFAULT_RECIPE[key]
    assert HOST_RECIPES[recipe][0] == key, recipe
    host.binary()
    home, workdir, kimi_home = root / "home", root / "work", root / "kimi-home"
    for folder in (home, workdir, kimi_home):
        folder.mkdir(parents=True)
    with FakeKimi() as fake, ExitStack() as stack:
        fake.script(*(KIMI_SCRIPT if script is None else script))
        kimi = {
            "KIMI_API_KEY": API_KEY,
            "KIMI_CODE_BASE_URL": fake.base_url,
            "KIMI_CODE_OAUTH_HOST": fake.oauth_host,
            "KIMI_MCP_HOME": str(kimi_home),
            **(settings or {}),
        }
        server = ServerSide(recipe, kimi)
        if server.transport == "http":
            server = ServerSide(recipe, kimi, url=stack.enter_context(http_server(kimi)), token=HTTP_TOKEN)
        log = root / "model-requests.jsonl"
        with host.standin(_steps() if steps is None else steps, log) as standin:
            started = time.monotonic()
            done = host.run(host, home, standin.url, workdir, server, host_env or {})
            seconds = time.monotonic() - started
        return HostRun(
            host=host.name,
            returncode=done.returncode,
            stdout=done.stdout,
            stderr=done.stderr,
            seconds=seconds,
            exchanges=list(standin.exchanges),
            seen=list(standin.seen),
            kimi_requests=fake.messages_requests(),
            request_log=log,
            home=home,
            workdir=workdir,
        )


@dataclass(frozen=True)
class Scenario:
    """The calls' indexes and what the fake Kimi answered to each, for the tests to compare against."""

    plain: int = PLAIN
    continued: int = CONTINUED
    error: int = ERROR
    at_cap: int = AT_CAP
    over_cap: int = OVER_CAP
    cjk_at_cap: int = CJK_AT_CAP
    cap: int = DEFAULT_CAP
    code_reply: str = CODE_REPLY
    continued_reply: str = CONTINUED_REPLY
    error_detail: str = ERROR_DETAIL
    at_cap_reply: str = AT_CAP_REPLY
    over_cap_reply: str = OVER_CAP_REPLY
    cjk_at_cap_reply: str = CJK_AT_CAP_REPLY
    footer: re.Pattern[str] = FOOTER
    recipes: Path = EXAMPLES_HOSTS
    host_recipes: tuple[str, ...] = tuple(HOST_RECIPES)
    default_recipes: tuple[str, ...] = tuple(DEFAULT_RECIPE.values())

    @staticmethod
    def sized_reply(label: str, size: int) -> str:
        return sized_reply(label, size)


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    return Scenario()


@pytest.fixture(scope="session")
def host_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], HostRun]]:
    """Runs each host's session once per test run, on first use."""
    runs: dict[str, HostRun] = {}

    def get(key: str) -> HostRun:
        if key not in runs:
            runs[key] = session(key, tmp_path_factory.mktemp(key))
        return runs[key]

    yield get


@pytest.fixture(scope="session")
def recipe_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], HostRun]]:
    """A host session with one recipe of HOST_RECIPES, once per test run: two calls (a reply with code, its
    continuation); over HTTP to a served kimi-mcp that asks for the bearer token."""
    runs: dict[str, HostRun] = {}

    def get(recipe: str) -> HostRun:
        if recipe not in runs:
            key = HOST_RECIPES[recipe][0]
            root = tmp_path_factory.mktemp(recipe.replace("/", "-"))
            runs[recipe] = session(key, root, steps=_steps()[:2], script=KIMI_SCRIPT[:2], recipe=recipe)
        return runs[recipe]

    yield get


@pytest.fixture
def host_session(tmp_path: Path) -> Callable[..., HostRun]:
    """A session of its own for one test: `host_session("claude-code", steps=…, script=…, settings=…)`."""

    def run(key: str, **options: Any) -> HostRun:
        return session(key, tmp_path / key, **options)

    return run


@pytest.fixture(params=sorted(HOSTS))
def host_run(request: pytest.FixtureRequest, host_sessions: Callable[[str], HostRun]) -> HostRun:
    return host_sessions(request.param)
