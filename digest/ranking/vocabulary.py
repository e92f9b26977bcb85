"""Vocabulary learned from the papers: acronyms their authors define, mapped both ways.

Abstracts define their acronyms ("diffusion large language models (dLLMs)", "Group
Relative Policy Optimization (GRPO)"). :func:`learn_acronyms` finds those definitions
with the Schwartz & Hearst algorithm (PSB 2003: the short form's letters are found, in
order, in the words before the parenthesis, its first letter starting a word) across
every paper of an index, so the vocabulary is as fresh as the papers.
:meth:`Vocabulary.variants` then gives a topic its other names: a long form for an
acronym, the acronym for a long form, and the acronyms of longer names that contain the
topic ("masked diffusion language models (MDLM)" for "diffusion language models").

Short forms of two characters ("SD", "VQ") mean too many things to be trusted, and an
acronym defined with different long forms is dropped: a wrong expansion is worse than
none. The hand list in :mod:`digest.ranking.text` still covers the classics, which
normalization expands on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from digest.ranking.text import profile_terms

# "long form (SF)" or "long form (SFs)"; the short form has a capital and no spaces.
_DEFINITION = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9\-]{1,11})\s*\)")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-']*")
MIN_SHORT = 3
MAX_LONG_WORDS = 8


def _long_form(short: str, words: list[str]) -> list[str] | None:
    """The words before a parenthesis that define ``short``, or None (Schwartz & Hearst)."""
    letters = [c.lower() for c in short if c.isalnum()]
    if letters and short.endswith("s") and sum(c.isupper() for c in short) >= 2:
        letters = letters[:-1]  # a plural: "LLMs"
    window = words[-min(len(letters) + 5, len(letters) * 2, MAX_LONG_WORDS) :]
    text = " ".join(window).lower()
    s, position = len(letters) - 1, len(text) - 1
    while s >= 0:
        c = letters[s]
        while position >= 0 and (text[position] != c or (s == 0 and position > 0 and text[position - 1].isalnum())):
            position -= 1
        if position < 0:
            return None
        s -= 1
        position -= 1
    start = text[: position + 1].count(" ") if position >= 0 else 0
    long_words = text.split(" ")[start:]
    # A long form names as many words as the acronym has letters, give or take.
    if not long_words or len(long_words) > len(letters) + 2 or len(long_words) < 2:
        return None
    return long_words


def find_definitions(text: str) -> Iterable[tuple[str, str]]:
    """(short form, long form) pairs defined in ``text``, as written."""
    for match in _DEFINITION.finditer(text):
        short = match.group(1)
        if sum(c.isupper() for c in short) < 2 or len(short.rstrip("s")) < MIN_SHORT:
            continue
        before = text[: match.start()]
        # Only the clause the parenthesis closes: stop at a sentence end or another bracket.
        before = re.split(r"[.;:()\[\]]\s", before)[-1]
        words = _WORD.findall(before)
        long_words = _long_form(short, words)
        if long_words:
            yield short, " ".join(long_words)


@dataclass(frozen=True, slots=True)
class Variant:
    terms: str  # normalized phrase, as profile_terms gives it
    shown: str  # how the reason line names it
    # The acronym of a longer name ("VSR", visual speech recognition, for "speech
    # recognition"): a narrower concept, and acronyms collide, so it counts only in a
    # paper that also uses the topic's own words.
    narrower: bool = False


class Vocabulary:
    """Acronym <-> long form, both normalized, learned from texts."""

    def __init__(self, texts: Iterable[str]) -> None:
        seen: dict[str, dict[str, str]] = {}  # short terms -> long terms -> short as written
        for text in texts:
            for short, long in find_definitions(text):
                short_terms, long_terms = profile_terms(short), profile_terms(long)
                # The hand list already expands it (LLMs -> large language model), or it is one word.
                if " " in short_terms or len(short_terms) < MIN_SHORT or short_terms == long_terms:
                    continue
                if " " not in long_terms:
                    continue
                seen.setdefault(short_terms, {}).setdefault(long_terms, short)
        self.long_of: dict[str, str] = {}
        self.shown: dict[str, str] = {}
        for short, longs in seen.items():
            if len(longs) == 1:
                (long, written), *_ = longs.items()
                self.long_of[short] = long
                self.shown[short] = written
        self._shorts_by_long: dict[str, list[str]] = {}
        self._longs_by_word: dict[str, set[str]] = {}
        for short, long in self.long_of.items():
            self._shorts_by_long.setdefault(long, []).append(short)
            for word in long.split():
                self._longs_by_word.setdefault(word, set()).add(long)
        self._variants: dict[str, list[Variant]] = {}

    def variants(self, terms: str) -> list[Variant]:
        """Other names of a normalized topic: never the topic itself."""
        cached = self._variants.get(terms)
        if cached is None:
            cached = self._variants[terms] = self._find_variants(terms)
        return cached

    def _find_variants(self, terms: str) -> list[Variant]:
        out: dict[str, Variant] = {}
        if terms in self.long_of:
            out[self.long_of[terms]] = Variant(self.long_of[terms], self.long_of[terms])
        padded = f" {terms} "
        # Only long forms sharing a word with the topic can contain it or sit inside it.
        longs = set().union(*(self._longs_by_word.get(w, ()) for w in terms.split()))
        for long in sorted(longs):
            shorts = self._shorts_by_long[long]
            if long == terms or f" {terms} " in f" {long} " or _near(terms, long):
                for short in shorts:
                    out.setdefault(short, Variant(short, self.shown[short], narrower=long != terms))
            elif f" {long} " in padded:
                # The topic spells out an acronym inside it: "GRPO training" for "group ... training".
                for short in shorts:
                    replaced = padded.replace(f" {long} ", f" {short} ").strip()
                    out.setdefault(replaced, Variant(replaced, replaced))
        out.pop(terms, None)
        return list(out.values())


def _near(terms: str, long: str) -> bool:
    """``long`` is ``terms`` with one word inserted: "diffusion large language model"
    for "diffusion language model"."""
    a, b = terms.split(), long.split()
    if len(a) < 2 or len(b) != len(a) + 1:
        return False
    return any(b[:i] + b[i + 1 :] == a for i in range(1, len(b) - 1))
