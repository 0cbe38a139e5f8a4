"""Real MCP hosts — Claude Code, Codex CLI, Gemini CLI — running one non-interactive turn with `kimi-mcp serve`.

Each host is the pinned npm release .ci/run installs into .ci/node (or the binary at $KIMI_MCP_CLAUDE_CODE,
$KIMI_MCP_CODEX, $KIMI_MCP_GEMINI_CLI). Its model is a scripted stand-in (standins.py) that calls `kimi_chat`
six times in one session — a reply with code, a continuation, an upstream error, replies at and over the
output cap, a Chinese reply at the cap — and records each result exactly as the host passed it to its model.
Behind kimi-mcp is the fake Kimi. One host session serves all the tests of that host (hosts take seconds to
start); the tests then read what was recorded. When CI could not install a host its tests fail; on a
developer machine without it they skip.

Every run gets a fresh HOME and only PATH, HOME and the variables its recipe names (docs/hosts.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kimi_mcp.server.output import NON_ASCII_WEIGHT
from kimi_mcp.settings import Settings
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, RecordedRequest, Reply

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
NODE_BIN = REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin"
KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
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
    run: Callable[[Host, Path, str, Path, dict[str, str], dict[str, str]], subprocess.CompletedProcess[str]]

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


def run_claude_code(
    host: Host, home: Path, standin_url: str, workdir: Path, kimi: dict[str, str], extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """README recipe: `claude mcp add kimi -e …  -- kimi-mcp serve`, then one `claude -p` turn.

    MCP_CONNECTION_NONBLOCKING=0: Claude Code 2.1 starts a `-p` turn without servers still connecting
    (its model may call WaitForMcpServers); scripts that need the tool in the first turn set this.
    """
    binary = str(host.binary())
    env = {
        **extra,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": standin_url,
        "ANTHROPIC_API_KEY": "sk-ant-standin",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    flags = [flag for key, value in kimi.items() for flag in ("-e", f"{key}={value}")]
    added = run_host([binary, "mcp", "add", "kimi", *flags, "--", str(KIMI_MCP), "serve"], cwd=workdir, env=env)
    if added.returncode != 0:
        return added
    command = [binary, "-p", PROMPT, "--allowedTools", "mcp__kimi__kimi_chat", "--output-format", "json"]
    command += ["--model", "claude-sonnet-4-5"]
    # Claude Code waits MCP_CONNECT_TIMEOUT_MS (default 5 s) for the server to connect; a loaded CI machine can take
    # longer than that just to import the MCP SDK, so the test gives it a minute (docs/hosts.md).
    slow_machine = {"MCP_CONNECT_TIMEOUT_MS": "60000", "MCP_TIMEOUT": "60000"}
    return run_host(command, cwd=workdir, env={**env, "MCP_CONNECTION_NONBLOCKING": "0", **slow_machine})


# Codex starts its first turn without servers not up after ~1-1.5 s; kimi-mcp takes ~2 s (more on a busy
# machine). The README recipe sets this grace; it costs nothing once the server is up.
CODEX_STARTUP_GRACE_MS = 15_000


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def run_codex(
    host: Host, home: Path, standin_url: str, workdir: Path, kimi: dict[str, str], extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """README recipe ([mcp_servers.kimi] plus the top-level start-up grace), and a provider for the stand-in.

    No `model`: Codex's default model, whose output limit (~48,000 chars) is what users get.
    """
    server_env = ", ".join(f"{key} = {toml_string(value)}" for key, value in kimi.items())
    config = f"""\
mcp_optional_startup_grace_ms = {CODEX_STARTUP_GRACE_MS}
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

[mcp_servers.kimi]
command = {toml_string(str(KIMI_MCP))}
args = ["serve"]
env = {{ {server_env} }}
startup_timeout_sec = 30
tool_timeout_sec = 600
"""
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text(config)
    command = [str(host.binary()), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
    return run_host([*command, PROMPT], cwd=workdir, env={**extra, "HOME": str(home), "STANDIN_API_KEY": "standin"})


def run_gemini_cli(
    host: Host, home: Path, standin_url: str, workdir: Path, kimi: dict[str, str], extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """README recipe (`mcpServers.kimi` in settings.json) plus API-key auth against the stand-in, no telemetry."""
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
        "telemetry": {"enabled": False},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        "mcpServers": {
            "kimi": {"command": str(KIMI_MCP), "args": ["serve"], "env": kimi, "timeout": 600_000, "trust": True}
        },
    }
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings, indent=2))
    env = {
        **extra,
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


def session(
    key: str,
    root: Path,
    *,
    steps: list[Any] | None = None,
    script: list[Reply | Fault] | None = None,
    settings: dict[str, str] | None = None,
    host_env: dict[str, str] | None = None,
) -> HostRun:
    """One host session — fake Kimi, stand-in, host — and what it recorded. By default the six-call scenario
    with kimi-mcp's default settings; `settings` adds KIMI_MCP_* variables to the server's environment and
    `host_env` variables to the host's."""
    host = HOSTS[key]
    host.binary()
    home, workdir, kimi_home = root / "home", root / "work", root / "kimi-home"
    for folder in (home, workdir, kimi_home):
        folder.mkdir(parents=True)
    with FakeKimi() as fake:
        fake.script(*(KIMI_SCRIPT if script is None else script))
        kimi = {
            "KIMI_API_KEY": API_KEY,
            "KIMI_CODE_BASE_URL": fake.base_url,
            "KIMI_CODE_OAUTH_HOST": fake.oauth_host,
            "KIMI_MCP_HOME": str(kimi_home),
            **(settings or {}),
        }
        log = root / "model-requests.jsonl"
        with host.standin(_steps() if steps is None else steps, log) as standin:
            started = time.monotonic()
            done = host.run(host, home, standin.url, workdir, kimi, host_env or {})
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
    readme: Path = README

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


@pytest.fixture
def host_session(tmp_path: Path) -> Callable[..., HostRun]:
    """A session of its own for one test: `host_session("claude-code", steps=…, script=…, settings=…)`."""

    def run(key: str, **options: Any) -> HostRun:
        return session(key, tmp_path / key, **options)

    return run


@pytest.fixture(params=sorted(HOSTS))
def host_run(request: pytest.FixtureRequest, host_sessions: Callable[[str], HostRun]) -> HostRun:
    return host_sessions(request.param)
