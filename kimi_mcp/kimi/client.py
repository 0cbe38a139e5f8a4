"""KimiClient: the Kimi-specific core, usable from Python without the MCP server.

It owns one httpx2 client, gets tokens from a `TokenSource`, speaks to Kimi through its wire module (the Anthropic
wire for now; `settings.protocol` is where a second one plugs in), maps every upstream fault to one error of
`errors.py`, and recovers once from a 401 (kimi-wire.md §3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import httpx2

from kimi_mcp import errors, logs
from kimi_mcp.http import build_http_client
from kimi_mcp.kimi import anthropic_wire
from kimi_mcp.kimi.models import ChatRequest, ChatResult, Message, TextBlock
from kimi_mcp.kimi.quota import ModelInfo, Quota, parse_models, parse_quota
from kimi_mcp.kimi.upstream import Rejected, error_for_response, mark_unretryable
from kimi_mcp.settings import Settings

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from kimi_mcp.kimi.anthropic_wire import ProgressCallback

T = TypeVar("T")


class TokenProvider(Protocol):
    """Where tokens come from: an API key or the stored OAuth login (see `auth.tokens.TokenSource`)."""

    async def token(self) -> str: ...

    async def recover(self, rejected: str) -> str: ...


class KimiClient:
    """Chat with Kimi and read its side APIs. Use as `async with KimiClient() as kimi:`."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        tokens: TokenProvider | None = None,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.http = http or build_http_client(self.settings)
        self.http.event_hooks["response"].append(mark_unretryable)
        if tokens is None:
            from kimi_mcp.auth.tokens import TokenSource

            tokens = TokenSource(self.settings, self.http)
        self.tokens = tokens
        self._sdk: tuple[str, AsyncAnthropic] | None = None
        self._models: list[ModelInfo] | None = None

    async def __aenter__(self) -> KimiClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def chat(self, request: ChatRequest, on_progress: ProgressCallback | None = None) -> ChatResult:
        """Stream one reply from Kimi. Raises an `errors.KimiMcpError` subclass on any failure."""
        efforts = await self._efforts(request.model) if request.thinking != "off" else frozenset()
        body = anthropic_wire.build_body(request, efforts=efforts)

        async def call(token: str) -> ChatResult:
            return await anthropic_wire.stream_chat(self._sdk_for(token), body, on_progress)

        try:
            with anyio.fail_after(self.settings.timeout_seconds):
                return await self._authorized(call)
        except TimeoutError:
            raise errors.ServiceUnavailable(
                f"no complete reply within {self.settings.timeout_seconds:g} s, the KIMI_MCP_TIMEOUT limit"
            ) from None
        except errors.QuotaExceeded as exc:
            raise await self._with_reset_time(exc) from None

    async def _with_reset_time(self, exc: errors.QuotaExceeded) -> errors.QuotaExceeded:
        """§9: a used-up quota is not retried; tell the user when the 5-hour window resets."""
        try:
            window = (await self.quota()).five_hour
        except errors.KimiMcpError:
            return exc
        return errors.QuotaExceeded(exc.detail, window.reset_at if window else None)

    async def ask(self, prompt: str, *, system: str | None = None) -> str:
        """One-shot convenience: the reply text to a single prompt."""
        request = ChatRequest(
            model=self.settings.model,
            system=system,
            messages=[Message(role="user", content=[TextBlock(text=prompt)])],
        )
        return (await self.chat(request)).text

    async def models(self) -> list[ModelInfo]:
        """`GET /v1/models`, cached for the life of the client."""
        if self._models is None:
            self._models = parse_models(await self._get_json("/v1/models"))
        return self._models

    async def quota(self) -> Quota:
        """`GET /v1/usages`: the 5-hour window and the weekly quota (kimi-wire.md §9)."""
        return parse_quota(await self._get_json("/v1/usages"))

    async def _efforts(self, model: str) -> frozenset[str]:
        try:
            models = await self.models()
        except errors.Unauthorized:
            raise  # the credential is dead: the chat would fail the same way after a second recovery
        except errors.UpstreamError:
            return frozenset()  # no list, no efforts: plain {type: enabled} is always accepted (§5)
        for info in models:
            if info.id == model:
                return frozenset(info.efforts)
        return frozenset()

    async def _get_json(self, path: str) -> Any:
        async def call(token: str) -> Any:
            response = await self.http.get(
                f"{self.settings.base_url}{path}", headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code >= 400:
                raise error_for_response(response.status_code, response.content, response.headers)
            return response.json()

        return await self._authorized(call)

    async def _authorized(self, call: Callable[[str], Awaitable[T]]) -> T:
        """Run `call` with a token; after a 401, recover the token once and retry once. Never more (§3)."""
        token = await self.tokens.token()
        logs.register_secret(token)
        try:
            return await self._mapped(call, token)
        except Rejected:
            pass
        token = await self.tokens.recover(token)
        logs.register_secret(token)
        try:
            return await self._mapped(call, token)
        except Rejected:
            raise errors.Unauthorized() from None

    async def _mapped(self, call: Callable[[str], Awaitable[T]], token: str) -> T:
        try:
            return await call(token)
        except errors.KimiMcpError:
            raise
        except httpx2.TimeoutException:
            raise errors.ServiceUnavailable("timed out") from None
        except httpx2.TransportError as exc:
            raise errors.ServiceUnavailable(f"connection failed: {type(exc).__name__}") from None
        except Exception as exc:
            mapped = anthropic_wire.map_sdk_error(exc)
            if mapped is None:
                raise
            raise mapped from None

    def _sdk_for(self, token: str) -> AsyncAnthropic:
        if self._sdk is None or self._sdk[0] != token:
            sdk = anthropic_wire.build_sdk(
                token=token,
                base_url=self.settings.base_url,
                http=self.http,
                max_retries=self.settings.max_retries,
            )
            self._sdk = (token, sdk)
        return self._sdk[1]
