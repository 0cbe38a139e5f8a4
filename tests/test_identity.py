import stat
from pathlib import Path

from kimi_mcp._version import __version__
from kimi_mcp.identity import ascii_value, device_id, identity_headers, request_headers


def test_identity_headers_are_ours_and_ascii(tmp_path: Path) -> None:
    headers = identity_headers(tmp_path)
    assert headers["User-Agent"] == f"kimi-mcp/{__version__}"
    assert headers["X-Msh-Platform"] == "kimi_mcp"
    assert headers["X-Msh-Version"] == __version__
    for value in headers.values():
        assert value and value.isascii() and value.isprintable()


def test_device_id_is_stable_and_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = device_id(home)
    assert len(first) == 32 and int(first, 16) >= 0
    assert device_id(home) == first
    assert stat.S_IMODE((home / "device_id").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_custom_headers_cannot_override_identity_or_auth(tmp_path: Path) -> None:
    headers = request_headers(
        tmp_path,
        {
            "User-Agent": "KimiCLI/9.9",
            "x-msh-platform": "kimi_cli",
            "Authorization": "Bearer other",
            "X-Api-Key": "k",
            "anthropic-version": "1999",
            "Host": "evil.test",
            "Content-Length": "5",
            "X-Gateway": "team-a",
        },
    )
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["user-agent"].startswith("kimi-mcp/")
    assert lowered["x-msh-platform"] == "kimi_mcp"
    for name in ("authorization", "x-api-key", "anthropic-version", "host", "content-length"):
        assert name not in lowered
    assert lowered["x-gateway"] == "team-a"


def test_ascii_value_strips_and_falls_back() -> None:
    assert ascii_value("Mäc-Book\n") == "Mc-Book"
    assert ascii_value("ÄÖÜ") == "unknown"
