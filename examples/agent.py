"""An agent that delegates to Kimi through kimi-mcp, as an MCP host does: `kimi_chat`, then a follow-up turn.

    export KIMI_API_KEY=sk-kimi-…        # or run `kimi-mcp login` once
    python examples/agent.py "Write a Python function that checks whether a string is a palindrome."

It starts `kimi-mcp serve` over stdio with the official `mcp` client, asks the task, then asks Kimi to review its
own answer in the same conversation: the second call passes back the `conversation_id` of the first, so Kimi sees
the whole history (stored by kimi-mcp, not resent by the agent). A program reads the id from the result's
`_meta["kimi-mcp/chat"]`; a model reads it from the footer line of the text.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

CHAT_META_KEY = "kimi-mcp/chat"
REVIEW = "Review your answer above: one bug or edge case it misses, or 'none', in one sentence."


def server() -> StdioServerParameters:
    """`kimi-mcp serve` from PATH, with this process's KIMI_* settings (an MCP client passes on no others)."""
    command = shutil.which("kimi-mcp")
    command, args = (command, ["serve"]) if command else (sys.executable, ["-m", "kimi_mcp", "serve"])
    settings = {name: value for name, value in os.environ.items() if name.startswith("KIMI_")}
    return StdioServerParameters(command=command, args=args, env=settings)


def text_of(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


async def chat(client: Client, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One kimi_chat call: its text (reply and footer) and its `_meta` fields; an error result stops the agent."""
    result = await client.call_tool("kimi_chat", arguments)
    if result.is_error:  # the text says what went wrong and what to do (e.g. the login URL and code)
        raise SystemExit(text_of(result))
    return text_of(result), dict((result.meta or {})[CHAT_META_KEY])


async def run(task: str) -> None:
    async with Client(server()) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert "kimi_chat" in tools, f"kimi-mcp offers {sorted(tools)}"

        answer, meta = await chat(client, {"prompt": task})
        print(f"turn {meta['turn']} ({meta['conversation_id']}):\n{answer}\n")

        # The follow-up names the conversation; Kimi gets turn 1 from kimi-mcp's store.
        review, meta = await chat(client, {"prompt": REVIEW, "conversation_id": meta["conversation_id"]})
        print(f"turn {meta['turn']} ({meta['conversation_id']}):\n{review}")


def main() -> None:
    task = " ".join(sys.argv[1:]) or "Write a Python function that checks whether a string is a palindrome."
    anyio.run(run, task)


if __name__ == "__main__":
    main()
