"""Offline demo: the whole path, end to end, with no Kimi account and no network.

It starts the fake Kimi service on 127.0.0.1, spawns `kimi-mcp serve` over stdio the way an MCP host does,
calls `kimi_chat` and `kimi_login_status` with the official `mcp` client, and prints Kimi's (fake) answer, what
the server says about the backend, and what went over the wire.

    python examples/demo.py                              # Kimi Code plan, Anthropic wire (the default)
    KIMI_CODE_PROTOCOL=openai python examples/demo.py    # Kimi Code plan, OpenAI wire
    python examples/demo.py --platform                   # Moonshot's pay-as-you-go platform (docs/backends.md)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import anyio
from mcp import Client, StdioServerParameters

from kimi_mcp.testing.fake_kimi import PLATFORM_MODEL, FakeKimi
from kimi_mcp.testing.mcp_results import chat_meta, status_of

DEMO_KEY = "sk-kimi-test-key"
# Settings the demo passes on to the server from its own environment (it builds the rest itself).
PASSED_THROUGH = ("KIMI_CODE_PROTOCOL", "KIMI_MCP_THINKING", "KIMI_CODE_DEBUG")


def mask(name: str, value: str) -> str:
    return value.split(" ")[0] + " ********" if name == "authorization" else value


def server_command() -> tuple[str, list[str]]:
    script = shutil.which("kimi-mcp")
    return (script, ["serve"]) if script else (sys.executable, ["-m", "kimi_mcp", "serve"])


def server_env(fake: FakeKimi, home: str, platform: bool) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "KIMI_API_KEY": DEMO_KEY,
        "KIMI_CODE_BASE_URL": fake.base_url,
        "KIMI_MCP_HOME": home,
    }
    env.update({name: os.environ[name] for name in PASSED_THROUGH if name in os.environ})
    if platform:
        # The pay-as-you-go recipe (docs/backends.md): the base URL as the platform writes it, with /v1.
        env.update(KIMI_CODE_BASE_URL=f"{fake.base_url}/v1", KIMI_CODE_PROTOCOL="openai", KIMI_MCP_MODEL=PLATFORM_MODEL)
    return env


async def main(platform: bool = False) -> None:
    with FakeKimi(profile="platform" if platform else "coding") as fake, tempfile.TemporaryDirectory() as home:
        command, args = server_command()
        env = server_env(fake, home, platform)
        async with Client(StdioServerParameters(command=command, args=args, env=env)) as client:
            tools = await client.list_tools()
            print("tools:", ", ".join(tool.name for tool in tools.tools))
            result = await client.call_tool("kimi_chat", {"prompt": "Say hello to the demo."})
            print("\nkimi_chat answered:\n  " + result.content[0].text.replace("\n", "\n  "))
            fields = chat_meta(result)
            print("_meta[kimi-mcp/chat]:", {k: fields[k] for k in ("conversation_id", "turn", "usage")})
            status = status_of(await client.call_tool("kimi_login_status", {}))
            backend = status["backend"]
            available = status.get("quota_available")
            quota = "available" if available else status.get("quota_note") or status.get("quota_error")
            print(f"\nkimi_login_status: {backend['description']} ({backend['wire']} wire), model {backend['model']}")
            print(f"  context {backend['context_tokens']:,} tokens ({backend['context_source']}); quota: {quota}")
            for note in backend.get("advice", []):
                print(f"  note: {note}")

        sent = fake.chat_requests()[0]
        print(f"\nthe fake Kimi saw: {sent.method} {sent.path}")
        for name in ("authorization", "user-agent", "x-msh-platform", "x-msh-version", "x-msh-device-model"):
            print(f"  {name}: {mask(name, sent.headers.get(name, '(absent)'))}")
        print(f"  x-api-key: {sent.headers.get('x-api-key', '(absent)')}")
        body = sent.json()
        budget = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        print(
            f"  body: model={body['model']} stream={body['stream']} {budget}={body[budget]} "
            f"thinking={body.get('thinking')} prompt_cache_key={body.get('prompt_cache_key')}"
        )


if __name__ == "__main__":
    anyio.run(main, "--platform" in sys.argv[1:])
