"""Where the installed `kimi-mcp` lives, for tests that must run the package as users get it.

`.ci/run` builds the wheel, installs it into a venv of its own and exports that venv's folder as
`KIMI_MCP_WHEEL_VENV`; tests that check "the installed package" (the wheel end-to-end run, the host recipes) run
its `kimi-mcp` from there, away from the source tree. Outside CI, without the variable, they run the console
script of the interpreter running the tests (an editable install in a development venv).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

WHEEL_VENV_VARIABLE = "KIMI_MCP_WHEEL_VENV"


def wheel_venv() -> Path | None:
    """The venv holding the installed wheel, when CI made one."""
    configured = os.environ.get(WHEEL_VENV_VARIABLE)
    return Path(configured) if configured else None


def installed_kimi_mcp() -> Path:
    """The `kimi-mcp` console script to run: the wheel venv's when CI made one, else this interpreter's."""
    venv = wheel_venv()
    bin_dir = venv / "bin" if venv is not None else Path(sys.executable).parent
    return bin_dir / "kimi-mcp"
