"""KimiClient: the Kimi-specific core, usable from Python without the MCP server.

It owns one httpx2 client, gets tokens from a `TokenSource`, speaks to Kimi through the wire `settings.protocol`
(KIMI_CODE_PROTOCOL) selects: `anthropic_wire` (through the anthropic SDK, with its retries) or `openai_wire` (sent
here with httpx2, through the retry loop uploads use too), maps every upstream fault to one error of `errors.py`
through the one shared map, and recovers once from a 401 (docs/kimi-api.md §3).

Two limits hold for every chat call. At most `settings.max_concurrency` calls are in flight at once (Kimi answers
403 "concurrent request limit" past ~30 per account, §9); the rest wait their turn, reported as "queued".
`settings.timeout_seconds` (KIMI_MCP_TIMEOUT) bounds the whole call, from the moment it is made: the wait for a
slot, the `/v1/models` lookup, getting the token (a refresh respects the same deadline), and the stream with its
retries. The wait for a slot counts because the limit is what a caller can rely on: a call returns within
it, whatever held it up; a queue that does not move in that time is itself worth an error. Uploads to the Files
API (`upload`) take a slot too and keep to the same limit.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import httpx2

from kimi_mcp import errors, logs
from kimi_mcp.http import build_http_client
from kimi_mcp.kimi import files_api, wires
from kimi_mcp.kimi.backend import ContextWindow, context_window, kind_of_url
from kimi_mcp.kimi.files_api import UploadedFile, UploadProgress
from kimi_mcp.kimi.models import ChatRequest, ChatResult, Message, StreamProgress, TextBlock
from kimi_mcp.kimi.quota import ModelInfo, Quota, parse_models, parse_quota
from kimi_mcp.kimi.upstream import Rejected, error_for_response, mark_retry, request_size, transport_error
from kimi_mcp.settings import Settings

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from kimi_mcp.kimi.media import LocalMedia
    from kimi_mcp.kimi.wires import ProgressCallback

T = TypeVar("T")

# Looking up when a used-up quota resets is a courtesy: it never holds an error up for long.
_RESET_LOOKUP_SECONDS = 5.0
# A failed /v1/models lookup (a gateway without one, a passing fault) is tried again only after this long: the chats
# meanwhile use no efforts and the default context window rather than paying a request each.
_MODELS_RETRY_SECONDS = 300.0


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
        self.http.event_hooks["response"].append(mark_retry)
        if tokens is None:
            from kimi_mcp.auth.tokens import TokenSource

            tokens = TokenSource(self.settings, self.http)
        self.tokens = tokens
        self._sdk: tuple[str, AsyncAnthropic] | None = None
        self._models: list[ModelInfo] | None = None
        self._models_failed_at: float | None = None
        self._models_lock: anyio.Lock | None = None  # made on first use, like _slots
        self._slots: anyio.Semaphore | None = None  # made on first use: it belongs to the running event loop

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

        async def queued() -> None:
            if on_progress is not None:
                await on_progress(StreamProgress(phase="queued"))

        return await self._in_slot(
            lambda: self._chat_in_slot(request, on_progress), unfinished="no complete reply", on_queued=queued
        )

    async def upload(self, media: LocalMedia, on_progress: UploadProgress | None = None) -> UploadedFile:
        """Upload `media` to Kimi's Files API; reference the result as `UploadedFile.reference` (`ms://<id>`).

        The file is streamed from disk (memory stays flat whatever its size); `on_progress(sent, total)` follows
        it. Transient faults are retried up to KIMI_MCP_MAX_RETRIES times, a 401 recovers the token once, and the
        whole upload keeps to KIMI_MCP_TIMEOUT. Raises an `errors.KimiMcpError` subclass on any failure.
        """
        return await self._in_slot(
            lambda: self._upload_in_slot(media, on_progress), unfinished=f"the upload of {media.name} did not finish"
        )

    async def _in_slot(
        self,
        work: Callable[[], Awaitable[T]],
        *,
        unfinished: str,
        on_queued: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """Run `work` in one of the concurrency slots, all of it (the wait for the slot too) within KIMI_MCP_TIMEOUT.

        `unfinished` says what did not happen in time, for the error.
        """
        slots = self._slot_pool()
        has_slot = False
        try:
            with anyio.fail_after(self.settings.timeout_seconds):
                await self._take_slot(slots, on_queued)
                has_slot = True
                try:
                    return await work()
                finally:
                    slots.release()
        except TimeoutError:
            raise self._timed_out(queued=not has_slot, unfinished=unfinished) from None

    async def _take_slot(self, slots: anyio.Semaphore, on_queued: Callable[[], Awaitable[None]] | None) -> None:
        """One of the `max_concurrency` slots; a call that has to wait says so first."""
        try:
            slots.acquire_nowait()
        except anyio.WouldBlock:
            if on_queued is not None:
                await on_queued()
            await slots.acquire()

    def _slot_pool(self) -> anyio.Semaphore:
        if self._slots is None:
            self._slots = anyio.Semaphore(self.settings.max_concurrency)
        return self._slots

    def _timed_out(self, queued: bool, unfinished: str) -> errors.ServiceUnavailable:
        limit = f"{self.settings.timeout_seconds:g} s, the KIMI_MCP_TIMEOUT limit"
        if queued:
            return errors.ServiceUnavailable(
                f"no free slot within {limit}: {self.settings.max_concurrency} calls were already in flight "
                "(KIMI_MCP_MAX_CONCURRENCY)"
            )
        return errors.ServiceUnavailable(f"{unfinished} within {limit}")

    async def _chat_in_slot(self, request: ChatRequest, on_progress: ProgressCallback | None) -> ChatResult:
        info = await self._listed(request.model)
        efforts = frozenset(info.efforts) if info is not None and request.thinking != "off" else frozenset()
        window = context_window(info, self.settings.context_tokens)
        body = wires.build_body(self.settings.protocol, request, efforts=efforts, context_tokens=window.tokens)

        async def call(token: str) -> ChatResult:
            if self.settings.protocol == "openai":
                return await self._openai_chat(body, token, on_progress)
            from kimi_mcp.kimi import anthropic_wire

            idle = self.settings.stream_idle_seconds
            return await anthropic_wire.stream_chat(self._sdk_for(token), body, on_progress, idle_seconds=idle)

        try:
            return await self._authorized(call)
        except errors.QuotaExceeded as exc:
            raise await self._with_reset_time(exc) from None
        except errors.BadRequest as exc:
            if exc.status != 404:
                raise
            raise await self._not_found(exc, request.model) from None

    async def _not_found(self, exc: errors.BadRequest, model: str) -> errors.UpstreamError:
        """A chat answered 404: say what to set (docs/backends.md). Not about the model (the answer does not name
        it): the base URL lacks the wire's endpoint, e.g. the Anthropic wire on Moonshot's OpenAI-only platform.
        About a model /v1/models does not list: name the ones it lists."""
        models = await self._model_list()
        listed = [info.id for info in models] if models is not None else None
        named = model in exc.detail
        base = self.settings.base_url
        if self.settings.protocol == "anthropic" and not named and kind_of_url(base) != "kimi_code":
            return errors.AnthropicWireMissing(base, exc.detail, model, listed)
        if listed and model not in listed:
            return errors.ModelNotListed(model, listed, exc.detail)
        if self.settings.protocol == "openai" and not named:
            return errors.ChatEndpointMissing(base, exc.detail)
        return exc

    async def _openai_chat(self, body: dict[str, Any], token: str, on_progress: ProgressCallback | None) -> ChatResult:
        """POST the body to the OpenAI surface, retrying transient answers as the Anthropic wire's SDK would, then
        read the reply (docs/kimi-api.md §5, §8, §9)."""
        from kimi_mcp.kimi import openai_wire

        url = f"{self.settings.base_url}{openai_wire.CHAT_PATH}"
        content = wires.encode(body)
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        }

        idle = self.settings.stream_idle_seconds
        timeout = wires.chat_timeout(self.http.timeout, idle)

        async def send() -> httpx2.Response:
            request = self.http.build_request("POST", url, content=content, headers=headers, timeout=timeout)
            return await self.http.send(request, stream=True)

        def failure(response: httpx2.Response) -> Exception:
            sent = request_size(response.request)
            # Moonshot's platform has no Kimi Code allow-list: a 403 there is not answered by switching wires.
            allow_listed = kind_of_url(self.settings.base_url) != "moonshot_platform"
            return error_for_response(
                response.status_code, response.content, response.headers, request_bytes=sent, allow_listed=allow_listed
            )

        try:
            response = await self._send_retrying(send, failure)
        except httpx2.ReadTimeout as exc:  # no answer began within the idle limit, on any attempt
            raise wires.no_answer(exc, url, idle) from None
        try:
            return await openai_wire.read_reply(response, body["model"], on_progress, idle_seconds=idle)
        finally:
            await response.aclose()

    async def _upload_in_slot(self, media: LocalMedia, on_progress: UploadProgress | None) -> UploadedFile:
        body = files_api.MultipartBody(media)
        meter = files_api.ProgressMeter(media.size, on_progress) if on_progress is not None else None

        async def call(token: str) -> UploadedFile:
            return await self._post_file(body, meter, token)

        return await self._authorized(call)

    async def _post_file(
        self, body: files_api.MultipartBody, meter: files_api.ProgressMeter | None, token: str
    ) -> UploadedFile:
        """POST the body, retrying transient faults (the SDK's retries do not cover uploads, docs/kimi-api.md §9)."""
        url = f"{self.settings.base_url}{files_api.FILES_PATH}"
        headers = {**body.headers(), "Authorization": f"Bearer {token}"}

        async def send() -> httpx2.Response:
            # A fresh body stream per attempt: the file is read again from its start.
            return await self.http.post(url, content=body.stream(meter), headers=headers)

        response = await self._send_retrying(send, lambda failed: files_api.upload_error(failed, body.media))
        return files_api.uploaded_file(response, body.media)

    async def _send_retrying(
        self, send: Callable[[], Awaitable[httpx2.Response]], failure: Callable[[httpx2.Response], Exception]
    ) -> httpx2.Response:
        """The first answer under 400 that `send()` gets, retrying transient faults as the anthropic SDK does for
        chat on the Anthropic wire (docs/kimi-api.md §9): up to KIMI_MCP_MAX_RETRIES more attempts, after a
        connection fault or an answer `files_api.retry_delay` calls transient (408, 409, 429, 5xx, a busy 403
        marked by `mark_retry`; never a used-up quota or a `Retry-After` too long to wait), honouring
        `Retry-After`. Otherwise raises `failure(answer)`, with the answer's body read.

        A 401 is not retried here: `failure` makes it `Rejected`, and `_authorized` recovers the token once.
        """
        attempt = 0
        while True:
            try:
                response = await send()
            except httpx2.TransportError:
                if attempt >= self.settings.max_retries:
                    raise  # _mapped names the cause
                delay = files_api.backoff(attempt)
            else:
                if response.status_code < 400:
                    return response
                await response.aread()  # a streamed answer: its error body, then the connection back to the pool
                await response.aclose()
                retry = response.status_code != 401 and attempt < self.settings.max_retries
                if (delay := files_api.retry_delay(response, attempt) if retry else None) is None:
                    raise failure(response)
            attempt += 1
            await anyio.sleep(delay)

    async def _with_reset_time(self, exc: errors.QuotaExceeded) -> errors.QuotaExceeded:
        """§9: a used-up quota is not retried; tell the user when the 5-hour window resets.

        Bounded by a few seconds and, inside the call's own limit, ending before it: a slow lookup never turns
        the quota error into a timeout.
        """
        remaining = anyio.current_effective_deadline() - anyio.current_time()
        with anyio.move_on_after(min(_RESET_LOOKUP_SECONDS, remaining * 0.9)):
            try:
                window = (await self.quota()).five_hour
            except errors.UsageNotAvailable:
                return errors.QuotaExceeded(exc.detail, plan=False)  # a balance, not a plan's 5-hour window
            except errors.KimiMcpError:
                return exc
            return errors.QuotaExceeded(exc.detail, window.reset_at if window else None)
        return exc

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
        """`GET /v1/usages`: the 5-hour window and the weekly quota (docs/kimi-api.md §9).

        `errors.UsageNotAvailable` on a backend without it (404: Moonshot's platform, gateways; docs/backends.md).
        """
        try:
            return parse_quota(await self._get_json("/v1/usages"))
        except errors.BadRequest as exc:
            if exc.status == 404:
                raise errors.UsageNotAvailable(self.settings.base_url) from None
            raise

    async def context_window(self, model: str | None = None) -> ContextWindow:
        """The context window of `model` (default KIMI_MCP_MODEL) the output budget uses: KIMI_MCP_CONTEXT_TOKENS,
        else what /v1/models lists, else 262,144 (kimi/backend.py). No request beyond the one cached lookup."""
        return context_window(await self._listed(model or self.settings.model), self.settings.context_tokens)

    async def _listed(self, model: str) -> ModelInfo | None:
        """What /v1/models lists for `model`, for its efforts and context window; None if not listed or no list."""
        models = await self._model_list()
        return next((info for info in models or [] if info.id == model), None)

    async def _model_list(self) -> list[ModelInfo] | None:
        """The cached /v1/models list, or None when the backend gives none: one request per client, shared by
        concurrent first calls; a failed lookup is not repeated for _MODELS_RETRY_SECONDS, so a backend without
        the list costs no request per chat. Without a list a chat sends no effort (plain {type: enabled} is
        always accepted, §5) and assumes the default context window."""
        if self._models is not None:
            return self._models
        if self._models_lock is None:
            self._models_lock = anyio.Lock()
        async with self._models_lock:
            failed = self._models_failed_at
            if self._models is None and failed is not None and time.monotonic() - failed < _MODELS_RETRY_SECONDS:
                return None
            try:
                return await self.models()
            except errors.Unauthorized:
                raise  # the credential is dead: the chat would fail the same way after a second recovery
            except errors.UpstreamError:
                self._models_failed_at = time.monotonic()
                return None

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
        except (errors.KimiMcpError, Rejected):
            raise
        except httpx2.TransportError as exc:
            raise transport_error(exc, _url_of(exc, self.settings.base_url)) from None
        except Exception as exc:
            if "anthropic" not in sys.modules:
                raise  # not the SDK's: it was never loaded (the OpenAI wire, side APIs), and stays unloaded
            from kimi_mcp.kimi import anthropic_wire

            mapped = anthropic_wire.map_sdk_error(exc)
            if mapped is None:
                raise
            raise mapped from None

    def _sdk_for(self, token: str) -> AsyncAnthropic:
        from kimi_mcp.kimi import anthropic_wire

        if self._sdk is None or self._sdk[0] != token:
            sdk = anthropic_wire.build_sdk(
                token=token,
                base_url=self.settings.base_url,
                http=self.http,
                max_retries=self.settings.max_retries,
                idle_seconds=self.settings.stream_idle_seconds,
            )
            self._sdk = (token, sdk)
        return self._sdk[1]


def _url_of(exc: httpx2.TransportError, fallback: str) -> str:
    """The URL a failed request went to (httpx2 raises RuntimeError when an error carries no request)."""
    try:
        return str(exc.request.url)
    except RuntimeError:
        return fallback
