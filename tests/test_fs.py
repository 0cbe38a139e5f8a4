"""The home folder: what kimi-mcp creates is 0700; what already existed keeps its mode and must be the user's own."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kimi_mcp.auth.store import CredentialStore
from kimi_mcp.errors import HomeUnusable
from kimi_mcp.fs import ensure_private_dir, write_private_file
from kimi_mcp.identity import device_id

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX modes")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask after a test that changes it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


@pytest.fixture
def shared_folder(tmp_path: Path) -> Path:
    """A folder like /tmp: sticky and writable by everyone."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o1777)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o1777
    return folder


@posix_only
@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize("mask", [0o022, 0o000, 0o277], ids=["umask-022", "umask-000", "umask-277"])
def test_folders_kimi_mcp_creates_are_0700_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    os.umask(mask)
    home = tmp_path / "a" / "b" / "home"
    ensure_private_dir(home)
    for created in (tmp_path / "a", tmp_path / "a" / "b", home):
        assert mode_of(created) == 0o700, created


@posix_only
def test_an_existing_world_writable_folder_keeps_its_mode_and_is_refused(shared_folder: Path) -> None:
    with pytest.raises(HomeUnusable) as err:
        ensure_private_dir(shared_folder)
    assert mode_of(shared_folder) == 0o1777
    message = err.value.message
    assert str(shared_folder) in message and "mode 1777" in message
    assert "other users can write to it" in message and "replace your stored Kimi login" in message
    assert "KIMI_MCP_HOME to a private folder" in message


@posix_only
def test_a_group_writable_folder_is_refused_too(tmp_path: Path) -> None:
    folder = tmp_path / "team"
    folder.mkdir()
    folder.chmod(0o770)
    with pytest.raises(HomeUnusable, match="mode 770"):
        ensure_private_dir(folder)
    assert mode_of(folder) == 0o770


@posix_only
def test_an_existing_private_folder_is_used_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    folder.chmod(0o755)  # readable by others but only the owner can change it: the files inside are 0600
    write_private_file(folder / "device_id", b"x")
    assert mode_of(folder) == 0o755
    assert mode_of(folder / "device_id") == 0o600


@posix_only
def test_a_folder_under_a_shared_parent_is_created_private(shared_folder: Path) -> None:
    home = shared_folder / "kimi"
    ensure_private_dir(home)
    assert mode_of(home) == 0o700
    assert mode_of(shared_folder) == 0o1777  # the parent existed: left as it was


@posix_only
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 4321, -1)
    with pytest.raises(HomeUnusable, match="belongs to another user, uid 4321"):
        ensure_private_dir(folder)


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(HomeUnusable, match="it is not a folder"):
        ensure_private_dir(not_a_folder)
    with pytest.raises(HomeUnusable):
        ensure_private_dir(not_a_folder / "home")


@posix_only
def test_nothing_is_read_from_or_written_to_a_shared_home(shared_folder: Path) -> None:
    """Whoever can write to the folder could plant a login: it must be refused before anything is read."""
    planted = shared_folder / "device_id"
    planted.write_text("0" * 32)
    with pytest.raises(HomeUnusable):
        device_id(shared_folder)
    store = CredentialStore(shared_folder)
    with pytest.raises(HomeUnusable), store.locked_sync():
        pass
    assert sorted(p.name for p in shared_folder.iterdir()) == ["device_id"]
    assert mode_of(shared_folder) == 0o1777
