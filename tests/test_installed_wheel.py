"""The package as users install it: the wheel `.ci/run` builds, installed into a venv of its own
(KIMI_MCP_WHEEL_VENV, see kimi_mcp/testing/installed.py), run from a temporary folder with no PYTHONPATH, so
nothing can come from the source tree: a module the wheel forgot, or a file only a checkout has, fails here.

In CI the variable is set and a missing venv or console script is a failure, not a skip: a broken build or
install must not pass as "nothing to test". Without it (a development run) these tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from kimi_mcp._version import __version__
from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.installed import WHEEL_VENV_VARIABLE, installed_kimi_mcp, wheel_venv
from kimi_mcp.testing.mcp_results import chat_meta, reply_of, text_of

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 120.0  # seconds for a one-shot command; the import of mcp and anthropic can take several under load
CALL_TIMEOUT = 60.0

# What an installed copy reports about itself, run by the venv's own interpreter.
WHERE_FROM = """
import importlib.metadata, importlib.resources, json, kimi_mcp
dist = importlib.metadata.distribution("kimi-mcp")
print(json.dumps({
    "file": kimi_mcp.__file__,
    "version": dist.version,
    "direct_url": json.loads(dist.read_text("direct_url.json") or "{}"),
    "py_typed": importlib.resources.files("kimi_mcp").joinpath("py.typed").is_file(),
}))
"""


@pytest.fixture(scope="module")
def venv() -> Path:
    """The wheel venv CI made; fails when CI named one that is not there or has no `kimi-mcp`."""
    venv = wheel_venv()
    if venv is None:
        pytest.skip(f"{WHEEL_VENV_VARIABLE} is unset: run by .ci/run, which builds and installs the wheel")
    assert (venv / "bin" / "python").exists(), f"{WHEEL_VENV_VARIABLE}={venv} is not a venv (no bin/python)"
    script = installed_kimi_mcp()
    assert script.is_file() and os.access(script, os.X_OK), f"{WHEEL_VENV_VARIABLE}={venv} has no {script}"
    return venv


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what could point Python at the source tree, plus `extra`."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    return {key: value for key, value in os.environ.items() if key not in dropped} | extra


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT)


def test_installed_kimi_mcp_prints_the_package_version(venv: Path, tmp_path: Path) -> None:
    done = run([str(installed_kimi_mcp()), "--version"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"kimi-mcp {__version__}"


def test_installed_kimi_mcp_runs_the_wheel_venvs_own_copy_not_the_source_tree(venv: Path, tmp_path: Path) -> None:
    script = installed_kimi_mcp()
    shebang = script.read_text(encoding="utf-8").splitlines()[0]
    assert shebang.startswith("#!") and Path(shebang[2:]).parent.resolve() == (venv / "bin").resolve(), shebang

    done = run([str(venv / "bin" / "python"), "-c", WHERE_FROM], tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    module = Path(found["file"]).resolve()
    assert module.is_relative_to(venv.resolve()) and "site-packages" in module.parts, module
    assert not module.is_relative_to(ROOT / "kimi_mcp"), module  # CI's wheel venv is under ROOT/.ci, not this
    assert found["version"] == __version__
    assert found["direct_url"].get("dir_info", {}).get("editable") is not True  # a wheel, not `pip install -e`
    assert found["py_typed"] is True


async def test_installed_kimi_mcp_serves_kimi_chat_over_stdio(
    venv: Path, kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    """A host's view: `kimi-mcp serve` spawned from a folder outside the source tree, driven by the `mcp` client."""
    workdir = tmp_path / "host-project"
    workdir.mkdir()
    params = StdioServerParameters(
        command=str(installed_kimi_mcp()),
        args=["serve"],
        env={"PATH": os.environ.get("PATH", ""), **kimi_env},
        cwd=workdir,
    )
    stderr = tmp_path / "stderr.log"
    with stderr.open("w", encoding="utf-8") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=CALL_TIMEOUT) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool("kimi_chat", {"prompt": "Review this from the installed wheel"})
    print(f"--- kimi-mcp serve stderr ---\n{stderr.read_text(encoding='utf-8')}")

    assert {"kimi_chat", "kimi_login_status"} <= tools
    assert not result.is_error, text_of(result)
    assert reply_of(result) == "Fake Kimi reply to: Review this from the installed wheel"
    assert chat_meta(result)["turn"] == 1
    [sent] = fake_kimi.messages_requests()
    assert sent.headers["user-agent"] == f"kimi-mcp/{__version__}"
    assert sent.headers["authorization"] == f"Bearer {kimi_env['KIMI_API_KEY']}"
