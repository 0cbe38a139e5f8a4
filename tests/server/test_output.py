from hypothesis import given
from hypothesis import strategies as st

from kimi_mcp.server.output import fit_output


def test_short_text_is_untouched() -> None:
    assert fit_output("hello", 1000) == ("hello", False)


def test_cut_lands_on_a_paragraph_boundary() -> None:
    text = ("a" * 850) + "\n\n" + ("b" * 500)
    shown, truncated = fit_output(text, 1000)
    assert truncated and shown == "a" * 850


@given(st.text(min_size=0, max_size=3000), st.integers(min_value=200, max_value=2000))
def test_cut_is_a_prefix_within_the_limit(text: str, limit: int) -> None:
    shown, truncated = fit_output(text, limit)
    assert len(shown) <= limit
    assert truncated == (len(text) > limit)
    assert text.startswith(shown.rstrip()) or text.startswith(shown)
