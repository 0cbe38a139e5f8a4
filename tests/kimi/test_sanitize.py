import pytest

from kimi_mcp.kimi.sanitize import TextBlockFilter

PLACEHOLDER = "(Empty response: {'content': [{'type': 'thinking'}]})"


def run(deltas: list[str]) -> tuple[str, bool]:
    block = TextBlockFilter()
    shown = "".join(block.feed(d) for d in deltas) + block.close()
    return shown, block.hidden


@pytest.mark.parametrize("cut", range(len(PLACEHOLDER) + 1))
def test_placeholder_is_hidden_whatever_the_split(cut: int) -> None:
    assert run([PLACEHOLDER[:cut], PLACEHOLDER[cut:]]) == ("", True)


def test_placeholder_hidden_char_by_char() -> None:
    assert run(list(PLACEHOLDER)) == ("", True)


@pytest.mark.parametrize("text", ["(Empty", "(Empty set) is the answer", "(Emptiness", "Plain answer", ""])
def test_normal_text_passes_unchanged(text: str) -> None:
    assert run(list(text)) == (text, False)


def test_only_the_start_is_held_back() -> None:
    block = TextBlockFilter()
    assert block.feed("Hel") == "Hel"
    assert block.feed("lo") == "lo"
    block2 = TextBlockFilter()
    assert block2.feed("(Em") == ""
    assert block2.feed("ail me)") == "(Email me)"
