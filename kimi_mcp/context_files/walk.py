"""From the paths, folders and globs a caller names to the files to read, under the file access policy.

Every path is checked by `kimi_mcp/access.py`'s policy after its symlinks are resolved: a file or folder named
outside the allowed roots is refused (`FileAccessDenied`), and a symbolic link met while walking a folder that
leads outside them is skipped with its reason. Walking a folder leaves out what a developer would (each with its
reason, SkipReason in model.py): version control, dependencies, virtual environments, caches, build output, lock
files and bundles, and whatever the folder's `.gitignore` files exclude, as git reads them (each file's patterns
relative to its own folder, a deeper file overriding a shallower one, an excluded folder never entered). A path
named directly is the caller's explicit choice: none of those folder rules apply to it.

Paths are reported relative to the allowed root holding them, with `/` separators, so they read the same on
every platform and from turn to turn. BLOCKING (callers run it in a worker thread).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, NamedTuple

from kimi_mcp.access import FileAccessPolicy
from kimi_mcp.context_files.model import SkippedPath, SkipReason
from kimi_mcp.errors import FileAccessDenied, TooManyContextFiles

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

# More files than this after the folder rules cannot fit Kimi's window (262,144 tokens is ~13 tokens a file):
# the walk stops rather than read them all only to refuse them.
MAX_FILES = 20_000

_DIR_RULES: dict[str, SkipReason] = {
    **dict.fromkeys((".git", ".hg", ".svn", ".bzr", "_darcs"), "vcs"),
    **dict.fromkeys(("node_modules", "bower_components", "jspm_packages", ".pnpm-store", ".yarn"), "dependencies"),
    **dict.fromkeys((".venv", "venv", ".conda"), "virtualenv"),
    **dict.fromkeys(
        (
            "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".pytype", ".hypothesis", ".tox", ".nox",
            ".cache", ".gradle", ".parcel-cache", ".turbo", ".sass-cache", ".terraform", ".dart_tool", ".angular",
        ),
        "cache",
    ),
    **dict.fromkeys(
        (".next", ".nuxt", ".svelte-kit", ".output", ".eggs", "_build", "htmlcov", "coverage"), "build_output"
    ),
}  # fmt: skip
# Build folders with everyday names: skipped unless they hold an __init__.py (a Python package called `build`,
# as in pypa/build, is source).
_BUILD_NAMES = frozenset(("build", "dist", "target", "out"))
_GENERATED_FILES = frozenset(
    (
        "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "poetry.lock",
        "Pipfile.lock", "uv.lock", "pdm.lock", "Cargo.lock", "composer.lock", "Gemfile.lock", "go.sum",
        "mix.lock", "pubspec.lock", "Podfile.lock", "packages.lock.json", "flake.lock",
    )
)  # fmt: skip
_NAMED_SKIPS = _GENERATED_FILES | {".git"}  # _file's names, in one set for the walk's common case
_GENERATED_SUFFIXES = (".min.js", ".min.css", ".min.mjs", ".js.map", ".mjs.map", ".cjs.map", ".css.map")
_GLOB_MAGIC = re.compile(r"[*?\[]")
# A NamedTuple built through its class calls a Python-level __new__; tuple's own, in C, builds the same object at
# half the cost: what a tuple a file costs, a thousand times a tree.
_new_tuple = tuple.__new__


class Candidate(NamedTuple):
    """A file to read: its display path and the resolved path to open."""

    path: str
    real: str  # resolved: inside an allowed root


@dataclass
class Walked:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[SkippedPath] = field(default_factory=list)


def expand(
    specs: Sequence[str], policy: FileAccessPolicy, *, check_cancelled: Callable[[], None] | None = None
) -> Walked:
    """The files `specs` name, each once (by resolved path), and what was skipped, each once; unsorted.

    Raises `FileAccessDenied` for a spec outside the roots or missing, `TooManyContextFiles` past MAX_FILES."""
    walker = _Walker(policy, check_cancelled or (lambda: None))
    for raw in specs:
        walker.spec(raw.strip())
    skipped = {(s.path, s.reason): s for s in walker.skipped}  # overlapping specs meet the same skips
    return Walked(walker.candidates, list(skipped.values()))


class _Frame(NamedTuple):
    """A folder to list: where it shows in the tree (`logical`), where it really is, the .gitignore files that
    apply, the glob's states there (None: everything under it is asked for), and what its entries' display paths
    start with (its parent's and its name: None for the folder a spec names, worked out from the roots)."""

    logical: str
    real: str
    ignores: Ignores
    states: frozenset[int] | None
    shown: str | None = None


class _Walker:
    def __init__(self, policy: FileAccessPolicy, check_cancelled: Callable[[], None]) -> None:
        self.policy = policy
        self.check_cancelled = check_cancelled
        self.candidates: list[Candidate] = []
        self.skipped: list[SkippedPath] = []
        self.seen_files: set[str] = set()
        self.hits = 0  # files the current spec met (read or skipped): a glob with none matched nothing
        # Outermost first, so a path under nested roots is shown relative to the outer one.
        ordered = sorted(policy.roots, key=lambda r: len(r.parts))
        # (prefix, how paths under it are shown): the root's name with several roots, nothing with one.
        self.roots = [(_folder_prefix(str(r)), f"{r.name}/" if len(ordered) > 1 and r.name else "") for r in ordered]

    # -- specs ----------------------------------------------------------------------------------------------

    def spec(self, raw: str) -> None:
        base, pattern = _split_glob(raw)
        if pattern is not None:
            self.hits = 0
            self._walk(self._spec_folder(raw, base), _Glob(pattern))
            if not self.hits:
                self.skipped.append(SkippedPath(raw, "no_match"))
            return
        real = Path(os.path.realpath(raw)) if raw and "\0" not in raw and Path(raw).is_absolute() else None
        if real is not None and self.policy.contains(real) and real.is_dir():
            self._walk(self._spec_folder(raw, raw), None)
            return
        # A file (or anything else): the policy's own check, in its own words for every refusal.
        real_file = str(self.policy.resolve_file(raw))
        self._add(real_file, self._display(real_file))

    def _spec_folder(self, raw: str, folder: str) -> str:
        """The resolved folder a folder or glob spec walks, or FileAccessDenied worded as access.py words it."""
        if not folder or "\0" in folder or not Path(folder).is_absolute():
            raise self._denied(raw, "it is a relative path, and the server's working folder is not the caller's")
        real = Path(os.path.realpath(folder))
        if not self.policy.contains(real):  # before any existence check, as access.py: no probing outside
            raise self._denied(raw, "it is outside the allowed folders (symlinks and `..` are resolved first)")
        if not real.is_dir():
            raise self._denied(raw, f"{folder} is not a folder" if real.exists() else "no such folder")
        return str(real)

    def _denied(self, raw: str, reason: str) -> FileAccessDenied:
        return FileAccessDenied(raw, reason, [str(root) for root in self.policy.roots])

    def _add(self, real: str, shown: str) -> None:
        self.hits += 1
        if real in self.seen_files:
            return
        self.seen_files.add(real)
        if len(self.candidates) >= MAX_FILES:
            raise TooManyContextFiles(MAX_FILES)
        self.candidates.append(_new_tuple(Candidate, (shown, real)))

    def _display(self, path: str) -> str:
        """`path` relative to the outermost allowed root holding it; with several roots, under the root's name."""
        for root, shown in self.roots:
            if path.startswith(root) or path + os.sep == root:
                relative = path[len(root) :]
                if os.sep != "/":
                    relative = relative.replace(os.sep, "/")
                return f"{shown}{relative}" if relative else (shown.rstrip("/") or ".")
        return path  # not reached: every path walked lies inside a root

    def _shown_prefix(self, folder: str) -> str:
        """What the display path of each entry of `folder` starts with: computed once a folder, not once a file."""
        shown = self._display(folder)
        return "" if shown == "." else shown + "/"

    def _skip(self, shown: str, reason: SkipReason, *, folder: bool = False) -> None:
        self.hits += not folder  # a folder left out is no proof that a glob matched anything
        self.skipped.append(SkippedPath(shown + ("/" if folder else ""), reason))

    # -- folders --------------------------------------------------------------------------------------------

    def _walk(self, base: str, glob: _Glob | None) -> None:
        """Every file under `base` (resolved) the rules keep; with a glob, those it matches.

        The hot loop of a large tree: what is the same for every entry of a folder (how its paths are shown,
        where they stand under each .gitignore) is worked out once for the folder, and a regular file costs a
        name check, the .gitignore quick test and a set lookup, no system call (the walk's `d_type` says it is
        a regular file; reading checks it again on the open descriptor)."""
        seen_dirs: set[str] = set()
        stack = [_Frame(base, base, _ancestor_ignores(Path(base), self.policy), glob.start() if glob else None)]
        while stack:
            frame = stack.pop()
            if frame.real in seen_dirs:
                continue  # a symbolic link back to a folder already listed
            seen_dirs.add(frame.real)
            if len(seen_dirs) % 16 == 0:  # a call through anyio: every 16 folders is soon enough
                self.check_cancelled()
            try:
                with os.scandir(frame.real) as listing:
                    entries = list(listing)
            except OSError:
                self._skip(self._display(frame.logical), "unreadable", folder=True)
                continue
            names = {entry.name for entry in entries}
            if ("pyvenv.cfg" in names or "CACHEDIR.TAG" in names) and frame.logical != base:
                self._skip_by_content(frame, names)
                continue
            ignores = frame.ignores
            if ".gitignore" in names:
                ignores = _with_gitignore(ignores, frame.real, frame.logical)
            shown = self._shown_prefix(frame.logical) if frame.shown is None else frame.shown
            # _Here(logical, shown, rules), built as the file tuples are: once a folder, a thousand times a tree
            here = _new_tuple(_Here, (frame.logical + os.sep, shown, _rules_in(ignores, frame.logical)))
            states, rules = frame.states, here.rules
            for entry in entries:
                if states is None and entry.is_file(follow_symlinks=False):  # the common case, first
                    name = entry.name
                    # _file, in the order it asks, without its call for the files kept
                    if name in _NAMED_SKIPS or name.endswith(_GENERATED_SUFFIXES):
                        self._file(name, entry.path, here)  # .git, or generated: _file says which
                    elif rules and _ignored_here(rules, name):
                        self._skip(here.shown + name, "gitignored")
                    else:
                        self._add(entry.path, here.shown + name)
                    continue
                entry_states = states
                if entry_states is not None:
                    assert glob is not None
                    entry_states = glob.step(entry_states, entry.name)
                    if not entry_states:
                        continue  # the glob cannot match here: not asked for, so not a skip either
                self._entry(entry, here, ignores, entry_states, glob, stack)

    def _skip_by_content(self, frame: _Frame, names: set[str]) -> bool:
        if "pyvenv.cfg" in names:
            self._skip(self._display(frame.logical), "virtualenv", folder=True)
        elif "CACHEDIR.TAG" in names:  # the Cache Directory Tagging convention (cargo's target/, ...)
            self._skip(self._display(frame.logical), "cache", folder=True)
        else:
            return False
        return True

    def _entry(
        self,
        entry: os.DirEntry[str],
        here: _Here,
        ignores: Ignores,
        states: frozenset[int] | None,
        glob: _Glob | None,
        stack: list[_Frame],
    ) -> None:
        wanted = states is None or (glob is not None and glob.full(states))
        name = entry.name
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if not self.policy.contains(Path(target)):
                if wanted or os.path.isdir(target):
                    self._skip(here.shown + name, "outside_roots")
            elif os.path.isdir(target):
                self._folder(name, here, target, ignores, states, glob, stack)
            elif not wanted:
                pass
            elif os.path.isfile(target):
                self._file(name, target, here)
            else:
                self._skip(here.shown + name, "special_file" if os.path.exists(target) else "broken_symlink")
        elif entry.is_dir(follow_symlinks=False):
            self._folder(name, here, entry.path, ignores, states, glob, stack)
        elif not wanted:
            pass
        elif entry.is_file(follow_symlinks=False):
            self._file(name, entry.path, here)
        else:
            self._skip(here.shown + name, "special_file")

    def _folder(
        self,
        name: str,
        here: _Here,
        real: str,
        ignores: Ignores,
        states: frozenset[int] | None,
        glob: _Glob | None,
        stack: list[_Frame],
    ) -> None:
        reason = _DIR_RULES.get(name)
        if reason is None and (name.endswith(".egg-info") or _is_build_folder(name, real)):
            reason = "build_output"
        if reason is None and here.rules and _ignored_here(here.rules, name + "/"):
            reason = "gitignored"
        if reason is not None:
            self._skip(here.shown + name, reason, folder=True)
            return
        if states is not None and glob is not None and glob.full(states):
            states = None  # the folder itself matches: everything under it is asked for, as for a folder named
        stack.append(_new_tuple(_Frame, (here.logical + name, real, ignores, states, f"{here.shown}{name}/")))

    def _file(self, name: str, real: str, here: _Here) -> None:
        if name == ".git":  # a worktree's or a submodule's pointer file
            self._skip(here.shown + name, "vcs")
        elif name in _GENERATED_FILES or name.endswith(_GENERATED_SUFFIXES):
            self._skip(here.shown + name, "generated")
        elif here.rules and _ignored_here(here.rules, name):
            self._skip(here.shown + name, "gitignored")
        else:
            self._add(real, here.shown + name)


class _Here(NamedTuple):
    """What every entry of a folder being listed shares."""

    logical: str  # the folder's path as walked, with a trailing separator
    shown: str  # what each entry's display path starts with
    rules: Rules  # the .gitignore files that apply, deepest first, with the folder's path under each


def _is_build_folder(name: str, real: str) -> bool:
    return name in _BUILD_NAMES and not os.path.exists(os.path.join(real, "__init__.py"))


# -- .gitignore -----------------------------------------------------------------------------------------------

# A gitignore stack: (the folder the patterns are relative to, as a string ending in the separator, the patterns,
# a quick test), outermost first. Tuples: each folder shares its parent's stack, extended only where it has its
# own .gitignore.
Ignores = tuple[tuple[str, "GitIgnoreSpec", re.Pattern[str]], ...]
# The same files as they apply to one folder's entries: (the folder's path relative to the file's folder, with
# `/` separators and a trailing `/`, or "" for the file's own folder; the patterns; the quick test), deepest
# first. Worked out once a folder (`_rules_in`), so an entry costs a concatenation and a regex match a file.
Rules = tuple[tuple[str, "GitIgnoreSpec", re.Pattern[str]], ...]


def _rules_in(ignores: Ignores, folder: str) -> Rules:
    prefix = _folder_prefix(folder)
    rules = []
    for base, spec, quick in reversed(ignores):
        if prefix.startswith(base):
            relative = prefix[len(base) :]
            rules.append((relative.replace(os.sep, "/") if os.sep != "/" else relative, spec, quick))
    return tuple(rules)


def _ignored_here(rules: Rules, name: str) -> bool:
    """`_ignored` for an entry of the folder `rules` were worked out for; `name` ends with `/` for a folder."""
    for relative, spec, quick in rules:
        path = relative + name
        if not quick.match(path):
            continue  # no pattern of this file matches: the common case, decided by one regex
        result = spec.check_file(path)
        if result.include is not None:
            return bool(result.include)
    return False


def _ignored(ignores: Ignores, path: str, *, is_dir: bool) -> bool:
    """git's answer for one path outside a walk: the deepest file with a matching pattern decides, and in it the
    last matching pattern (`_ignored_here` with the rules of the path's folder)."""
    parent, _, name = path.rstrip(os.sep).rpartition(os.sep)
    return _ignored_here(_rules_in(ignores, parent), name + "/" if is_dir else name)


def _with_gitignore(ignores: Ignores, real: str, logical: str, name: str = ".gitignore") -> Ignores:
    loaded = _load_spec(os.path.join(real, name))
    return ignores if loaded is None else (*ignores, (_folder_prefix(logical), *loaded))


def _folder_prefix(folder: str) -> str:
    return folder if folder.endswith(os.sep) else folder + os.sep


def _load_spec(path: str) -> tuple[GitIgnoreSpec, re.Pattern[str]] | None:
    """The patterns of an ignore file, and one regex matching wherever any of them matches (the spec decides
    what a match means: negations, folder-only patterns, the last match); None when it has no pattern."""
    try:
        with open(path, "rb") as file:
            content = file.read().decode("utf-8", "replace")
    except OSError:
        return None  # an unreadable ignore file excludes nothing
    return _parse_spec(content)


@functools.lru_cache(maxsize=256)
def _parse_spec(content: str) -> tuple[GitIgnoreSpec, re.Pattern[str]] | None:
    """`_load_spec` for the text of an ignore file. Cached by that text: the same tree read turn after turn has
    the same .gitignore files, and parsing them (pathspec, in Python) cost more than reading them. The file is
    read every time, so an edited one is parsed again."""
    from pathspec import GitIgnoreSpec  # loaded on first use: the server's start-up never pays for it

    spec = GitIgnoreSpec.from_lines(content.splitlines())
    regexes = [p.regex for p in spec.patterns if p.include is not None and getattr(p, "regex", None) is not None]
    if not regexes:
        return None  # blank, or only comments (as git's template .git/info/exclude)
    if len(regexes) != sum(p.include is not None for p in spec.patterns) or len({r.flags for r in regexes}) > 1:
        return spec, re.compile("")  # a pattern without a regex: no quick test, ask the spec every time
    return spec, _quick_test([r.pattern for r in regexes], regexes[0].flags)


_ANY_FOLDER = "^(?:.+/)?"  # how pathspec starts the regex of a pattern without a slash: at any depth


def _quick_test(patterns: list[str], flags: int) -> re.Pattern[str]:
    """One regex that matches (from the start) wherever any of `patterns` does.

    pathspec starts the regex of a pattern without a slash (`*.log`, `build/`) with `^(?:.+/)?`; in a plain
    alternation each of them backtracks over the whole path again (4 µs a path for 4 patterns). Factored out,
    `^(?:(?:.+/)?(?:a|b|...)|...)` walks the path once (0.5 µs); a regex alternation distributes over
    concatenation, so it matches the same paths. pathspec names a group in each pattern; in one alternation the
    names would clash, and groups do not change what matches."""
    floating, anchored = [], []
    for pattern in patterns:
        pattern = pattern.replace("(?P<ps_d>", "(?:")
        if pattern.startswith(_ANY_FOLDER):
            floating.append(f"(?:{pattern[len(_ANY_FOLDER) :]})")
        elif pattern.startswith("^"):
            anchored.append(f"(?:{pattern[1:]})")
        else:
            return re.compile("")  # a shape this was not written for: ask the spec every time
    branches = ([f"(?:.+/)?(?:{'|'.join(floating)})"] if floating else []) + anchored
    return re.compile(f"^(?:{'|'.join(branches)})", flags)


def _ancestor_ignores(base: Path, policy: FileAccessPolicy) -> Ignores:
    """The ignore files above `base` that git applies under it: from the repository's top (the nearest folder
    holding `.git`) down, never above the allowed root; `.git/info/exclude` too. If they exclude `base` itself
    (or a folder on the way to it), the caller named an excluded folder on purpose: then only the .gitignore
    files inside it count."""
    chain: list[Path] = []
    folder = base
    while policy.contains(folder):
        chain.append(folder)
        if (folder / ".git").exists() or folder.parent == folder:
            break
        folder = folder.parent
    ignores: Ignores = ()
    for folder in reversed(chain):
        if (folder / ".git" / "info" / "exclude").is_file():
            ignores = _with_gitignore(ignores, str(folder / ".git" / "info"), str(folder), "exclude")
        if folder != base and (folder / ".gitignore").is_file():  # base's own is read by the walk
            ignores = _with_gitignore(ignores, str(folder), str(folder))
    if any(_ignored(ignores, str(folder), is_dir=True) for folder in chain):
        return ()
    return ignores


# -- globs ----------------------------------------------------------------------------------------------------


def _split_glob(raw: str) -> tuple[str, list[str] | None]:
    """(the folder before the first wildcard, the pattern's parts after it), or (raw, None) for a plain path."""
    parts = PurePath(raw).parts
    first = next((i for i, part in enumerate(parts) if _GLOB_MAGIC.search(part)), None)
    if first is None:
        return raw, None
    return str(PurePath(*parts[:first])) if first else "", list(parts[first:])


class _Glob:
    """A glob over the parts of a path relative to its folder: `**` is any number of folders (none included),
    `*`, `?` and `[...]` match within one name. A folder that matches the whole pattern stands for every file
    under it. Matching is a set of positions in the pattern, advanced one path part at a time."""

    def __init__(self, pattern: list[str]) -> None:
        self.parts: list[re.Pattern[str] | None] = [
            None if part == "**" else re.compile(fnmatch.translate(part)) for part in pattern
        ]

    def _closure(self, states: frozenset[int]) -> frozenset[int]:
        out = set(states)
        for i in sorted(states):
            while i < len(self.parts) and self.parts[i] is None:  # `**` may match no folder at all
                i += 1
                out.add(i)
        return frozenset(out)

    def start(self) -> frozenset[int]:
        return self._closure(frozenset({0}))

    def step(self, states: frozenset[int], name: str) -> frozenset[int]:
        nxt: set[int] = set()
        for i in states:
            if i == len(self.parts):
                continue
            part = self.parts[i]
            if part is None:
                nxt.add(i)
            elif part.match(name):
                nxt.add(i + 1)
        return self._closure(frozenset(nxt))

    def full(self, states: frozenset[int]) -> bool:
        return len(self.parts) in states
