"""An honest token estimate for text sent to Kimi, without Kimi's tokenizer (docs/files.md, "The token estimate").

The rule, per character class, in tokens:

- ASCII and other non-CJK text: UTF-8 bytes / 3.5. BPE tokenizers average about 4 bytes a token on English prose
  but 3 to 4 on code, whose punctuation and short identifiers are tokens of their own: bytes/4 undercounts code,
  so it is a floor, not an estimate. 3.5 errs on the safe side for code and overcounts prose by about 15%.
- Han characters (Chinese, and the kanji of Japanese): 0.75 each. Moonshot documents about 1.5 to 2 Chinese
  characters a token for its models (0.5 to 0.67 a character); 0.75 keeps a margin. This is exactly bytes/4 for
  these 3-byte characters: on Kimi's tokenizer, Chinese is not denser than bytes/4, unlike on GPT-style ones.
- Kana, Hangul, CJK punctuation and full-width forms: 1 each. Kimi's vocabulary is built for Chinese and English;
  these are assumed to tokenize no better than one token a character.

The estimate is additive over characters (up to the final rounding up), so the estimate of a prefix never exceeds
the estimate of the whole: the truncation in pack.py relies on that.
"""

from __future__ import annotations

import re

# Han ideographs: CJK Unified Ideographs with extension A, compatibility ideographs, extensions B and later.
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")
# Other CJK text assumed at one token a character: CJK punctuation, kana (and their extensions), Hangul jamo and
# syllables, full-width and half-width forms.
_OTHER_CJK = re.compile("[\u1100-\u11ff\u3000-\u30ff\u3130-\u318f\u31f0-\u31ff\uac00-\ud7af\uff00-\uffef]+")

# Weights in sevenths of a token keep the sum in integers: 2/7 per byte is bytes / 3.5.
PER_BYTE = 2
_PER_HAN = 5.25  # 0.75 x 7
_PER_OTHER_CJK = 7
SCALE = 7


def estimate_tokens(text: str) -> int:
    """Kimi tokens `text` is estimated to cost (see the module's docstring for the rule)."""
    if text.isascii():  # the common case for code, at C speed
        return -(-len(text) * PER_BYTE // SCALE)
    no_han = _HAN.sub("", text)
    han = len(text) - len(no_han)
    rest = _OTHER_CJK.sub("", no_han)
    other_cjk = len(no_han) - len(rest)
    other_bytes = len(rest.encode("utf-8", "surrogatepass"))
    weighted = other_bytes * PER_BYTE + han * _PER_HAN + other_cjk * _PER_OTHER_CJK
    return -int(-weighted // SCALE)
