"""What reading files for Kimi produces: the files read, the paths skipped and why (docs/files.md)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

SkipReason = Literal[
    "vcs",  # .git, .hg, .svn: version control internals
    "dependencies",  # node_modules and the like: someone else's code
    "virtualenv",  # .venv, venv, any folder holding pyvenv.cfg
    "cache",  # __pycache__, .mypy_cache, .pytest_cache, .tox, ...
    "build_output",  # dist, build, target, *.egg-info, ...
    "generated",  # lock files, minified bundles, source maps: machine-written and long
    "gitignored",  # excluded by a .gitignore in the folder tree (or .git/info/exclude)
    "binary",  # NUL bytes, or not UTF-8, in the first 8 KiB
    "too_large",  # over KIMI_MCP_MAX_FILE_BYTES
    "outside_roots",  # a symbolic link leading outside the allowed folders
    "broken_symlink",  # a symbolic link to nothing (or a loop)
    "special_file",  # a FIFO, socket or device
    "unreadable",  # permission denied, or gone while being read
    "no_match",  # a glob that matched no file
]

SKIP_REASONS: dict[SkipReason, str] = {
    "vcs": "version-control folder",
    "dependencies": "installed dependencies",
    "virtualenv": "virtual environment",
    "cache": "cache folder",
    "build_output": "build output",
    "generated": "lock file or generated bundle",
    "gitignored": "excluded by .gitignore",
    "binary": "binary (not UTF-8 text)",
    "too_large": "over KIMI_MCP_MAX_FILE_BYTES",
    "outside_roots": "symbolic link leading outside the allowed folders",
    "broken_symlink": "broken symbolic link",
    "special_file": "not a regular file",
    "unreadable": "unreadable",
    "no_match": "glob matched no file",
}


@dataclass(frozen=True)
class SkippedPath:
    """A file or folder left out. A folder's `path` ends with `/` and stands for everything under it."""

    path: str
    reason: SkipReason
    detail: str | None = None

    def as_dict(self) -> dict[str, str]:
        entry = {"path": self.path, "reason": self.reason}
        if self.detail:
            entry["detail"] = self.detail
        return entry


class ContextFile(NamedTuple):
    """A text file read for Kimi. `path` is relative to its allowed root, with `/` separators."""

    path: str
    real: str  # the resolved path read
    text: str  # decoded UTF-8 (a byte-order mark dropped, CRLF read as LF)
    size: int  # bytes on disk
    lines: int
    tokens: int  # estimate_tokens(text): the content alone, without the header pack.py adds
    sha256: str  # of the bytes on disk: what decides "changed since it was sent"
    # json_size(text's UTF-8): what the text adds to the request body, measured while its bytes are at hand;
    # None for a ContextFile built by hand (pack.py measures it then).
    json_bytes: int | None = None

    @property
    def real_path(self) -> Path:
        return Path(self.real)


def json_size(data: bytes) -> tuple[int, int]:
    """(the size of UTF-8 `data` as the content of a JSON string, its newlines), as the wire writes JSON
    (kimi/wires.py: `ensure_ascii=False`, so only a quote, a backslash and the control characters are escaped).

    Counted rather than encoded, in one pass of C: json's encoder makes two, a character at a time, and builds
    the escaped copy (2.3 times the instructions); this deletes every byte that is written as it is, leaving the
    few dozen that are escaped. Those are all ASCII, which UTF-8 never uses inside a longer character, so the
    count is exact: 2 bytes for `"`, backslash, newline, CR, tab, backspace and form feed, 6 (`\\u001b`) for
    the other control characters. The newlines come with it, for the line count."""
    escaped = data.translate(None, WRITTEN_AS_IS)
    six = len(escaped.translate(None, SHORT_ESCAPES))
    return len(data) + len(escaped) + 4 * six, escaped.count(b"\n")


SHORT_ESCAPES = b'"\\\n\r\t\b\f'
WRITTEN_AS_IS = bytes(sorted(set(range(256)) - set(range(0x20)) - set(b'"\\')))


@dataclass(frozen=True)
class FileSet:
    """Everything a list of paths, folders and globs named: files sorted by path, and what was skipped."""

    files: tuple[ContextFile, ...]
    skipped: tuple[SkippedPath, ...]

    def skipped_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))
