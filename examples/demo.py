"""Offline demo: the whole path, end to end, with no Kimi account and no network.

It starts the fake Kimi service on 127.0.0.1, spawns `kimi-mcp serve` over stdio the way an MCP host does,
calls `kimi_chat` with the official `mcp` client, and prints Kimi's (fake) answer and what went over the wire.

    python examples/demo.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import anyio
from mcp import Client, StdioServerParameters

from kimi_mcp.testing.fake_kimi import FakeKimi
from kimi_mcp.testing.mcp_results import chat_meta

DEMO_KEY = "sk-kimi-test-key"


def mask(name: str, value: str) -> str:
    return value.split(" ")[0] + " ********" if name == "authorization" else value


def server_command() -> tuple[str, list[str]]:
    script = shutil.which("kimi-mcp")
    return (script, ["serve"]) if script else (sys.executable, ["-m", "kimi_mcp", "serve"])


async def main() -> None:
    with FakeKimi() as fake, tempfile.TemporaryDirectory() as home:
        command, args = server_command()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "KIMI_API_KEY": DEMO_KEY,
            "KIMI_CODE_BASE_URL": fake.base_url,
            "KIMI_MCP_HOME": home,
        }
        async with Client(StdioServerParameters(command=command, args=args, env=env)) as client:
            tools = await client.list_tools()
            print("tools:", ", ".join(tool.name for tool in tools.tools))
            result = await client.call_tool("kimi_chat", {"prompt": "Say hello to the demo."})
            print("\nkimi_chat answered:\n  " + result.content[0].text.replace("\n", "\n  "))
            fields = chat_meta(result)
            print("_meta[kimi-mcp/chat]:", {k: fields[k] for k in ("conversation_id", "turn", "usage")})

        sent = fake.messages_requests()[0]
        print(f"\nthe fake Kimi saw: {sent.method} {sent.path}")
        for name in ("authorization", "user-agent", "x-msh-platform", "x-msh-version", "x-msh-device-model"):
            print(f"  {name}: {mask(name, sent.headers.get(name, '(absent)'))}")
        print(f"  x-api-key: {sent.headers.get('x-api-key', '(absent)')}")
        body = sent.json()
        print(f"  body: model={body['model']} stream={body['stream']} prompt_cache_key={body.get('prompt_cache_key')}")


if __name__ == "__main__":
    anyio.run(main)
