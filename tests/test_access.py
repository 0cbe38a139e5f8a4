"""The file access policy: only absolute paths to regular files inside the allowed roots, after symlinks and `..`.

Every refusal must name the allowed roots, and nothing here may open (let alone block on) a FIFO or a device.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from kimi_mcp.access import FileAccessPolicy, open_regular, paths_from_root_uris
from kimi_mcp.errors import FileAccessDenied
from kimi_mcp.settings import Settings

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX special files")
T = TypeVar("T")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not for Kimi")
    return folder.resolve()


def refused(policy: FileAccessPolicy, raw: str) -> FileAccessDenied:
    """The refusal of `raw`, checked to name every allowed root and the path as given."""
    with pytest.raises(FileAccessDenied) as info:
        policy.resolve_file(raw)
    message = str(info.value)
    assert raw in message
    for allowed in policy.roots:
        assert str(allowed) in message
    assert info.value.roots == [str(r) for r in policy.roots]
    return info.value


def without_hanging(fifo: Path, call: Callable[[], T]) -> T:
    """Run `call` in a thread; if it blocks (opening `fifo` with no writer), free it with a writer and fail."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)  # generous on a loaded machine; a correct call returns at once
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a reader is blocked in open(): this releases it
        worker.join(60)
        pytest.fail(f"{call} blocked on the FIFO {fifo}")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


# -- what is allowed ---------------------------------------------------------------------------------------------


def test_a_regular_file_inside_a_root_resolves_to_itself(root: Path) -> None:
    image = root / "sub" / "shot.png"
    image.parent.mkdir()
    image.write_bytes(b"x")
    assert FileAccessPolicy([root]).resolve_file(str(image)) == image


def test_symlinks_and_dotdot_that_stay_inside_are_followed(root: Path) -> None:
    (root / "sub").mkdir()
    target = root / "real.png"
    target.write_bytes(b"x")
    (root / "sub" / "link.png").symlink_to(target)
    policy = FileAccessPolicy([root])
    assert policy.resolve_file(str(root / "sub" / "link.png")) == target
    assert policy.resolve_file(f"{root}/sub/../real.png") == target


def test_a_root_named_through_a_symlink_is_compared_by_its_target(root: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(root)
    (root / "a.png").write_bytes(b"x")
    policy = FileAccessPolicy([tmp_path / "alias"])
    assert policy.roots == (root,)
    assert policy.resolve_file(str(tmp_path / "alias" / "a.png")) == root / "a.png"
    assert policy.resolve_file(str(root / "a.png")) == root / "a.png"


# -- refusals ----------------------------------------------------------------------------------------------------


def test_a_relative_path_is_refused_even_when_it_would_land_inside(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (root / "a.png").write_bytes(b"x")
    monkeypatch.chdir(root)
    error = refused(FileAccessPolicy([root]), "a.png")
    assert "relative" in error.reason


def test_a_file_outside_the_roots_is_refused(root: Path, outside: Path) -> None:
    error = refused(FileAccessPolicy([root]), str(outside / "secret.txt"))
    assert "outside the allowed folders" in error.reason


def test_a_symlink_pointing_outside_is_refused(root: Path, outside: Path) -> None:
    (root / "innocent.png").symlink_to(outside / "secret.txt")
    (root / "dir").symlink_to(outside)
    policy = FileAccessPolicy([root])
    assert "outside" in refused(policy, str(root / "innocent.png")).reason
    assert "outside" in refused(policy, str(root / "dir" / "secret.txt")).reason


def test_a_dotdot_escape_is_refused(root: Path, outside: Path) -> None:
    (root / "sub").mkdir()
    error = refused(FileAccessPolicy([root]), f"{root}/sub/../../outside/secret.txt")
    assert "outside" in error.reason


def test_a_sibling_folder_sharing_the_roots_prefix_is_outside(root: Path) -> None:
    sibling = root.parent / (root.name + "-evil")
    sibling.mkdir()
    (sibling / "a.png").write_bytes(b"x")
    refused(FileAccessPolicy([root]), str(sibling / "a.png"))


def test_missing_files_inside_are_reported_missing_outside_only_outside(root: Path, outside: Path) -> None:
    policy = FileAccessPolicy([root])
    assert refused(policy, str(root / "nope.png")).reason == "no such file"
    # Outside the roots a missing file and an existing one get the same answer: no probing for files elsewhere.
    assert refused(policy, str(outside / "nope.png")).reason == refused(policy, str(outside / "secret.txt")).reason


@posix_only
def test_dev_zero_is_refused_as_outside_and_as_a_device() -> None:
    assert "outside" in refused(FileAccessPolicy([Path("/tmp")]), "/dev/zero").reason
    assert (
        refused(FileAccessPolicy([Path("/dev")]), "/dev/zero").reason == "it is a character device, not a regular file"
    )


@posix_only
def test_a_fifo_is_refused_without_being_opened(root: Path) -> None:
    fifo = root / "pipe.mp4"
    os.mkfifo(fifo)
    policy = FileAccessPolicy([root])
    with pytest.raises(FileAccessDenied) as info:
        without_hanging(fifo, lambda: policy.resolve_file(str(fifo)))
    assert info.value.reason == "it is a FIFO (named pipe), not a regular file"
    assert str(root) in str(info.value)


@posix_only
def test_a_socket_is_refused(root: Path, tmp_path: Path) -> None:
    path = root / "s.png"
    if len(str(path)) > 100:
        pytest.skip("the temporary path is too long for a Unix socket")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert refused(FileAccessPolicy([root]), str(path)).reason == "it is a socket, not a regular file"


def test_a_directory_is_refused(root: Path) -> None:
    (root / "folder.png").mkdir()
    policy = FileAccessPolicy([root])
    assert refused(policy, str(root / "folder.png")).reason == "it is a folder, not a regular file"
    assert "folder" in refused(policy, str(root)).reason


@posix_only
def test_a_symlink_loop_is_refused(root: Path) -> None:
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    assert "loop" in refused(FileAccessPolicy([root]), str(root / "a")).reason


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_refused(root: Path) -> None:
    locked = root / "locked.png"
    locked.write_bytes(b"x")
    locked.chmod(0)
    assert "permission denied" in refused(FileAccessPolicy([root]), str(locked)).reason


def test_bad_strings_are_refused(root: Path) -> None:
    policy = FileAccessPolicy([root])
    refused(policy, f"{root}/a\0.png")
    with pytest.raises(FileAccessDenied):
        policy.resolve_file("")


def test_with_no_roots_every_path_is_refused_and_the_message_says_so(root: Path) -> None:
    (root / "a.png").write_bytes(b"x")
    error = refused(FileAccessPolicy([]), str(root / "a.png"))
    assert "none: no allowed folder exists" in str(error)


# -- open_regular: the second check, on the descriptor --------------------------------------------------------


def test_open_regular_opens_a_file_for_blocking_reads(root: Path) -> None:
    (root / "a.png").write_bytes(b"content")
    with open_regular(root / "a.png") as file:
        assert os.get_blocking(file.fileno())
        assert file.read() == b"content"


@posix_only
def test_open_regular_refuses_a_fifo_without_blocking(root: Path) -> None:
    fifo = root / "swapped.mp4"
    os.mkfifo(fifo)
    with pytest.raises(FileAccessDenied) as info:
        without_hanging(fifo, lambda: open_regular(fifo))
    assert "FIFO" in info.value.reason
    assert "none: no allowed folder exists" not in str(info.value)  # it has no roots at hand: says nothing false


@posix_only
def test_open_regular_refuses_a_device_and_a_symlink_swapped_in(root: Path, outside: Path) -> None:
    with pytest.raises(FileAccessDenied, match="character device"):
        open_regular(Path("/dev/zero"))
    (root / "checked.png").symlink_to(outside / "secret.txt")
    with pytest.raises(FileAccessDenied, match="symbolic link"):
        open_regular(root / "checked.png")


# -- where the roots come from ---------------------------------------------------------------------------------


def test_from_settings_uses_allowed_dirs_else_the_working_folder(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = FileAccessPolicy.from_settings(Settings(allowed_dirs=(root,)))
    assert (explicit.roots, explicit.explicit) == ((root,), True)
    monkeypatch.chdir(tmp_path)
    default = FileAccessPolicy.from_settings(Settings())
    assert (default.roots, default.explicit) == ((tmp_path.resolve(),), False)


def test_relative_roots_are_a_programming_error() -> None:
    with pytest.raises(ValueError):
        FileAccessPolicy([Path("relative")])


def test_no_client_roots_leave_the_policy_as_it_is(root: Path) -> None:
    policy = FileAccessPolicy([root])
    assert policy.with_client_roots(None, may_widen=True) is policy


def test_client_roots_narrow_explicit_allowed_dirs(root: Path, outside: Path) -> None:
    (root / "project").mkdir()
    (root / "project" / "in.png").write_bytes(b"x")
    (root / "other.png").write_bytes(b"x")
    policy = FileAccessPolicy([root], explicit=True)
    for may_widen in (True, False):
        narrowed = policy.with_client_roots([root / "project", outside], may_widen=may_widen)
        assert narrowed.roots == (root / "project",)  # `outside` is not allowed: it is dropped, never added
        assert narrowed.resolve_file(str(root / "project" / "in.png"))
        assert "outside" in refused(narrowed, str(root / "other.png")).reason
        refused(narrowed, str(outside / "secret.txt"))


def test_an_allowed_root_inside_a_client_root_survives_the_intersection(root: Path) -> None:
    (root / "sub").mkdir()
    policy = FileAccessPolicy([root / "sub", Path("/nonexistent-elsewhere")], explicit=True)
    assert policy.with_client_roots([root], may_widen=False).roots == (root / "sub",)


def test_disjoint_client_roots_leave_nothing_readable(root: Path, outside: Path) -> None:
    narrowed = FileAccessPolicy([root]).with_client_roots([outside], may_widen=True)
    assert narrowed.roots == ()
    refused(narrowed, str(outside / "secret.txt"))
    assert FileAccessPolicy([root]).with_client_roots([], may_widen=True).roots == ()


def test_client_roots_replace_the_working_folder_default_only_when_they_may_widen(root: Path, outside: Path) -> None:
    default = FileAccessPolicy([root], explicit=False)
    widened = default.with_client_roots([outside], may_widen=True)  # stdio: the user's own host
    assert widened.roots == (outside,)
    assert widened.resolve_file(str(outside / "secret.txt")) == outside / "secret.txt"
    assert widened.with_client_roots([root], may_widen=True).roots == ()  # the result is no default any more
    over_http = default.with_client_roots([outside], may_widen=False)
    assert over_http.roots == ()
    refused(over_http, str(outside / "secret.txt"))


def test_paths_from_root_uris_keeps_local_file_uris_only() -> None:
    uris = [
        "file:///home/me/my%20project",
        "file://localhost/srv/data",
        "file:///home/me/my%20project",  # a duplicate
        "https://example.com/repo",
        "file://otherhost/share",
        "file:relative",
        "not a uri",
    ]
    assert paths_from_root_uris(uris) == [Path("/home/me/my project"), Path("/srv/data")]
