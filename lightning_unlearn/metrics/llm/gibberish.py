"""An explicit, dictionary-free heuristic for degenerate generations: :func:`is_gibberish`, :func:`gibberish_rate`."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from lightning_unlearn._errors import check_fraction
from lightning_unlearn.metrics.llm._checks import _check_texts

__all__ = ["gibberish_rate", "is_gibberish"]

_STRIP = string.punctuation + "“”‘’«»…—–"
_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")  # letters (Unicode), optionally joined by ' or -
_NUMBER = re.compile(r"[$€£#]?\d[\d.,:/%\-]*(?:st|nd|rd|th|s|am|pm)?", re.IGNORECASE)
_VOWEL = re.compile(r"[aeiouy]", re.IGNORECASE)
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xz]{6,}", re.IGNORECASE)
_TRIPLE_LETTER = re.compile(r"([a-z])\1\1", re.IGNORECASE)
_LETTER_LOOP = re.compile(r"([a-z]{2,}?)\1{3,}", re.IGNORECASE)

#: Longest token counted as a dictionary-like word.
_MAX_WORD_LEN = 20
#: All-caps tokens up to this length count as words (acronyms: "BBC", "NASA").
_MAX_ACRONYM_LEN = 6
#: Longest n-gram checked for back-to-back loops.
_MAX_LOOP_NGRAM = 10


def _is_word(token: str) -> bool:
    """Dictionary-like alphabetic word (see :func:`is_gibberish`)."""
    if not _WORD.fullmatch(token):
        return False
    letters = re.sub(r"['’\-]", "", token)
    if token.isupper() and len(letters) <= _MAX_ACRONYM_LEN:
        return True
    return (
        len(letters) <= _MAX_WORD_LEN
        and _VOWEL.search(letters) is not None
        and _CONSONANT_RUN.search(letters) is None
        and _TRIPLE_LETTER.search(letters) is None
    )


def _has_loop(tokens: Sequence[str]) -> bool:
    """An n-gram repeated back to back: >= 3 copies for n >= 2, >= 4 copies for n = 1."""
    n_tok = len(tokens)
    for n in range(1, min(_MAX_LOOP_NGRAM, n_tok // 3) + 1):
        copies = 4 if n == 1 else 3
        for i in range(n_tok - copies * n + 1):
            gram = tokens[i : i + n]
            if all(tokens[i + c * n : i + (c + 1) * n] == gram for c in range(1, copies)):
                return True
    return False


def is_gibberish(text: str, *, min_word_ratio: float = 0.5) -> bool:
    r"""Whether one generation is gibberish, by an explicit heuristic for English text (used by
    :func:`gibberish_rate`).

    The text is split on whitespace; each token is lowercased and stripped of surrounding punctuation for the
    repetition checks. It is gibberish if any of these holds:

    1. **empty**: no letter or digit at all (empty, whitespace or punctuation only);
    2. **single token repeated**: at least 3 tokens, all identical (``"Paris Paris Paris"``);
    3. **loop**: some n-gram (``1 <= n <= 10``) occurs back to back at least 3 times (4 times for a single token),
       e.g. ``"the book is the book is the book is"``; or a letter group of length ``>= 2`` repeats 4+ times
       inside a token (``"hahahaha"``, ``"xyxyxyxy"``);
    4. **few words**: among tokens that are neither numbers (``"1962"``, ``"5th"``, ``"$30,000"``) nor empty after
       stripping punctuation, fewer than ``min_word_ratio`` are *dictionary-like words*: letters (accented ones
       included, optionally joined by ``'`` or ``-``), at most 20 letters, containing a vowel (``aeiouy``), with
       no run of 6+ consonants and no letter 3 times in a row; all-caps tokens of up to 6 letters count as
       acronyms. Texts made only of numbers (and punctuation) are not judged by this rule.

    No dictionary or language model is used, so this is a coarse screen for degenerate output (the collapse of
    over-unlearned models), not a fluency score.

    Args:
        text: one generation.
        min_word_ratio: the least fraction of dictionary-like words for a non-gibberish text, in ``[0, 1]``.

    Returns:
        ``True`` if the text is judged gibberish.

    Example:
        >>> from lightning_unlearn.metrics.llm import is_gibberish
        >>> is_gibberish("She was born in Paris in 1962."), is_gibberish("xqzt vbnm kkkk qwrtp")
        (False, True)

    """
    if not isinstance(text, str):
        raise TypeError(f"`text` should be a str, got {type(text).__name__}.")
    check_fraction("min_word_ratio", min_word_ratio, inclusive_low=True)
    raw = text.split()
    if not any(ch.isalnum() for ch in text):
        return True
    stripped = [tok.strip(_STRIP) for tok in raw]
    norm = [s.lower() if s else r for s, r in zip(stripped, raw)]
    if len(norm) >= 3 and len(set(norm)) == 1:
        return True
    if _has_loop(norm) or any(_LETTER_LOOP.search(tok) for tok in norm):
        return True
    judged = [s for s in stripped if s and not _NUMBER.fullmatch(s)]
    if not judged:
        return False
    return sum(_is_word(s) for s in judged) / len(judged) < min_word_ratio


def gibberish_rate(texts: Sequence[str], *, min_word_ratio: float = 0.5) -> float:
    r"""Fraction of generations judged gibberish by :func:`is_gibberish` (empty output, a single token repeated,
    n-gram loops, or too few dictionary-like words).

    Used to flag degenerate outputs of over-unlearned LLMs (e.g. gradient ascent collapsing into repeated tokens),
    next to TOFU-style metrics (Maini et al., arXiv:2401.06121).

    Args:
        texts: generations, a non-empty sequence of strings.
        min_word_ratio: see :func:`is_gibberish`; default ``0.5``.

    Returns:
        A ``float`` in ``[0, 1]``.

    Example:
        >>> from lightning_unlearn.metrics.llm import gibberish_rate
        >>> gibberish_rate(["The author wrote three novels.", "", "the the the the the"])
        0.6666666666666666

    """
    texts = _check_texts(texts, "texts")
    if not texts:
        raise ValueError("`texts` should contain at least one generation, got an empty sequence.")
    check_fraction("min_word_ratio", min_word_ratio, inclusive_low=True)
    return sum(is_gibberish(t, min_word_ratio=min_word_ratio) for t in texts) / len(texts)
