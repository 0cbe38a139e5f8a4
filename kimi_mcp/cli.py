"""`kimi-mcp`: serve | login | logout | status | chat | upload | conversations | doctor. Settings come from the
environment (settings.py; every one in docs/configuration.md)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from kimi_mcp import errors
from kimi_mcp._version import __version__
from kimi_mcp.settings import Settings

# Said once on stderr when a person, not a host, starts the server: typing at it does nothing useful.
TERMINAL_HINT = (
    "kimi-mcp is an MCP server: it speaks MCP (JSON-RPC) on stdin/stdout and waits for an MCP host. "
    'Register it in one, e.g. `claude mcp add kimi -- kimi-mcp serve`, or try `kimi-mcp chat "hello"`. '
    "Ctrl-C exits."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kimi-mcp",
        description="MCP server that lets any MCP host use Moonshot's Kimi Code plan (kimi-for-coding).",
        epilog="Settings come from the environment (KIMI_API_KEY, KIMI_MCP_HOME, ...): see docs/configuration.md.",
    )
    parser.add_argument("--version", action="version", version=f"kimi-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the MCP server (stdio by default; what hosts spawn)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    http = serve.add_argument_group("--transport http")
    http.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    http.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one (default 8765)")
    http.add_argument("--path", default="/mcp", help="path of the MCP endpoint (default /mcp)")
    http.add_argument("--stateless", action="store_true", help="no sessions: each request stands alone")
    http.add_argument("--token-file", help="file holding the bearer token (instead of KIMI_MCP_HTTP_TOKEN)")
    http.add_argument(
        "--allowed-host", action="append", default=[], help="extra accepted Host value, e.g. kimi.example.com:443"
    )
    http.add_argument(
        "--allowed-origin", action="append", default=[], help="extra accepted Origin, e.g. https://example.com"
    )
    commands.add_parser("login", help="log in with your Kimi account (device login in the browser)")
    commands.add_parser("logout", help="forget the stored Kimi login")
    commands.add_parser("status", help="show the login state and the plan's quota")
    doctor = commands.add_parser("doctor", help="check settings, network, credential and state; say how to fix")
    doctor.add_argument("--json", action="store_true", help="print one JSON object, for scripts")
    doctor.add_argument("--offline", action="store_true", help="skip every check that needs the network")
    chat = commands.add_parser("chat", help="ask Kimi one question and print the streamed reply")
    chat.add_argument("prompt", help="the question")
    chat.add_argument("--system", help="system instructions")
    upload = commands.add_parser("upload", help="upload images or videos to Kimi and print their ms:// ids")
    upload.add_argument("files", nargs="+", metavar="FILE", help="image (JPEG, PNG, GIF, WebP) or video file")
    from kimi_mcp.conversations_command import add_parser as add_conversations_parser

    add_conversations_parser(commands)
    return parser


def say(message: str) -> None:
    """A message to the user on stderr, each line marked as ours (but never `kimi-mcp: kimi-mcp …`)."""
    for line in message.splitlines() or [""]:
        print(line if line.startswith("kimi-mcp") else f"kimi-mcp: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    if command == "chat" and not args.prompt.strip():
        # The kimi_chat tool refuses an empty prompt too: Kimi would only be asked to guess.
        say('the prompt is empty. Put the question in quotes, e.g. `kimi-mcp chat "What does this error mean?"`.')
        raise SystemExit(2)
    if command == "doctor":  # before the settings: broken settings are one of the things it reports
        from kimi_mcp.doctor.command import main as doctor

        raise SystemExit(doctor(json_output=args.json, offline=args.offline))
    try:
        settings = Settings.from_env()
    except errors.SettingsError as exc:
        say(exc.message)
        raise SystemExit(2) from None

    from kimi_mcp import logs

    logs.configure(settings.debug)
    if settings.api_key is not None:
        logs.register_secret(settings.api_key.get_secret_value())
    try:
        if command == "serve" and getattr(args, "transport", "stdio") == "http":
            _serve_http(settings, args)
        elif command == "serve":
            _serve(settings, getattr(args, "transport", "stdio"))
        elif command == "chat":
            anyio.run(_chat, settings, args.prompt, args.system)
        elif command == "upload":
            from kimi_mcp.upload_command import upload

            status = anyio.run(upload, settings, args.files)
            if status:
                raise SystemExit(status)
        elif command == "conversations":
            from kimi_mcp.conversations_command import conversations

            status = anyio.run(conversations, settings, args)
            if status:
                raise SystemExit(status)
        elif command == "login":
            from kimi_mcp.commands import login

            login(settings)
        else:
            from kimi_mcp import commands as account_commands

            status = anyio.run(getattr(account_commands, command), settings)
            if status:
                raise SystemExit(status)
    except errors.KimiMcpError as exc:
        say(exc.message)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        say("cancelled.")
        raise SystemExit(130) from None


def _serve(settings: Settings, transport: str) -> None:
    if _stdin_is_terminal():
        _exit_on_first_interrupt()
        say(TERMINAL_HINT)
    from kimi_mcp.server.app import build_server
    from kimi_mcp.server.stdio_guard import serve_stdio

    anyio.run(serve_stdio, build_server(settings))  # run("stdio"), but every request line gets an answer


def _serve_http(settings: Settings, args: argparse.Namespace) -> None:
    from kimi_mcp import logs
    from kimi_mcp.server import http

    token = _read_token_file(args.token_file) if args.token_file else None
    if token is None and settings.http_token is not None:
        token = settings.http_token.get_secret_value()
    logs.register_secret(token)
    path = args.path if args.path.startswith("/") else f"/{args.path}"
    if not 0 <= args.port <= 65535:
        say(f"--port {args.port} is not a port; use 0-65535 (0 picks a free one).")
        raise SystemExit(2)
    if token is None and not http.is_loopback(args.host):
        say(
            f"refusing to listen on {args.host} without a token: anyone who can reach it could use your Kimi plan. "
            "Set KIMI_MCP_HTTP_TOKEN (16+ characters, e.g. `openssl rand -hex 32`) or pass --token-file, "
            "or listen on 127.0.0.1."
        )
        raise SystemExit(2)
    options = http.HttpOptions(
        host=args.host,
        port=args.port,
        path=path,
        stateless=args.stateless,
        token=token,
        allowed_hosts=(*settings.allowed_hosts, *args.allowed_host),
        allowed_origins=(*settings.allowed_origins, *args.allowed_origin),
    )
    try:
        sock = http.bind(args.host, args.port)
    except OSError as exc:  # the address is taken, not ours to bind, or not a known name
        say(f"cannot listen on {http.url_of(args.host, args.port, path)}: {exc.strerror or exc}.")
        raise SystemExit(1) from None
    http.serve(settings, options, sock)


def _read_token_file(name: str) -> str:
    """The token in `name`, read once at start; a warning when others may read the file."""
    path = Path(name).expanduser()
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        say(f"--token-file {path}: cannot read it ({getattr(exc, 'strerror', None) or exc}).")
        raise SystemExit(2) from None
    if len(token) < 16:
        say(f"--token-file {path}: the token must be at least 16 characters (e.g. `openssl rand -hex 32`).")
        raise SystemExit(2)
    if mode & 0o077:
        say(f"warning: --token-file {path} can be read by other users (mode {mode & 0o777:o}); `chmod 600` it.")
    return token


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):  # closed or replaced stdin: not a person at a terminal
        return False


def _exit_on_first_interrupt() -> None:
    """Ctrl-C ends a server started at a terminal at once, with status 130 and no traceback.

    The default path cannot: the MCP SDK reads stdin in a worker thread that no cancellation reaches, so the
    server would hang until the next line was typed. At a terminal no host is attached, so there is no call to
    finish, and the store (SQLite) and the atomic credential writes are safe to stop at any point anyway.
    """

    def stop(_signum: int, _frame: object) -> None:
        say("stopped.")
        sys.stderr.flush()
        os._exit(130)

    signal.signal(signal.SIGINT, stop)


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
