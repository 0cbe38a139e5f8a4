"""Runs every check, the independent ones concurrently, within RUN_SECONDS, and returns them in a fixed order.

Order and dependencies: settings first (nothing else can run without them); then, together, the proxy, the CA
settings, DNS/TCP/TLS of the API host (and of the OAuth host when a login rather than an API key is in use), the
credential and the state folder; then `GET /v1/models`, only when the API host was reachable and a credential
exists; then the wire, only when the models check passed. A check that cannot run says why, as "skipped".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import httpx2

from kimi_mcp import logs
from kimi_mcp.http import build_http_client
from kimi_mcp.kimi.client import KimiClient
from kimi_mcp.settings import Settings

from . import api, credential, proxy, state
from .model import RUN_SECONDS, STEP_SECONDS, Check, fail, skipped
from .network import Endpoint, host_checks
from .settings_check import listing, load

_HOME_BLOCKS = "not tried: the state folder is unusable (see state.folder), and every request needs it"
Job = tuple[Sequence[str], Callable[[], Awaitable[list[Check]]]]
HOST_STEPS = ("dns", "tcp", "tls")
# Every check's name, in output order (scripts reading --json may rely on it).
NAMES = (
    "settings",
    proxy.TRUST,
    proxy.PROXY,
    *(f"api.{step}" for step in HOST_STEPS),
    *(f"oauth.{step}" for step in HOST_STEPS),
    credential.NAME,
    api.MODELS,
    api.WIRE,
    state.FOLDER,
    state.CREDENTIALS,
    state.STORE,
)


@dataclass
class Report:
    settings: dict[str, str] | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)


async def run(environ: Mapping[str, str], *, offline: bool = False) -> Report:
    settings, settings_check = load(environ)
    if settings is None:
        why = "not tried: the settings are invalid (see settings)"
        # The CA settings are read from the environment alone: still worth knowing.
        return Report(None, [settings_check, proxy.trust_check(), *(skipped(name, why) for name in NAMES[2:])])
    if settings.api_key is not None:
        logs.register_secret(settings.api_key.get_secret_value())
    deadline = anyio.current_time() + RUN_SECONDS
    checks = {settings_check.name: settings_check}
    checks.update(await _gather(_first_jobs(settings, offline), deadline))
    checks.update(await _gather([([api.MODELS, api.WIRE], lambda: _api_checks(settings, checks, offline))], deadline))
    return Report(listing(settings, environ), [checks[name] for name in NAMES])


def _first_jobs(settings: Settings, offline: bool) -> list[Job]:
    """The checks that depend on nothing but the settings (and the state folder, checked first)."""
    api_end = Endpoint("api", settings.base_url, "KIMI_CODE_BASE_URL")
    oauth_end = Endpoint("oauth", settings.oauth_host, "KIMI_CODE_OAUTH_HOST")
    uses_oauth = settings.api_key is None
    # First, alone: building the HTTP client creates the folder (it holds the device id, identity.py), and every
    # check that talks to Kimi needs a usable one.
    folder = state.folder_check(settings.home)
    routes = [proxy.route(api_end), *([proxy.route(oauth_end)] if uses_oauth else [])]

    async def hosts(route: proxy.Route) -> list[Check]:
        names = [f"{route.endpoint.label}.{step}" for step in HOST_STEPS]
        if offline:
            return [skipped(name, "--offline") for name in names]
        return await host_checks(route.endpoint, route.proxy)

    async def oauth_unused() -> list[Check]:
        why = "not needed: KIMI_API_KEY is set, so the OAuth host is not used"
        return [skipped(f"oauth.{step}", why) for step in HOST_STEPS]

    async def cred() -> list[Check]:
        if folder.status == "fail":
            return [skipped(credential.NAME, _HOME_BLOCKS)]
        try:
            http = build_http_client(settings, timeout=STEP_SECONDS)
        except (OSError, ValueError, httpx2.InvalidURL) as exc:  # a CA file or proxy URL the client refuses
            why = f"not tried: the HTTP client cannot be built ({exc}; see tls.trust and proxy)"
            return [skipped(credential.NAME, why)]
        async with http:
            return [await credential.credential_check(settings, http)]

    async def state_checks() -> list[Check]:
        if folder.status == "fail":
            why = "not tried: the state folder is unusable (see state.folder)"
            return [skipped(state.CREDENTIALS, why), state.store_skipped(why)]
        return [state.credentials_check(settings.home), await state.store_check(settings.home)]

    return [
        ([state.FOLDER], _sync(lambda: folder)),
        ([proxy.TRUST], _sync(proxy.trust_check)),
        ([proxy.PROXY], lambda: _one(proxy.proxy_check(routes, offline))),
        ([f"api.{s}" for s in HOST_STEPS], lambda: hosts(routes[0])),
        ([f"oauth.{s}" for s in HOST_STEPS], (lambda: hosts(routes[1])) if uses_oauth else oauth_unused),
        ([credential.NAME], cred),
        ([state.CREDENTIALS, state.STORE], state_checks),
    ]


async def _api_checks(settings: Settings, done: Mapping[str, Check], offline: bool) -> list[Check]:
    """models, then wire; each only when what it needs passed."""
    blocker = _blocker(done, offline)
    if blocker is not None:
        return [skipped(api.MODELS, blocker), skipped(api.WIRE, blocker)]
    async with KimiClient(settings, http=build_http_client(settings, timeout=STEP_SECONDS)) as kimi:
        models = await api.models_check(kimi)
        if models.status != "ok":
            return [models, skipped(api.WIRE, "not tried: GET /v1/models did not pass (see models)")]
        return [models, await api.wire_check(kimi)]


def _blocker(done: Mapping[str, Check], offline: bool) -> str | None:
    if offline:
        return "--offline"
    for name in (proxy.TRUST, proxy.PROXY, *(f"api.{step}" for step in HOST_STEPS)):
        if done[name].status == "fail":
            return f"not tried: the API host cannot be reached (see {name})"
    if done[state.FOLDER].status == "fail":
        return _HOME_BLOCKS
    if done[credential.NAME].status != "ok":
        return "not tried: no usable credential (see credential)"
    return None


async def _gather(jobs: Sequence[Job], deadline: float) -> dict[str, Check]:
    """Run `jobs` concurrently until `deadline`; a job still running then is a failed check, never waited for."""
    results: dict[str, Check] = {}

    async def run_one(job: Job) -> None:
        try:
            checks = await job[1]()
        except Exception as exc:  # a bug in one check must not hide the others' findings
            detail = logs.redact(f"the check itself failed: {type(exc).__name__}: {exc}")
            checks = [fail(name, detail, "please report this (kimi-mcp doctor --json shows it all)") for name in job[0]]
        for check in checks:
            results[check.name] = check

    with anyio.move_on_after(max(deadline - anyio.current_time(), 0.0)):
        async with anyio.create_task_group() as group:
            for job in jobs:
                group.start_soon(run_one, job)
    late = f"did not finish within the doctor's {RUN_SECONDS:g} s"
    for names, _ in jobs:
        for name in names:
            results.setdefault(name, fail(name, late, "run `kimi-mcp doctor` again; if it persists, check the network"))
    return results


def _sync(check: Callable[[], Check]) -> Callable[[], Awaitable[list[Check]]]:
    async def run_it() -> list[Check]:
        return [check()]

    return run_it


async def _one(check: Awaitable[Check]) -> list[Check]:
    return [await check]
