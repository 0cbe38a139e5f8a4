"""Stream cleaning: hide the placeholder text block Kimi sends for a thinking-only turn (docs/kimi-api.md §8).

A turn that produced only thinking can come back with a text block starting `(Empty response:` followed by a
dump of the content. It is not model output. We hold back only the first characters of each text block until
they either match the marker in full (then the whole block is dropped) or stop matching it (then they flow on).
"""

from __future__ import annotations

PLACEHOLDER_MARKER = "(Empty response:"


class TextBlockFilter:
    """Filters one text block, delta by delta. `feed()` returns what may be shown now; `close()` the rest."""

    def __init__(self) -> None:
        self._held = ""
        self._decided = False
        self._hidden = False

    @property
    def hidden(self) -> bool:
        """True once the block is known to be the placeholder."""
        return self._hidden

    def feed(self, delta: str) -> str:
        if self._decided:
            return "" if self._hidden else delta
        self._held += delta
        if self._held.startswith(PLACEHOLDER_MARKER):
            self._decided, self._hidden = True, True
            self._held = ""
            return ""
        if PLACEHOLDER_MARKER.startswith(self._held):
            return ""  # still could become the marker: keep holding
        self._decided = True
        released, self._held = self._held, ""
        return released

    def close(self) -> str:
        """End of block: a held start that never completed the marker is ordinary text."""
        released, self._held = ("" if self._hidden else self._held), ""
        self._decided = True
        return released
