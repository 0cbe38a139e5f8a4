"""Secret scan (issue 13, item 5): the main flows run with sentinel secrets and KIMI_CODE_DEBUG=1, then everything
a user, a host or Kimi could see is searched for them.

Flows: an API key over stdio (chat, media by path and inline, retried 5xx, upstream errors that echo the key), an
account login (the device flow against the fake, then two refreshes forced by revoking the access token, through
chat and the Files API), and streamable HTTP with its bearer token (a stored login refreshed on first use, a wrong
token, no token). Searched: the server's stderr, every tool result (text and `_meta`), every notification the client
got, every resource, every file under KIMI_MCP_HOME but credentials.json (the SQLite file, its -wal and -shm, taken
while the server runs and again after it stopped), and the fake's log of what reached Kimi (headers and bodies of
every request, every upload's description).

Where a secret belongs, and nowhere else: credentials.json; `Authorization: Bearer <key or access token>` on
requests to Kimi's API; the refresh token in the body of a refresh, the device code in the body of a device poll
(docs/kimi-api.md §3, §4). The MCP HTTP token reaches kimi-mcp only, never Kimi. A secret counts as leaked if any
distinctive piece of it shows up (its random part, or 16 characters from its start or end), not only whole.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from kimi_mcp.auth.store import CREDENTIALS_FILE
from kimi_mcp.testing.client_setup import store_issued_login
from kimi_mcp.testing.fake_kimi import FakeKimi, Fault, RecordedRequest
from kimi_mcp.testing.http_child import http_child, http_client
from kimi_mcp.testing.mcp_results import chat_meta, text_of

pytestmark = pytest.mark.anyio

KIMI_MCP = Path(sys.executable).parent / "kimi-mcp"
CALL_TIMEOUT = 60.0
# No `sk-` or `eyJ` shape: only redaction by value can hide these.
API_KEY = "SENTINELapikey0f1e2d3c4b5a69788796a5b4"
HTTP_TOKEN = "SENTINELhttptoken7c6b5a4f3e2d1c0b9a8"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00" + bytes(range(256))
OAUTH_TOKEN_PATH = "/api/oauth/token"
FORM = "application/x-www-form-urlencoded"


def pieces(secret: str) -> set[str]:
    """What betrays `secret`: the whole, 16 characters from either end, and a JWT's random signature part.

    A JWT's header and much of its claims are the same for every token (not secret); its signature is not.
    """
    found = {secret}
    if secret.startswith("eyJ") and secret.count(".") == 2:
        signature = secret.rsplit(".", 1)[1]
        return found | {signature, signature[:16], signature[-16:]}
    if len(secret) >= 24:
        found |= {secret[:16], secret[-16:]}
    return found


@dataclass
class Seen:
    """Everything gathered from one flow, by where it came from."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    blobs: list[tuple[str, bytes]] = field(default_factory=list)

    def text(self, where: str, value: str) -> None:
        self.texts.append((where, value))

    def result(self, where: str, result: Any) -> Any:
        """A tool result, whole (text and `_meta`), as the host receives it."""
        self.text(where, result.model_dump_json())
        return result

    def home(self, home: Path, when: str) -> list[str]:
        """Every file under KIMI_MCP_HOME but credentials.json; returns their names (to show the WAL was there)."""
        names = []
        for path in sorted(home.rglob("*")):
            if path.is_file() and path.name != CREDENTIALS_FILE:
                self.blobs.append((f"{when}: {path.name}", path.read_bytes()))
                names.append(path.name)
        return names

    def stored(self, needle: str) -> bool:
        """Whether the home folder's files hold `needle` (a control: the scan read the store itself)."""
        return any(needle.encode() in blob for _, blob in self.blobs)

    def leaks(self, secrets: list[str]) -> list[str]:
        hits = []
        for secret in secrets:
            for piece in pieces(secret):
                hits += [f"{where}: {piece[:12]}…" for where, text in self.texts if piece in text]
                hits += [f"{where}: {piece[:12]}…" for where, blob in self.blobs if piece.encode() in blob]
        return sorted(set(hits))


def kimi_leaks(fake: FakeKimi, secrets: list[str], bearers: set[str]) -> list[str]:
    """Secrets in what reached Kimi, outside the places the protocol puts them.

    `bearers`: the credentials that may go as `Authorization: Bearer` to Kimi's API (never to the OAuth host).
    """
    hits = []
    for number, request in enumerate(list(fake.requests)):
        where = f"request {number} {request.method} {request.path}"
        headers = dict(request.headers)
        authorization = headers.pop("authorization", None)
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if request.path.startswith("/api/oauth/") or scheme != "Bearer" or value not in bearers:
                hits.append(f"{where}: Authorization {scheme} {value[:12]}…")
        outside = json.dumps(headers) + _body_outside_its_secrets(request)
        hits += [f"{where}: {p[:12]}…" for secret in secrets for p in pieces(secret) if p in outside]
    for number, upload in enumerate(list(fake.uploads)):
        described = repr(
            {**upload.__dict__, "headers": {k: v for k, v in upload.headers.items() if k != "authorization"}}
        )
        hits += [f"upload {number}: {p[:12]}…" for secret in secrets for p in pieces(secret) if p in described]
    return sorted(set(hits))


def _body_outside_its_secrets(request: RecordedRequest) -> str:
    """The body as text, minus the one secret field a token request carries by protocol (docs/kimi-api.md §3)."""
    body = request.body.decode("utf-8", errors="replace")
    if request.path != OAUTH_TOKEN_PATH:
        return body
    form = request.form()
    carried = {"refresh_token": "refresh_token", "urn:ietf:params:oauth:grant-type:device_code": "device_code"}
    form.pop(carried.get(form.get("grant_type", ""), ""), None)
    return json.dumps(form)


def bearer_values(fake: FakeKimi) -> list[str]:
    return [r.headers["authorization"].split(" ", 1)[1] for r in fake.requests if "authorization" in r.headers]


def refreshes(fake: FakeKimi) -> int:
    return fake.count(OAUTH_TOKEN_PATH, grant_type="refresh_token")


@asynccontextmanager
async def stdio_server(env: dict[str, str], stderr: Path, seen: Seen) -> AsyncIterator[Client]:
    """A `kimi-mcp serve` child over stdio; every notification it sends the client is kept in `seen`."""
    params = StdioServerParameters(
        command=str(KIMI_MCP), args=["serve"], env={"PATH": os.environ.get("PATH", ""), **env}
    )

    async def keep(message: Any) -> None:
        seen.text("notification", repr(message))

    async def keep_log(params: Any) -> None:
        seen.text("log notification", repr(params))

    with stderr.open("a", encoding="utf-8") as errlog:
        transport = stdio_client(params, errlog=errlog)
        async with Client(
            transport, read_timeout_seconds=CALL_TIMEOUT, message_handler=keep, logging_callback=keep_log
        ) as client:
            yield client


async def read_all_resources(client: Client, seen: Seen) -> int:
    """kimi://login, the listing, and every conversation's transcript and turns; returns how many were read."""

    async def read(uri: str) -> str:
        result = await client.read_resource(uri, cache_mode="bypass")
        seen.text(uri, result.model_dump_json())
        return "".join(getattr(content, "text", "") for content in result.contents)

    await read("kimi://login")
    listing = json.loads(await read("kimi://conversations"))["conversations"]
    for conversation in listing:
        await read(conversation["uri"])
        for turn in range(1, conversation["turns"] + 1):
            await read(f"{conversation['uri']}/turns/{turn}")
    return 2 + len(listing) + sum(conversation["turns"] for conversation in listing)


async def wait_for_login(client: Client, seen: Seen) -> None:
    with anyio.fail_after(CALL_TIMEOUT):
        while True:
            login = await client.read_resource("kimi://login", cache_mode="bypass")
            seen.text("kimi://login while logging in", login.model_dump_json())
            if json.loads(login.contents[0].text)["logged_in"]:  # type: ignore[union-attr]
                return
            await anyio.sleep(0.2)


def debug_logged(log: str) -> None:
    assert " DEBUG " in log, "KIMI_CODE_DEBUG=1 did not reach the server: the scan proved nothing"


@pytest.fixture
def media_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "screen.png").write_bytes(PNG)
    (folder / "other.png").write_bytes(PNG + b"other")
    (folder / "third.png").write_bytes(PNG + b"third")
    return folder


async def test_api_key_flow_over_stdio_leaks_the_key_nowhere(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, media_folder: Path, tmp_path: Path
) -> None:
    fake_kimi.api_keys.add(API_KEY)
    home = Path(kimi_env["KIMI_MCP_HOME"])
    env = {**kimi_env, "KIMI_API_KEY": API_KEY, "KIMI_CODE_DEBUG": "1", "KIMI_MCP_ALLOWED_DIRS": str(media_folder)}
    stderr = tmp_path / "serve.log"
    seen = Seen()

    async with stdio_server(env, stderr, seen) as client:
        first = seen.result("chat", await client.call_tool("kimi_chat", {"prompt": "first"}))
        conversation_id = chat_meta(first)["conversation_id"]
        with_media = await client.call_tool(
            "kimi_chat",
            {"prompt": "look", "conversation_id": conversation_id, "media": [str(media_folder / "screen.png")]},
        )
        seen.result("chat with media", with_media)
        seen.result(
            "upload by path", await client.call_tool("kimi_upload_media", {"path": str(media_folder / "other.png")})
        )
        inline = {"data_base64": base64.b64encode(PNG + b"inline").decode(), "mime_type": "image/png"}
        seen.result("upload inline", await client.call_tool("kimi_upload_media", inline))
        fake_kimi.script(*[Fault(status=500, retry_after=0.01)] * 3)
        retried = seen.result("chat after 5xx", await client.call_tool("kimi_chat", {"prompt": "retried"}))
        # Upstream errors that echo the key (a proxy, a misconfigured gateway): kimi-mcp must not pass it on.
        fake_kimi.script(Fault(status=400, error_type="invalid_request_error", message=f"bad key {API_KEY} here"))
        echoed = seen.result("chat, key echoed", await client.call_tool("kimi_chat", {"prompt": "echo"}))
        fake_kimi.script(
            Fault(status=502, body=f"<html>Bearer {API_KEY} rejected</html>", headers={"content-type": "text/html"})
        )
        seen.result("chat, key in HTML", await client.call_tool("kimi_chat", {"prompt": "html"}))
        fake_kimi.script_upload(Fault(status=400, error_type="invalid_request_error", message=f"key={API_KEY}"))
        refused_upload = await client.call_tool("kimi_upload_media", {"path": str(media_folder / "third.png")})
        seen.result("upload refused", refused_upload)
        seen.result("status", await client.call_tool("kimi_login_status", {}))
        resources = await read_all_resources(client, seen)
        wal_names = seen.home(home, "while serving")
    seen.home(home, "after exit")
    log = stderr.read_text(encoding="utf-8")
    seen.text("stderr", log)

    assert not first.is_error and not with_media.is_error, text_of(with_media)
    assert resources >= 5  # login, the listing, each conversation (the 502 was retried) and its turns
    assert retried.is_error and echoed.is_error and "bad key" in text_of(echoed)
    assert refused_upload.is_error, text_of(refused_upload)
    assert any(name.endswith("-wal") for name in wal_names), wal_names  # the WAL was there to scan
    assert seen.stored("Fake Kimi reply to: first")  # and the turns were in what was scanned
    assert len(fake_kimi.uploads) >= 2 and set(bearer_values(fake_kimi)) == {API_KEY}  # where it belongs
    debug_logged(log)
    assert seen.leaks([API_KEY]) == []
    assert kimi_leaks(fake_kimi, [API_KEY], bearers={API_KEY}) == []


async def test_device_login_and_refreshes_leak_no_token_or_code(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, media_folder: Path, tmp_path: Path
) -> None:
    fake_kimi.oauth.interval = 0  # the client's own 1 s floor paces the polls
    home = Path(kimi_env["KIMI_MCP_HOME"])
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"}
    env |= {"KIMI_CODE_DEBUG": "1", "KIMI_MCP_ALLOWED_DIRS": str(media_folder)}
    stderr = tmp_path / "serve.log"
    seen = Seen()

    async with stdio_server(env, stderr, seen) as client:
        seen.result("chat before login", await client.call_tool("kimi_chat", {"prompt": "before"}))
        fake_kimi.oauth.approve()
        await wait_for_login(client, seen)
        first = seen.result("chat", await client.call_tool("kimi_chat", {"prompt": "after login"}))
        conversation_id = chat_meta(first)["conversation_id"]
        fake_kimi.oauth.revoke_access()  # 401 on the next request: the server refreshes (chat)
        again = await client.call_tool("kimi_chat", {"prompt": "after refresh", "conversation_id": conversation_id})
        seen.result("chat after refresh", again)
        fake_kimi.oauth.revoke_access()  # and again (the Files API)
        upload = await client.call_tool("kimi_upload_media", {"path": str(media_folder / "screen.png")})
        seen.result("upload after refresh", upload)
        seen.result("status", await client.call_tool("kimi_login_status", {}))
        resources = await read_all_resources(client, seen)
        wal_names = seen.home(home, "while serving")
    seen.home(home, "after exit")
    log = stderr.read_text(encoding="utf-8")
    seen.text("stderr", log)
    secrets = fake_kimi.oauth.issued_secrets()  # the device code, then three access/refresh pairs

    assert not first.is_error and not again.is_error and not upload.is_error, text_of(upload)
    assert resources == 5  # login, the listing, one conversation and its two turns
    assert refreshes(fake_kimi) == 2 and len(secrets) == 7
    assert any(name.endswith("-wal") for name in wal_names), wal_names
    credentials = (home / CREDENTIALS_FILE).read_text(encoding="utf-8")
    assert secrets[-1] in credentials and secrets[-2] in credentials  # the latest pair is where it belongs
    access_tokens = set(secrets[1::2])
    assert set(bearer_values(fake_kimi)) == access_tokens  # each access token went to Kimi, as it should
    debug_logged(log)
    assert seen.leaks(secrets) == []
    assert kimi_leaks(fake_kimi, secrets, bearers=access_tokens) == []


async def test_http_with_its_token_leaks_neither_the_token_nor_the_login(
    kimi_env: dict[str, str], fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    home = Path(kimi_env["KIMI_MCP_HOME"])
    store_issued_login(fake_kimi, home, expires_in=0)  # refreshed on first use
    env = {k: v for k, v in kimi_env.items() if k != "KIMI_API_KEY"}
    env |= {"KIMI_CODE_DEBUG": "1", "KIMI_MCP_HTTP_TOKEN": HTTP_TOKEN}
    seen = Seen()

    async with http_child(env) as child:
        async with http_client(child.url, HTTP_TOKEN) as client:
            first = seen.result("chat", await client.call_tool("kimi_chat", {"prompt": "over http"}))
            inline = {"data_base64": base64.b64encode(PNG).decode(), "mime_type": "image/png"}
            seen.result("upload inline", await client.call_tool("kimi_upload_media", inline))
            fake_kimi.oauth.revoke_access()
            conversation_id = chat_meta(first)["conversation_id"]
            again = await client.call_tool("kimi_chat", {"prompt": "again", "conversation_id": conversation_id})
            seen.result("chat after refresh", again)
            seen.result("status", await client.call_tool("kimi_login_status", {}))
            resources = await read_all_resources(client, seen)
        hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        async with httpx2.AsyncClient(timeout=CALL_TIMEOUT) as raw:
            for authorization in (f"Bearer {HTTP_TOKEN}x", f"Bearer {HTTP_TOKEN[:-1]}", None):
                sent = headers | ({"Authorization": authorization} if authorization else {})
                refused = await raw.post(child.url, json=init, headers=sent)
                assert refused.status_code == 401, refused.status_code
                seen.text(f"401 for {authorization and authorization[:14]}", f"{refused.headers}\n{refused.text}")
        wal_names = seen.home(home, "while serving")
    seen.home(home, "after exit")
    seen.text("stderr", child.stderr)
    secrets = fake_kimi.oauth.issued_secrets()  # two refreshes: three pairs

    assert not first.is_error and not again.is_error, text_of(again)
    assert resources == 5  # login, the listing, one conversation and its two turns
    assert refreshes(fake_kimi) == 2 and len(secrets) == 6
    assert any(name.endswith("-wal") for name in wal_names), wal_names
    debug_logged(child.stderr)
    assert seen.leaks([HTTP_TOKEN, *secrets]) == []
    assert kimi_leaks(fake_kimi, [HTTP_TOKEN, *secrets], bearers=set(secrets[0::2])) == []


def test_the_scan_finds_a_secret_whole_in_pieces_and_out_of_place(fake_kimi: FakeKimi) -> None:
    """The detector itself: a scan that found nothing must have been able to find something."""
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXBhcnQtdGhhdC1pcy1yYW5kb20"
    seen = Seen()
    seen.text("clean", "nothing here, not even eyJhbGciOiJSUzI1NiJ9")  # a JWT's shared header is no secret
    assert seen.leaks([API_KEY, jwt]) == []
    seen.text("cut", f"key …{API_KEY[-20:]}")
    seen.blobs.append(("db", f"token {jwt.rsplit('.', 1)[1][:20]}".encode()))
    assert seen.leaks([API_KEY, jwt]) == [f"cut: {API_KEY[-16:][:12]}…", f"db: {jwt.rsplit('.', 1)[1][:12]}…"]

    def request(path: str, headers: dict[str, str], body: bytes = b"") -> RecordedRequest:
        return RecordedRequest("POST", path, headers, body, 0.0)

    fake_kimi.requests += [
        request("/coding/v1/messages", {"authorization": f"Bearer {API_KEY}"}),  # where it belongs
        request(OAUTH_TOKEN_PATH, {"content-type": FORM}, f"grant_type=refresh_token&refresh_token={jwt}".encode()),
    ]
    assert kimi_leaks(fake_kimi, [API_KEY, jwt], bearers={API_KEY}) == []
    fake_kimi.requests += [
        request("/coding/v1/messages", {"authorization": f"Bearer {HTTP_TOKEN}"}),  # not Kimi's to see
        request("/api/oauth/token", {"authorization": f"Bearer {API_KEY}"}),  # a bearer to the OAuth host
        request("/coding/v1/messages", {"x-debug": API_KEY}, json.dumps({"key": jwt}).encode()),
    ]
    assert len(kimi_leaks(fake_kimi, [API_KEY, jwt, HTTP_TOKEN], bearers={API_KEY})) >= 4
