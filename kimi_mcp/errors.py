"""The error taxonomy: one class per thing that can go wrong, each with the one message a user sees.

Every message says what happened and what to do next. None ever contains a token or key: callers pass only
non-secret facts (status codes, the service's own error text, file paths).
"""

from __future__ import annotations

import math


class KimiMcpError(Exception):
    """Base of every error kimi-mcp reports to a user. `str(err)` is the user-facing message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SettingsError(KimiMcpError):
    """A setting has a value that is not allowed (the message names the variable)."""


class SocksProxyUnsupported(KimiMcpError):
    """A proxy variable names a SOCKS proxy, which httpx2 speaks only with the optional `socksio` package."""

    def __init__(self, variable: str) -> None:
        super().__init__(
            f"{variable} names a SOCKS proxy, and the HTTP client needs the `socksio` package for that, which is not "
            "installed. Install it beside kimi-mcp (`pip install socksio`, `pipx inject kimi-mcp socksio`, or "
            "`uvx --with socksio kimi-mcp serve`), or use an HTTP proxy instead (docs/troubleshooting.md)."
        )


class LoginRequired(KimiMcpError):
    """No usable credential: neither an API key nor a valid stored login."""

    def __init__(self, reason: str = "No Kimi credentials are configured.") -> None:
        self.reason = reason
        super().__init__(
            f"{reason} Set KIMI_API_KEY to a Kimi Code API key, or run `kimi-mcp login` in a terminal "
            "(or read the kimi://login resource) to log in with your Kimi account."
        )


class LoginFailed(KimiMcpError):
    """The device login ended without a token (denied, expired code, service error)."""


class CredentialsCorrupt(KimiMcpError):
    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"The stored Kimi login at {path} cannot be read ({detail}). "
            "Run `kimi-mcp login` to log in again; the file is left untouched until then."
        )


class UpstreamError(KimiMcpError):
    """Kimi answered with an error or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class Unauthorized(UpstreamError):
    def __init__(self, *, api_key: bool = False) -> None:
        if api_key:
            message = (
                "Kimi rejected the API key (401). Check KIMI_API_KEY: it must be a current key issued for the API at "
                "KIMI_CODE_BASE_URL (a Kimi Code API key for Kimi Code, a platform key for Moonshot's platform)."
            )
        else:
            message = (
                "Kimi rejected the login (401) even after a token refresh. "
                "Run `kimi-mcp login` to log in again, or set KIMI_API_KEY."
            )
        super().__init__(message, status=401)


class MembershipExpired(UpstreamError):
    def __init__(self) -> None:
        super().__init__(
            "Kimi says the membership behind these credentials has expired (402). "
            "Renew the Kimi Code plan, or use a different KIMI_API_KEY.",
            status=402,
        )


class ClientRefused(UpstreamError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"Kimi refused this client (403: {detail}). Use a Kimi Code API key (KIMI_API_KEY) on the "
            "Anthropic surface (KIMI_CODE_PROTOCOL=anthropic), the path Moonshot sanctions for third-party tools.",
            status=403,
        )


class AllowListRefused(ClientRefused):
    """403 `access_terminated_error` on Kimi Code's OpenAI surface: its allow-list of clients (docs/kimi-api.md §2)."""

    def __init__(self, detail: str) -> None:
        UpstreamError.__init__(
            self,
            f"Kimi refused this client (403: {detail}). Kimi Code's OpenAI-style endpoint "
            "(KIMI_CODE_PROTOCOL=openai) admits only allow-listed clients, and kimi-mcp does not pose as another "
            "one. Set KIMI_CODE_PROTOCOL=anthropic (the default): the same key works there. If that is refused too, "
            "the account itself may be suspended.",
            status=403,
        )


class RateLimited(UpstreamError):
    def __init__(self, retry_after: float | None) -> None:
        # Whole seconds, rounded up: a wait under a second does not read as "0 s".
        wait = f" Kimi asked to wait {math.ceil(retry_after)} s." if retry_after else ""
        super().__init__(
            f"Kimi is rate-limiting requests (429) and retries did not get through.{wait} Try again shortly.",
            status=429,
            retryable=True,
        )
        self.retry_after = retry_after


class KimiBusy(UpstreamError):
    """403 "concurrent request limit": too many requests in flight for the account (docs/kimi-api.md §9)."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"Kimi is busy for this account: too many requests in flight (403: {detail}), and retries did not get "
            "through. Try again shortly; if several kimi-mcp servers or other Kimi clients share the account, "
            "lower KIMI_MCP_MAX_CONCURRENCY.",
            status=403,
            retryable=True,
        )


class QuotaExceeded(UpstreamError):
    def __init__(self, detail: str, resets_at: str | None = None, *, plan: bool = True) -> None:
        # plan False: the backend has no /v1/usages (Moonshot's pay-as-you-go platform, a gateway): no 5-hour window.
        if not plan:
            super().__init__(
                f"Kimi says the account's quota or balance is used up (429: {detail}). This backend reports no plan "
                "usage (no /v1/usages): check the account's balance or limits where it is managed (for Moonshot's "
                "pay-as-you-go platform, its console), then try again.",
                status=429,
            )
        else:
            when = (
                f"The 5-hour window resets at {resets_at}."
                if resets_at
                else "Call kimi_login_status to see when the 5-hour window resets."
            )
            super().__init__(f"The Kimi Code plan's quota is used up (429: {detail}). {when}", status=429)
        self.detail = detail
        self.resets_at = resets_at


class Forbidden(UpstreamError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"Kimi refused access (403: {detail}). Check that the plan or API key covers the Kimi Code API.",
            status=403,
        )


class ServiceUnavailable(UpstreamError):
    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(
            f"Kimi could not answer ({detail}). This is usually temporary: try again in a minute.",
            status=status,
            retryable=True,
        )


class NetworkError(UpstreamError):
    """Kimi could not be reached at all; `cause` names why, e.g. "could not resolve api.kimi.com"."""

    def __init__(self, cause: str) -> None:
        super().__init__(
            f"Kimi could not be reached: {cause}. Check the network connection and any proxy, and that "
            "KIMI_CODE_BASE_URL (if set) is right; then try again.",
            retryable=True,
        )
        self.cause = cause


class RequestTooLarge(UpstreamError):
    def __init__(self, size: int | None, limit: int) -> None:
        sent = f"{size:,} bytes" if size is not None else "the request"
        super().__init__(
            f"Kimi refused the request (413): the request was too large ({sent}; the service accepts at most "
            f"{limit:,} bytes). Shorten the prompt or the attached text, or start a new conversation.",
            status=413,
        )
        self.size = size
        self.limit = limit


class BadRequest(UpstreamError):
    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(
            f"Kimi rejected the request ({status}: {detail}). Shorten the prompt or check the arguments.",
            status=status,
        )
        self.detail = detail


# -- backends (docs/backends.md): what a 404 from a chat or a side API means -----------------------------------


def _model_list(models: list[str]) -> str:
    shown = ", ".join(models[:20])
    return shown + (f" and {len(models) - 20} more" if len(models) > 20 else "")


class UsageNotAvailable(UpstreamError):
    """GET /v1/usages answered 404: the backend reports no plan usage (Moonshot's platform, a gateway)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(
            f"Usage and quota are not available on this backend: {base_url}/v1/usages does not exist (404). Only a "
            "Kimi Code plan reports them; on Moonshot's pay-as-you-go platform the balance is in its console.",
            status=404,
        )


class AnthropicWireMissing(UpstreamError):
    """POST /v1/messages answered 404: the base URL serves no Anthropic-style surface (an OpenAI-compatible one)."""

    def __init__(self, base_url: str, detail: str, model: str, listed: list[str] | None) -> None:
        message = (
            f"{base_url} has no Anthropic-style chat endpoint: POST {base_url}/v1/messages answered 404 ({detail}). "
            "For Moonshot's pay-as-you-go platform or another OpenAI-compatible backend, set "
            "KIMI_CODE_PROTOCOL=openai."
        )
        if listed and model not in listed:
            message += f" Also set KIMI_MCP_MODEL to one of the models it lists ({model} is not one): "
            message += _model_list(listed) + "."
        super().__init__(message, status=404)


class ModelNotListed(UpstreamError):
    """The backend answered 404 to a chat, and its GET /v1/models does not list the model asked for."""

    def __init__(self, model: str, listed: list[str], detail: str) -> None:
        super().__init__(
            f"The backend does not serve the model {model!r} (404: {detail}). Set KIMI_MCP_MODEL to one of the "
            f"models its /v1/models lists: {_model_list(listed)}.",
            status=404,
        )
        self.model = model
        self.listed = listed


class ChatEndpointMissing(UpstreamError):
    """POST /v1/chat/completions answered 404, and not about the model: the base URL is likely wrong."""

    def __init__(self, base_url: str, detail: str) -> None:
        super().__init__(
            f"POST {base_url}/v1/chat/completions answered 404 ({detail}). Check KIMI_CODE_BASE_URL: it is the API "
            "base, such as https://api.moonshot.ai/v1 for Moonshot's pay-as-you-go platform or "
            "https://api.kimi.com/coding for a Kimi Code plan.",
            status=404,
        )


class IncompleteStream(UpstreamError):
    """The reply started but never finished: no stop reason, or the connection was cut mid-stream."""

    def __init__(self, cause: str = "no stop reason") -> None:
        super().__init__(
            f"Kimi's reply stream ended before the reply was complete ({cause}). Call again to retry.",
            retryable=True,
        )


class ConversationNotFound(KimiMcpError):
    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            f"No conversation with id {conversation_id!r} exists (it may have expired). Read the "
            "kimi://conversations resource to list recent ids, or omit conversation_id to start a new one."
        )


class NoSuchConversation(KimiMcpError):
    """`kimi-mcp conversations show|delete` named an id the store does not hold."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            f"No conversation with id {conversation_id!r} is stored (it may have expired or been deleted). "
            "`kimi-mcp conversations list` shows the ids."
        )


class NotAConversationId(KimiMcpError):
    """`kimi-mcp conversations show|delete` got something that is not an id at all."""

    def __init__(self, shown: str) -> None:
        super().__init__(
            f"{shown!r} is not a conversation id: ids look like kc_ followed by 16 hex digits "
            "(e.g. kc_0123456789abcdef). `kimi-mcp conversations list` shows them."
        )


class StoreFailed(KimiMcpError):
    """`kimi-mcp conversations` could not finish with the store (e.g. a writer held it past the busy timeout)."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"The conversation store {path} could not be used ({detail}); nothing was changed. If a kimi-mcp server "
            "was busy writing to it, try again."
        )


class InternalError(KimiMcpError):
    """A bug or an unexpected local fault (disk full, database busy): reported, never a crash."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"kimi-mcp hit an unexpected problem ({what}). The server keeps running: try the call again, and if it "
            "repeats, run with KIMI_CODE_DEBUG=1 and look at the server's log (stderr)."
        )


class TurnNotSaved(KimiMcpError):
    def __init__(self, what: str) -> None:
        super().__init__(
            f"This turn could not be saved ({what}), so the conversation cannot be continued from it; check that "
            "KIMI_MCP_HOME is writable and has space."
        )


class HomeUnusable(KimiMcpError):
    def __init__(self, path: str, detail: str, *, shared: bool = False) -> None:
        # shared: the folder exists and another user could change it (kimi_mcp/fs.py leaves its mode alone).
        advice = (
            "Set KIMI_MCP_HOME to a private folder (one only you can write to), or unset it to use ~/.kimi-mcp."
            if shared
            else "Set KIMI_MCP_HOME to a folder you can write to."
        )
        super().__init__(f"kimi-mcp cannot use its folder {path} ({detail}). {advice}")


class StoreUnreadable(KimiMcpError):
    """The conversation database exists but SQLite cannot read it (not a database, or corrupt)."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"The conversation store {path} is not a readable database ({detail}). Move it away (or delete it) "
            "and kimi-mcp starts a new, empty one; earlier conversations are then gone."
        )


class InvalidArguments(KimiMcpError):
    """A tool call's arguments do not fit the tool's input schema; `problems` name each field and what it allows."""

    def __init__(self, tool: str, problems: list[str]) -> None:
        super().__init__(f"Invalid arguments for {tool}: {'; '.join(problems)}.")


class ServerShuttingDown(KimiMcpError):
    """The HTTP server was asked to stop and the call did not finish within the shutdown grace period."""

    def __init__(self, grace_seconds: float | None) -> None:
        waited = (
            f"after waiting {grace_seconds:g} s for it to finish (KIMI_MCP_SHUTDOWN_GRACE_SECONDS)"
            if grace_seconds is not None
            else "at once, as it was told a second time to stop"
        )
        super().__init__(
            f"kimi-mcp is shutting down and stopped this call {waited}; its reply is lost. "
            "Send it again once the server is back."
        )


class RequestBodyTooLarge(KimiMcpError):
    """An HTTP request body is over KIMI_MCP_HTTP_MAX_BODY_BYTES."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The request body is larger than this server accepts ({limit:,} bytes, KIMI_MCP_HTTP_MAX_BODY_BYTES). "
            "Send smaller content, e.g. a file path on the server's disk instead of inline data."
        )


class NotTakingRequests(KimiMcpError):
    """The HTTP server is draining for a shutdown: new requests are refused (503)."""

    def __init__(self) -> None:
        super().__init__("kimi-mcp is shutting down and takes no new requests; try again once it is back.")


class ServerStartFailed(KimiMcpError):
    """`kimi-mcp serve --transport http` bound its port but could not start serving (e.g. its lifespan failed)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"could not start serving MCP on {url}: {reason}. Nothing was served; fix the cause and start it again "
            "(KIMI_CODE_DEBUG=1 shows the details)."
        )


# -- media and local files (kimi/media.py, access.py, kimi/uploads.py; docs/media.md) -------------------------


class FileAccessDenied(KimiMcpError):
    """A local path the caller named may not be read: outside the allowed folders, not a regular file, or missing."""

    def __init__(self, path: str, reason: str, roots: list[str] | None) -> None:
        # roots None: refused by access.open_regular, which has no policy at hand (the file changed after the
        # policy's check, whose message named them).
        if roots is None:
            where = ""
        else:
            where = ": " + (", ".join(roots) if roots else "(none: no allowed folder exists)")
        super().__init__(
            f"Cannot read {path}: {reason}. kimi-mcp reads only regular files inside the allowed folders{where} "
            "(the MCP client's roots when it offers them, else KIMI_MCP_ALLOWED_DIRS, else the server's working "
            "folder). Pass an absolute path inside one of them."
        )
        self.path = path
        self.reason = reason
        self.roots = roots or []


class MediaRefused(KimiMcpError):
    """A media file or inline data that kimi-mcp will not send: empty, too large, or not a supported type."""


class MediaEmpty(MediaRefused):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is empty (0 bytes); Kimi cannot read an empty image or video.")


class MediaTooLarge(MediaRefused):
    def __init__(self, name: str, size: int, limit: int) -> None:
        super().__init__(
            f"{name} is {size:,} bytes, over the {limit:,}-byte media limit (KIMI_MCP_MAX_MEDIA_BYTES); nothing was "
            "sent. Send a smaller or shorter file (e.g. scale the image down or cut the video)."
        )
        self.size = size
        self.limit = limit


class MediaTypeUnsupported(MediaRefused):
    SUPPORTED = "images: JPEG, PNG, GIF, WebP; video: MP4, MPEG, MOV, WebM, MKV, AVI, FLV, 3GP"

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(
            f"{name} is not a supported image or video ({detail}). Kimi takes {self.SUPPORTED}, recognised by the "
            "file's content, not its name."
        )


class MediaTypeMismatch(MediaRefused):
    def __init__(self, claimed: str, detected: str) -> None:
        super().__init__(
            f"The data is {detected}, not the claimed {claimed}. Pass the matching mime_type (or leave it out "
            "and kimi-mcp detects the type from the content)."
        )


class MediaNotBase64(MediaRefused):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(
            f"{name} is not valid base64 ({detail}). Send the file's bytes base64-encoded (standard alphabet, with "
            "padding), optionally as a data: URL."
        )


class UnknownMediaId(KimiMcpError):
    """An `ms://` reference this kimi-mcp did not upload: its type (image or video) is unknown here."""

    def __init__(self, reference: str) -> None:
        super().__init__(
            f"{reference} is not a file this kimi-mcp uploaded to Kimi, so it cannot say whether it is an image or "
            "a video. Pass the file's path in media, or upload it with kimi_upload_media and use the id returned."
        )


class MediaGone(UpstreamError):
    """Kimi answered that a referenced file is unknown (expired or deleted on its side), and no re-upload helped."""

    def __init__(self, reference: str) -> None:
        super().__init__(
            f"Kimi no longer has the file {reference}. Upload it again (kimi_upload_media, or pass its path in "
            "media) and use the new id; an old conversation that refers to it cannot be continued with it.",
            status=400,
        )
        self.reference = reference


class UploadTooLarge(UpstreamError):
    """Kimi's Files API answered 413 to an upload (docs/kimi-api.md §7, §9): `RequestTooLarge`'s case, in words
    that fit a file rather than a chat request (the service does not say its limit)."""

    def __init__(self, name: str, size: int) -> None:
        super().__init__(
            f"Kimi refused the upload of {name} (413: too large): the file is {size:,} bytes. Nothing was stored and "
            "no media id was made. Send a smaller or shorter file (e.g. scale the image down or cut the video).",
            status=413,
        )
        self.size = size


class UploadAnswerMalformed(UpstreamError):
    """The Files API answered success but not with a usable file object (`{id, bytes, ...}`, docs/kimi-api.md §7)."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(
            f"Kimi's Files API answered {status} but not with a file kimi-mcp can use ({detail}); nothing was "
            "stored. Try again; if it keeps happening, check that KIMI_CODE_BASE_URL (if set) is right.",
            status=status,
        )


class MediaChanged(KimiMcpError):
    """The file changed size or became unreadable between its check and its upload."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(
            f"{name} changed or could not be read while it was being uploaded ({detail}); nothing was stored. "
            "Call again once the file is complete and no longer being written."
        )


class RequestOverBodyCap(KimiMcpError):
    """The request kimi-mcp would send is over the service's body cap (docs/kimi-api.md §9): not sent at all."""

    def __init__(self, size: int, limit: int, inline_media_bytes: int) -> None:
        inline = f", of which {inline_media_bytes:,} bytes are inline images" if inline_media_bytes else ""
        super().__init__(
            f"The request would be {size:,} bytes{inline}, over the {limit:,} bytes Kimi accepts in one request; "
            "nothing was sent. Start a new conversation, send less text, or send fewer or smaller images "
            "(images over KIMI_CODE_UPLOAD_THRESHOLD_BYTES are uploaded and count only as a short reference)."
        )
        self.size = size
        self.limit = limit


# -- files as context (kimi_mcp/context_files/, docs/files.md) ------------------------------------------------


class ContextFilesOverBudget(KimiMcpError):
    """The files named for a turn do not fit what Kimi's context window, or the request cap, leaves for them."""

    def __init__(
        self,
        *,
        files: int,
        tokens: int,
        token_budget: int,
        size: int,
        byte_budget: int,
        largest: list[tuple[str, int]],
        even_cut: bool = False,
        window_tokens: int | None = None,
    ) -> None:
        room = []
        if tokens > token_budget:
            # The window in use (KIMI_MCP_CONTEXT_TOKENS, /v1/models or the default), when the caller knows it.
            window = f"{window_tokens:,} tokens, less" if window_tokens is not None else "less"
            room.append(
                f"{max(token_budget, 0):,} tokens are left in Kimi's context window ({window} the system text, "
                "the conversation so far, the prompt and room for the reply)"
            )
        if size > byte_budget:
            room.append(f"{max(byte_budget, 0):,} bytes are left under Kimi's 2 MiB request cap")
        need = f"about {tokens:,} tokens ({size:,} bytes)"
        if even_cut:
            what = f"The {files:,} files do not fit even cut to nothing: their headers and cut markers alone need"
            advice = "Name fewer files, or a narrower folder or glob."
        else:
            what = f"The {files:,} files need"
            advice = (
                'Name fewer files or a narrower folder or glob, or pass on_overflow="truncate" to cut the largest '
                "files to fit (each cut is marked in the text)."
            )
        biggest = ", ".join(f"{path} (~{count:,} tokens)" for path, count in largest)
        super().__init__(
            f"{what} {need}, but only {' and '.join(room)}; nothing was sent. The largest: {biggest}. {advice}"
        )
        self.tokens = tokens
        self.token_budget = token_budget
        self.size = size
        self.byte_budget = byte_budget
        self.largest = largest
        self.window_tokens = window_tokens


class TooManyContextFiles(KimiMcpError):
    """The folders and globs named hold more files than could ever fit Kimi's window: the walk stopped."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The folders and globs named hold more than {limit:,} files even with ignored ones left out, far more "
            "than Kimi's 262,144-token window can take; nothing was read. Name a narrower folder or glob (for "
            "example /repo/src/**/*.py)."
        )
        self.limit = limit


class NoContextFiles(KimiMcpError):
    """Nothing the caller named can be sent: every file was skipped, or a folder held none."""

    def __init__(self, reasons: dict[str, int], examples: list[str]) -> None:
        if reasons:
            counts = ", ".join(f"{count:,} {reason}" for reason, count in reasons.items())
            detail = f"every path was skipped ({counts}; e.g. {'; '.join(examples)})"
        else:
            detail = "the folders named hold no files"
        super().__init__(
            f"None of the files named can be sent to Kimi: {detail}. kimi-mcp sends text files and leaves out "
            "binaries, files over KIMI_MCP_MAX_FILE_BYTES, and in folders what .gitignore excludes, dependencies, "
            "caches and build output. Name the text files to send, or a folder that holds some."
        )
        self.reasons = reasons
