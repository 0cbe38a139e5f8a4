from hypothesis import given
from hypothesis import strategies as st

from kimi_mcp.server.output import fit_output


def test_short_text_is_untouched() -> None:
    assert fit_output("hello", 1000) == ("hello", False)


def test_cut_lands_on_a_paragraph_boundary() -> None:
    text = ("a" * 850) + "\n\n" + ("b" * 500)
    shown, truncated = fit_output(text, 1000)
    assert truncated and shown == "a" * 850


def weight(text: str) -> int:
    return sum(1 if ch.isascii() else 3 for ch in text)


def test_cjk_text_is_cut_by_weight() -> None:
    text = "代码审查。" * 1000  # 5,000 characters, ~5,000 tokens
    shown, truncated = fit_output(text, 3000)
    assert truncated and len(shown) == 1000 and text.startswith(shown)


@given(st.text(min_size=0, max_size=3000), st.integers(min_value=200, max_value=2000))
def test_cut_is_a_prefix_within_the_limit(text: str, limit: int) -> None:
    shown, truncated = fit_output(text, limit)
    assert weight(shown) <= limit
    assert truncated == (weight(text) > limit)
    assert text.startswith(shown.rstrip()) or text.startswith(shown)
