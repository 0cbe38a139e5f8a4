"""The docs hold together: every relative link and `docs/….md` mention points to a file that exists, and every
page in docs/ is reachable from the README.

Docs are renamed and split as the code grows; a link to a page that moved fails silently on GitHub, so it fails
here instead. Anchors (`#section`) are not checked: they follow GitHub's heading slugs, not files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

# `[text](target)`, `[text](target "title")` or `[text](<target with spaces>)`.
MARKDOWN_LINK = re.compile(r"\]\(\s*(?:<([^>]*)>|([^)\s]+))")
# A page named in prose or code spans, e.g. "see docs/files.md" or `docs/kimi-api.md §6`: always from the
# repository's top. Not part of a longer path (`/srv/other/docs/x.md`, `bench/docs/x.md`).
DOCS_MENTION = re.compile(r"(?<![\w./-])docs/([\w.-]+\.md)\b")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, …


def relative_targets(text: str) -> list[str]:
    """The link targets of a Markdown text that name a local file (anchors dropped, same-page anchors left out)."""
    targets = []
    for bracketed, bare in MARKDOWN_LINK.findall(text):
        target = bracketed or bare
        if EXTERNAL.match(target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_the_link_patterns_find_what_the_docs_write() -> None:
    """A control for the patterns themselves: a checker that finds nothing would pass every page."""
    text = (
        "See [the wire](kimi-api.md#5-chat-payload-rules), [files](docs/files.md), [site](https://example.com), "
        "[here](#heading), [img](<media dir/x.png>), docs/media.md §2 and `docs/http.md`, "
        "not /srv/other/docs/notes.md."
    )
    assert relative_targets(text) == ["kimi-api.md", "docs/files.md", "media dir/x.png"]
    assert DOCS_MENTION.findall(text) == ["files.md", "media.md", "http.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_to_files_that_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    broken = [target for target in relative_targets(text) if not (page.parent / target).exists()]
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_docs_pages_mentioned_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = sorted({name for name in DOCS_MENTION.findall(text) if not (DOCS / name).is_file()})
    assert not missing, f"{page.relative_to(ROOT)} mentions docs pages that do not exist: {missing}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = ROOT / "README.md"
    linked = {(readme.parent / target).resolve() for target in relative_targets(readme.read_text(encoding="utf-8"))}
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"
