"""The fake Kimi OAuth host (device flow, refresh with rotation). Mounted by `fake_kimi.FakeKimi`.

INTERFACE STUB: owned by the auth work; `FakeKimi` relies only on `routes()` and `is_valid_access_token()`.
"""

from __future__ import annotations

from starlette.routing import BaseRoute


class FakeOAuth:
    def routes(self) -> list[BaseRoute]:
        """Starlette routes served at the OAuth host root (`/api/oauth/...`)."""
        return []

    def is_valid_access_token(self, token: str) -> bool:
        """True while `token` is a current (issued, not expired, not rotated away) access token."""
        return False
