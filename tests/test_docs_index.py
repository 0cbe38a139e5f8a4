"""docs/index.md lists every page in docs/ (each with a line on what it is for), and links only pages that exist.

A page added to docs/ without a line in the index fails here; test_docs_links.py checks the README reaches it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# A bullet that links a page and says what it is for: "- [name.md](name.md) — what it is for".
ENTRY = re.compile(r"^- \[[^\]]+\]\(([\w.-]+\.md)\) — \S", re.MULTILINE)


def test_the_index_has_a_line_for_every_docs_page() -> None:
    listed = set(ENTRY.findall((DOCS / "index.md").read_text(encoding="utf-8")))
    pages = {page.name for page in DOCS.glob("*.md")} - {"index.md"}
    assert pages - listed == set(), f"docs/index.md has no line for: {sorted(pages - listed)}"
    assert listed - pages == set(), f"docs/index.md lists pages that do not exist: {sorted(listed - pages)}"
