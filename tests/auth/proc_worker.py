"""Worker processes for the cross-process auth tests (run as a script; settings come from the environment).

proc_worker.py token RUN_DIR INDEX   wait for RUN_DIR/go, then TokenSource.token() and GET /v1/models
proc_worker.py chat RUN_DIR INDEX    wait for RUN_DIR/go, then one KimiClient.chat call
proc_worker.py writer SAVES          save SAVES logins in a row under the lock (to be killed with SIGKILL)
proc_worker.py login                 `kimi-mcp login` with fast polling (to be interrupted with SIGINT)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import anyio

from kimi_mcp.auth.device_flow import PollTiming
from kimi_mcp.auth.oauth import TokenResponse
from kimi_mcp.auth.store import CredentialStore, StoredLogin
from kimi_mcp.auth.terminal import login_command
from kimi_mcp.auth.tokens import TokenSource
from kimi_mcp.http import build_http_client
from kimi_mcp.settings import Settings


async def token_then_models(run_dir: Path, index: str) -> dict[str, object]:
    settings = Settings.from_env()
    async with build_http_client(settings, timeout=20) as http:
        tokens = TokenSource(settings, http, retry_delays=(0.05, 0.1))
        (run_dir / f"ready-{index}").touch()
        while not (run_dir / "go").exists():  # noqa: ASYNC110 - another process creates it: start together
            await anyio.sleep(0.002)
        token = await tokens.token()
        response = await http.get(f"{settings.base_url}/v1/models", headers={"Authorization": f"Bearer {token}"})
        return {"status": response.status_code}


async def chat(run_dir: Path, index: str) -> dict[str, object]:
    from kimi_mcp.kimi.client import KimiClient

    settings = Settings.from_env()
    async with KimiClient(settings) as kimi:
        (run_dir / f"ready-{index}").touch()
        while not (run_dir / "go").exists():  # noqa: ASYNC110 - another process creates it: start together
            await anyio.sleep(0.002)
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
