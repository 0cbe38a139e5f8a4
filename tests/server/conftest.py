"""Fixtures shared by the server tests that drive the MCP Inspector CLI (stdio and HTTP)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def inspector_binary() -> Path:
    """The pinned Inspector CLI: a failure (not a skip) when .ci/run was meant to install it and did not."""
    configured = os.environ.get("KIMI_MCP_INSPECTOR")
    path = Path(configured) if configured else REPO_ROOT / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    if configured or os.environ.get("CI"):
        pytest.fail(f"the MCP Inspector CLI is not installed at {path}: .ci/run could not install it")
    pytest.skip("run bash .ci/run to install the pinned Inspector CLI")
