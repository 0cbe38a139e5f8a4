"""What a package index gets: the sdist and wheel `python -m build` makes, their file lists and their metadata.

Both are built once for this module, offline (`--no-isolation`: build, hatchling and hatch-fancy-pypi-readme come
with the test extra), from a copy of the repository's files (tracked and untracked, as git sees them) into which
the scratch a CI run or a developer leaves behind is planted: the sdist must leave it out on pyproject.toml's
rules alone, so the copy has no .gitignore. The wheel is built from the sdist, as `python -m build` does, which
also proves the sdist is complete enough to build.
"""

from __future__ import annotations

import email
import email.message
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from kimi_mcp._version import __version__

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
HOME_URL = "https://github.com/kimi-mcp/kimi-mcp"
BUILD_TIMEOUT = 600.0  # seconds; a build takes a few on an idle machine

# What a CI run or a developer leaves in the tree; none of it may reach the sdist.
SCRATCH = (
    ".ci/venv/pyvenv.cfg",
    ".ci/venv/bin/python",
    ".ci/node/node_modules/@modelcontextprotocol/inspector/package.json",
    ".ci/dist/kimi_mcp-0.0.1-py3-none-any.whl",
    ".ci/wheel-venv/pyvenv.cfg",
    ".ci/wheel-venv/lib/python3.11/site-packages/kimi_mcp/__init__.py",
    ".venv/pyvenv.cfg",
    "dist/kimi_mcp-0.0.1.tar.gz",
    "node_modules/left-pad/index.js",
    "kimi_mcp/__pycache__/cli.cpython-311.pyc",
    "tests/__pycache__/conftest.cpython-311-pytest-8.3.5.pyc",
    ".pytest_cache/v/cache/nodeids",
    ".ruff_cache/CACHEDIR.TAG",
    ".hypothesis/examples/0a/1b",
    "kimi.db",
    "bench/results/scratch.db",
    "bench/results/scratch.db-wal",
)
SCRATCH_PARTS = {"__pycache__", "node_modules", ".pytest_cache", ".ruff_cache", ".hypothesis", ".venv", "dist"}

# A link's target in Markdown or HTML: `[text](target)`, `[text](<target>)`, `[ref]: target`, `href="…"`, `src="…"`.
LINK_TARGETS = re.compile(
    r"\]\(\s*(?:<([^>]*)>|([^)\s]+))"
    r"|^ {0,3}\[[^\]]+\]:[ \t]*<?([^>\s]+)"
    r"|\b(?:href|src)=\"([^\"]*)\"",
    re.MULTILINE,
)
ABSOLUTE = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


@dataclass(frozen=True)
class Built:
    tree: Path  # the copy the build ran in
    output: str  # what `python -m build` printed, stdout and stderr
    sdist: Path
    wheel: Path


def source_files() -> list[str]:
    """The repository's files as git sees them (tracked and untracked, less what .gitignore ignores)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    names = [name for name in listed.split("\0") if name and (ROOT / name).is_file() and name != ".gitignore"]
    # A folder under .ci/ is scratch (a venv, node, dist, the wheel venv) even where .gitignore does not say so.
    return [name for name in names if not (name.startswith(".ci/") and name.count("/") > 1)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout: the build copies the files git lists")
    tree = tmp_path_factory.mktemp("tree")
    for name in source_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    for name in SCRATCH:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("scratch\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return Built(
        tree=tree,
        output=output,
        sdist=out / f"kimi_mcp-{__version__}.tar.gz",
        wheel=out / f"kimi_mcp-{__version__}-py3-none-any.whl",
    )


def sdist_names(built: Built) -> set[str]:
    """The sdist's files, relative to its top folder."""
    prefix = f"kimi_mcp-{__version__}/"
    with tarfile.open(built.sdist) as archive:
        names = {member.name for member in archive.getmembers() if member.isfile()}
    assert all(name.startswith(prefix) for name in names), sorted(names)
    return {name.removeprefix(prefix) for name in names}


def wheel_names(built: Built) -> set[str]:
    with zipfile.ZipFile(built.wheel) as archive:
        return set(archive.namelist())


def wheel_text(built: Built, name: str) -> str:
    with zipfile.ZipFile(built.wheel) as archive:
        return archive.read(name).decode("utf-8")


def metadata_of(text: str) -> email.message.Message:
    return email.message_from_string(text)


def wheel_metadata(built: Built) -> email.message.Message:
    return metadata_of(wheel_text(built, f"kimi_mcp-{__version__}.dist-info/METADATA"))


def sdist_metadata(built: Built) -> email.message.Message:
    with tarfile.open(built.sdist) as archive:
        member = archive.extractfile(f"kimi_mcp-{__version__}/PKG-INFO")
        assert member is not None
        return metadata_of(member.read().decode("utf-8"))


def link_targets(text: str) -> list[str]:
    return ["".join(groups) for groups in LINK_TARGETS.findall(text)]


def relative_links(text: str) -> list[str]:
    """Links a package index page could not follow: every target without a scheme, `#anchors` included."""
    return [target for target in link_targets(text) if not ABSOLUTE.match(target)]


def readme_substitutions(text: str) -> str:
    """README text through pyproject.toml's substitutions, in order, as hatch-fancy-pypi-readme applies them."""
    hook = PYPROJECT["tool"]["hatch"]["metadata"]["hooks"]["fancy-pypi-readme"]
    for rule in hook["substitutions"]:
        text = re.sub(rule["pattern"], rule["replacement"], text)
    return text


def test_python_m_build_makes_both_archives_without_a_warning(built: Built) -> None:
    assert built.sdist.is_file() and built.wheel.is_file(), built.output
    assert f"Successfully built {built.sdist.name} and {built.wheel.name}" in built.output
    assert "warn" not in built.output.lower(), built.output


def test_sdist_ships_code_tests_docs_license_and_readme(built: Built) -> None:
    names = sdist_names(built)
    docs = {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}
    assert docs, "no docs pages found: the check below would prove nothing"
    expected = {
        "PKG-INFO",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "kimi_mcp/py.typed",
        "kimi_mcp/_version.py",
        "kimi_mcp/cli.py",
        "tests/conftest.py",
        "tests/test_packaging.py",
        ".ci/run",
        *docs,
    }
    assert expected <= names, sorted(expected - names)
    assert (built.tree / "README.md").read_text(encoding="utf-8") == (ROOT / "README.md").read_text(encoding="utf-8")


def test_sdist_leaves_out_ci_and_developer_scratch(built: Built) -> None:
    names = sdist_names(built)
    planted = [name for name in SCRATCH if (built.tree / name).is_file()]
    assert planted == list(SCRATCH)  # the scratch was there to leave out
    assert not names & set(SCRATCH), sorted(names & set(SCRATCH))
    assert not [name for name in names if SCRATCH_PARTS & set(name.split("/"))]
    assert [name for name in names if name.startswith(".ci/")] == [".ci/run"]
    assert not [name for name in names if name.endswith((".pyc", ".db", ".db-wal", ".whl", ".tar.gz"))]


def test_wheel_holds_the_package_its_py_typed_and_the_license(built: Built) -> None:
    names = wheel_names(built)
    dist_info = f"kimi_mcp-{__version__}.dist-info/"
    assert {"kimi_mcp/__init__.py", "kimi_mcp/cli.py", "kimi_mcp/py.typed", f"{dist_info}licenses/LICENSE"} <= names
    assert wheel_text(built, f"{dist_info}licenses/LICENSE") == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    strays = [name for name in names if not name.startswith(("kimi_mcp/", dist_info))]
    assert not strays, strays
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_console_script_is_named_like_the_distribution_so_uvx_and_pipx_run_find_it(built: Built) -> None:
    """`uvx kimi-mcp …` and `pipx run kimi-mcp …` run the console script named like the package."""
    entry_points = wheel_text(built, f"kimi_mcp-{__version__}.dist-info/entry_points.txt")
    assert "[console_scripts]\nkimi-mcp = kimi_mcp.cli:main\n" in entry_points
    assert wheel_metadata(built)["Name"] == "kimi-mcp"


@pytest.mark.parametrize("where", ["wheel", "sdist"])
def test_metadata_names_license_authors_urls_classifiers_and_keywords(built: Built, where: str) -> None:
    meta = wheel_metadata(built) if where == "wheel" else sdist_metadata(built)
    assert meta["Name"] == "kimi-mcp" and meta["Version"] == __version__
    assert meta["License-Expression"] == "MIT" and meta["License-File"] == "LICENSE"
    assert meta["Author"] == "kimi-mcp contributors"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert {"mcp", "kimi", "moonshot"} <= set(meta["Keywords"].split(","))
    classifiers = meta.get_all("Classifier") or []
    assert {"Typing :: Typed", "Programming Language :: Python :: 3.11"} <= set(classifiers)
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX expression says it (PEP 639)
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Source", "Documentation", "Issues", "Changelog"}
    assert urls["Homepage"] == HOME_URL
    assert all(url == HOME_URL or url.startswith(HOME_URL + "/") for url in urls.values()), urls


def test_link_check_flags_every_relative_link_form() -> None:
    """A control for the check below: each relative form is caught, absolute links are not."""
    text = (
        "[a](docs/x.md) [b](#heading) [c](<media dir/y.png>) ![d](./logo.png)\n"
        '[ref]: docs/z.md\n<a href="docs/w.md">w</a> <img src="/img.svg"> [e](https://example.com/q)\n'
    )
    expected = ["docs/x.md", "#heading", "media dir/y.png", "./logo.png", "docs/z.md", "docs/w.md", "/img.svg"]
    assert relative_links(text) == expected
    assert relative_links((ROOT / "README.md").read_text(encoding="utf-8")), "README.md has no relative link"


def test_readme_substitutions_make_each_relative_form_absolute_under_the_home_url() -> None:
    text = (
        "[a](docs/x.md#part) [b](#heading) [c](./docs/y.md) [d](/docs/z.md) ![e](bench/plot.png)\n"
        '[ref]: docs/r.md\n[top]:  #intro\n<a href="docs/w.md">w</a> <img src="./img.svg"> [f](  <docs/v w.md>)\n'
        "[ext](https://example.com/q) [mail](mailto:a@example.com)\n"
    )
    assert link_targets(readme_substitutions(text)) == [
        f"{HOME_URL}/blob/main/docs/x.md#part",
        f"{HOME_URL}#heading",
        f"{HOME_URL}/blob/main/docs/y.md",
        f"{HOME_URL}/blob/main/docs/z.md",
        f"{HOME_URL}/raw/main/bench/plot.png",
        f"{HOME_URL}/blob/main/docs/r.md",
        f"{HOME_URL}#intro",
        f"{HOME_URL}/blob/main/docs/w.md",
        f"{HOME_URL}/raw/main/img.svg",
        f"{HOME_URL}/blob/main/docs/v w.md",
        "https://example.com/q",
        "mailto:a@example.com",
    ]


@pytest.mark.parametrize("where", ["wheel", "sdist"])
def test_long_description_is_the_readme_with_every_link_absolute_and_working(built: Built, where: str) -> None:
    meta = wheel_metadata(built) if where == "wheel" else sdist_metadata(built)
    description = meta.get_payload()
    assert isinstance(description, str)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert description.strip() == readme_substitutions(readme).strip()  # nothing but the links changed

    assert link_targets(description) and not relative_links(description), relative_links(description)
    ours = [target for target in link_targets(description) if target.startswith(HOME_URL)]
    assert len(ours) == len(relative_links(readme))  # every relative README link now points under the home URL
    for target in ours:
        path = re.sub(rf"^{re.escape(HOME_URL)}(?:/(?:blob|raw)/main/)?", "", target).split("#", 1)[0]
        assert (ROOT / path).exists(), f"{target} names {path!r}, which is not in the repository"
