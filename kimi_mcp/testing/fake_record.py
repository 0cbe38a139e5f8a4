"""What the fake Kimi service saw: one `RecordedRequest` per HTTP request, OAuth ones included.

File uploads (POST /v1/files) are recorded too, but their body is streamed, not kept: `body` stays b"" and
`body_size` counts the bytes received; what the multipart body held is in `FakeKimi.uploads` (fake_files.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class RecordedRequest:
    """A request as received, plus what became of its response (filled in by the server thread)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes  # b"" for a file upload, whose body is counted (body_size) but never kept
    received_at: float
    body_size: int = 0  # bytes of the request body received
    disconnected_at: float | None = None
    completed: bool = False
    status: int | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def fields(self) -> dict[str, Any]:
        """The body's top-level fields, whether it was a form or a JSON object ({} otherwise)."""
        if self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self.form()
        try:
            value = self.json()
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def matches(self, path_suffix: str, fields: dict[str, Any]) -> bool:
        if not self.path.endswith(path_suffix):
            return False
        mine = self.fields() if fields else {}
        return all(name in mine and mine[name] == value for name, value in fields.items())


def header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a dict with lower-case names; repeated headers are joined with ", "."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers
