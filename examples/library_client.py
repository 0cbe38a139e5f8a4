"""kimi-mcp as a Python library: one chat with Kimi through `KimiClient`, no MCP server involved.

    export KIMI_API_KEY=sk-kimi-…        # or run `kimi-mcp login` once
    python examples/library_client.py "Explain Python's GIL in two sentences."

Settings come from the environment, exactly as for `kimi-mcp serve` (KIMI_API_KEY, KIMI_MCP_MODEL,
KIMI_MCP_THINKING, KIMI_CODE_BASE_URL, …; see the README). The reply is printed as it streams; what the stream is
doing (queued, waiting, thinking, answering) goes to stderr, and the token usage follows the reply.
"""

from __future__ import annotations

import sys

import anyio

from kimi_mcp.errors import KimiMcpError
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.kimi.models import ChatRequest, Message, StreamProgress, TextBlock
from kimi_mcp.settings import Settings


async def ask(prompt: str) -> int:
    """Stream one reply to `prompt`; 0 on success, 1 (with the reason on stderr) on any failure."""
    try:
        settings = Settings.from_env()  # the same variables the server reads; a bad value raises SettingsError
        request = ChatRequest(
            model=settings.model,
            thinking=settings.thinking,
            messages=[Message(role="user", content=[TextBlock(text=prompt)])],
        )
        # One KimiClient holds one connection pool and the login; `async with` closes them at the end.
        async with KimiClient(settings) as kimi:
            result = await kimi.chat(request, on_progress=Progress().show)
    except KimiMcpError as exc:  # every failure (no login, quota, upstream error) is one of these, in words
        print(f"\nError: {exc}", file=sys.stderr)
        return 1
    usage = result.usage
    print(
        f"\n\n({result.model}: {usage.prompt_tokens} tokens in, {usage.output_tokens} out, stop: {result.stop_reason})"
    )
    return 0


class Progress:
    """The stream as it goes: each new phase once on stderr, the reply's text on stdout as it arrives."""

    def __init__(self) -> None:
        self.phase = ""

    async def show(self, progress: StreamProgress) -> None:
        if progress.phase != self.phase:
            self.phase = progress.phase
            print(f"[{progress.phase}]", file=sys.stderr, flush=True)
        if progress.new_text:
            sys.stdout.write(progress.new_text)
            sys.stdout.flush()


def main() -> None:
    prompt = " ".join(sys.argv[1:]) or "Say hello in one short sentence."
    sys.exit(anyio.run(ask, prompt))


if __name__ == "__main__":
    main()
