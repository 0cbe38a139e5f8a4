"""`kimi-mcp`: serve | login | logout | status | chat. Settings come from the environment (settings.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import anyio

from kimi_mcp import errors
from kimi_mcp._version import __version__
from kimi_mcp.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kimi-mcp",
        description="MCP server that lets any MCP host use Moonshot's Kimi Code plan (kimi-for-coding).",
        epilog="Configuration is read from the environment: see README.md (KIMI_API_KEY, KIMI_MCP_HOME, ...).",
    )
    parser.add_argument("--version", action="version", version=f"kimi-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the MCP server (stdio by default; what hosts spawn)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    commands.add_parser("login", help="log in with your Kimi account (device login in the browser)")
    commands.add_parser("logout", help="forget the stored Kimi login")
    commands.add_parser("status", help="show the login state and the plan's quota")
    chat = commands.add_parser("chat", help="ask Kimi one question and print the streamed reply")
    chat.add_argument("prompt", help="the question")
    chat.add_argument("--system", help="system instructions")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    try:
        settings = Settings.from_env()
    except errors.SettingsError as exc:
        print(f"kimi-mcp: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None

    from kimi_mcp import logs

    logs.configure(settings.debug)
    if settings.api_key is not None:
        logs.register_secret(settings.api_key.get_secret_value())
    try:
        if command == "serve":
            _serve(settings, getattr(args, "transport", "stdio"))
        elif command == "chat":
            anyio.run(_chat, settings, args.prompt, args.system)
        elif command == "login":
            from kimi_mcp.commands import login

            login(settings)
        else:
            from kimi_mcp import commands as account_commands

            anyio.run(getattr(account_commands, command), settings)
    except errors.KimiMcpError as exc:
        print(f"kimi-mcp: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("kimi-mcp: cancelled.", file=sys.stderr)
        raise SystemExit(130) from None


def _serve(settings: Settings, transport: str) -> None:
    if transport != "stdio":
        print("kimi-mcp: --transport http is not available yet; use stdio (the default).", file=sys.stderr)
        raise SystemExit(2)
    from kimi_mcp.server.app import build_server

    build_server(settings).run("stdio")


async def _chat(settings: Settings, prompt: str, system: str | None) -> None:
    from kimi_mcp.kimi.client import KimiClient
    from kimi_mcp.kimi.models import ChatRequest, Message, StreamProgress, TextBlock

    async def show(progress: StreamProgress) -> None:
        if progress.new_text:
            sys.stdout.write(progress.new_text)
            sys.stdout.flush()

    request = ChatRequest(
        model=settings.model,
        system=system,
        thinking=settings.thinking,
        messages=[Message(role="user", content=[TextBlock(text=prompt)])],
    )
    async with KimiClient(settings) as kimi:
        result = await kimi.chat(request, on_progress=show)
    sys.stdout.write("\n")
    if result.note:
        print(f"({result.note})", file=sys.stderr)
