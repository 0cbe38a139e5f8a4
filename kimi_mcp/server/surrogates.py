"""Lone UTF-16 surrogates: valid in a JSON string escape (`"\\ud800"`) and in a Python str, but not in UTF-8.

A host written in JavaScript that cuts a string between the two halves of an emoji sends one; Python's JSON
parser keeps it, pydantic's refuses the whole message, and neither SQLite nor the stdio transport can write it.
Each becomes U+FFFD, exactly what a UTF-8 encoder (Node's `Buffer.from`, `TextEncoder`) writes in its place, so
the text reads as if the host had sent it as UTF-8 bytes.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
# In a Python str a well-formed pair is already one code point, so any surrogate code point left is alone.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogates(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def replace_lone_surrogates(text: str) -> str:
    return _LONE_SURROGATE.sub(REPLACEMENT, text)


def scrubbed(value: Any) -> tuple[Any, int]:
    """`value` (parsed JSON) with every lone surrogate in its strings and keys replaced, and how many strings
    had one."""
    if isinstance(value, str):
        fixed = replace_lone_surrogates(value)
        return fixed, int(fixed != value)
    if isinstance(value, list):
        items = [scrubbed(item) for item in value]
        return [item for item, _ in items], sum(count for _, count in items)
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        count = 0
        for key, item in value.items():
            fixed_key, key_count = scrubbed(key)
            result[fixed_key], item_count = scrubbed(item)
            count += key_count + item_count
        return result, count
    return value, 0
