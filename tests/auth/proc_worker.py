"""Worker processes for the cross-process auth tests (run as a script; settings come from the environment).

proc_worker.py token RUN_DIR INDEX   touch RUN_DIR/ready-INDEX, wait for a line on stdin, then TokenSource.token()
                                     and GET /v1/models
proc_worker.py chat RUN_DIR INDEX    the same, then one KimiClient.chat call
proc_worker.py writer SAVES          save SAVES logins in a row under the lock (to be killed with SIGKILL)
proc_worker.py login                 `kimi-mcp login` with fast polling (to be interrupted with SIGINT)

The racing workers do every import and set-up before they say they are ready (8 concurrent `anthropic` imports
take seconds on a loaded 2-core machine), then block on stdin, so the parent starts them together by writing
one line to each: the race is between refreshes, not between imports.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import anyio
import anyio.to_thread

from kimi_mcp.auth.device_flow import PollTiming
from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.auth.store import CredentialStore, StoredLogin
from kimi_mcp.auth.terminal import login_command
from kimi_mcp.auth.tokens import TokenSource
from kimi_mcp.http import build_http_client
from kimi_mcp.settings import Settings


async def ready_then_wait_for_go(run_dir: Path, index: str) -> None:
    """Say this worker is set up, then wait (without polling) for the parent's start line."""
    (run_dir / f"ready-{index}").touch()
    line = await anyio.to_thread.run_sync(sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"worker {index}: no start signal")


async def token_then_models(run_dir: Path, index: str) -> dict[str, object]:
    settings = Settings.from_env()
    async with build_http_client(settings, timeout=120) as http:
        tokens = TokenSource(settings, http, retry_delays=(0.05, 0.1))
        await ready_then_wait_for_go(run_dir, index)
        token = await tokens.token()
        response = await http.get(f"{settings.base_url}/v1/models", headers={"Authorization": f"Bearer {token}"})
        return {"status": response.status_code}


async def chat(run_dir: Path, index: str) -> dict[str, object]:
    from kimi_mcp.kimi import anthropic_wire
    from kimi_mcp.kimi.client import KimiClient

    settings = Settings.from_env()
    async with KimiClient(settings) as kimi:
        # Pay the SDK's import and first construction now, not inside the race (KimiClient imports it lazily).
        _ = anthropic_wire.build_sdk(
            token="warm-up", base_url=settings.base_url, http=kimi.http, max_retries=0
        ).messages
        await ready_then_wait_for_go(run_dir, index)
        reply = await kimi.ask(f"worker {index}")
        return {"status": 200, "reply": reply}


def write_many(saves: int) -> None:
    settings = Settings.from_env()
    store = CredentialStore(settings.home)
    print("ready", flush=True)
    for n in range(saves):
        answer = TokenResponse(
            access_token=f"eyJ.access-{n}-" + "a" * 2000,  # big enough that a torn write would show
            refresh_token=f"refresh-{n}",
            expires_in=900,
        )
        with store.locked_sync():
            store.write_sync(StoredLogin.from_token_response(answer, "refresh"))


def main() -> int:
    mode = sys.argv[1]
    if mode in ("token", "chat"):
        run = token_then_models if mode == "token" else chat
        print(json.dumps(anyio.run(run, Path(sys.argv[2]), sys.argv[3])), flush=True)
        return 0
    if mode == "writer":
        write_many(int(sys.argv[2]))
        return 0
    if mode == "login":
        timing = PollTiming(min_interval=0.05, slow_down_step=0.05)
        started = time.monotonic()
        code = login_command(Settings.from_env(), sys.stderr, timing=timing, open_browser=False)
        print(json.dumps({"exit": code, "seconds": round(time.monotonic() - started, 3)}), flush=True)
        return code
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main())
