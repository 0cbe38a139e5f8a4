"""examples/demo.py runs end to end on each wire and on the platform profile (issue 11: `KIMI_CODE_PROTOCOL=openai
python examples/demo.py` works), as a user runs it: a subprocess that starts the fake and `kimi-mcp serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def run_demo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        env={"PATH": path, "HOME": os.environ.get("HOME", "/nonexistent"), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env", "path", "budget", "backend"),
    [
        ((), {}, "/coding/v1/messages", "max_tokens=", "Kimi Code plan (anthropic wire)"),
        ((), {"KIMI_CODE_PROTOCOL": "openai"}, "/coding/v1/chat/completions", "max_completion_tokens=", "openai wire"),
        (("--platform",), {}, "/v1/chat/completions", "max_completion_tokens=", "OpenAI-compatible backend"),
    ],
)
def test_the_demo_runs_on_either_wire_and_on_the_platform(
    args: tuple[str, ...], env: dict[str, str], path: str, budget: str, backend: str
) -> None:
    done = run_demo(*args, **env)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    out = done.stdout
    assert "kimi_chat answered:\n  Fake Kimi reply to: Say hello to the demo." in out
    assert f"the fake Kimi saw: POST {path}\n" in out
    assert budget in out and "user-agent: kimi-mcp/" in out and "x-api-key: (absent)" in out
    assert backend in out
    assert "sk-kimi-test-key" not in out + done.stderr
    assert "max_tokens=" not in out if budget != "max_tokens=" else "max_completion_tokens" not in out
    if env.get("KIMI_CODE_PROTOCOL") == "openai":  # Kimi Code's OpenAI surface: the allow-list is explained
        assert "note: Kimi Code's OpenAI-style endpoint admits only allow-listed clients" in out
    if args:
        assert "quota: Usage and quota are not available on this backend" in out
