"""How relevant each paper of an index is to one topic, and the evidence for it.

A topic is scored against all of an index's papers at once, and only once per index
(:class:`TopicScorer` caches it): subscribers share topics, so the per-subscriber work
is a sparse sum of these vectors (see :mod:`digest.ranking`). The relevance of a paper
to a topic fuses four signals, each in [0, 1):

* term-level BM25F (Robertson & Zaragoza 2009) over title, AI keywords, AI summary and
  abstract: field-weighted term frequencies, length-normalized per field, saturated
  once, weighted by IDF and divided by the topic's total IDF, so it reads as "how much
  of the topic the paper covers". Terms are Snowball stems, so "compressing the KV
  cache" covers "KV cache compression";
* the verbatim phrase, field-weighted and saturated: the strongest evidence, with a
  little more when it is in the title;
* proximity: every word of the topic inside one sentence, in any order, with at most
  one other content word among them;
* pseudo-relevance feedback (RM3-like; Lavrenko & Croft 2001, Abdul-Jaleel et al.
  2004): the content words the topic's best matches share (never function words such
  as "through"), weighted by how many of them use the word and its IDF; a reason names
  each by the form the papers use most ("clicking" rather than "click").

Each of the topic's other names from :class:`~digest.ranking.vocabulary.Vocabulary`
(acronym, long form) is scored the same way and the best name counts. A paper is
admitted only with evidence: the phrase or another name verbatim, the words close
together, a part of the topic carrying most of its IDF verbatim in a paper that also
uses the topic's head noun ("KV cache" and "compress..." for "KV cache compression"),
for a one-word topic another word of its stem family ("quantized" for "quantization",
agent nouns such as "decoder" and adjectives such as "reasonable" kept apart), or (for
topics of several words) some of its words plus enough of the feedback terms.
Everything else scores 0, so a narrow topic gets a short list.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import snowballstemmer

from digest.ranking.text import FUNCTION_WORDS, STOPWORDS
from digest.ranking.vocabulary import Variant, Vocabulary

FIELD_WEIGHTS = np.array([3.0, 2.5, 1.5, 1.0])  # title, AI keywords, AI summary, abstract
K1 = 1.2
B = 0.75

# The fused relevance: weights of coverage, verbatim phrase, proximity and feedback.
W_COVERAGE = 0.8
W_PHRASE = 0.6
W_PROXIMITY = 0.15
W_FEEDBACK = 0.25
# A name of the topic verbatim in the title adds this: the title says what a paper is
# about, an abstract's passing mention does not.
W_TITLE = 0.1
# Another name of the topic (an acronym) is as good as the topic, nearly.
VARIANT_DISCOUNT = 0.9
# Proximity: the topic's words within a span of their number plus this many words.
PROXIMITY_SLACK = 1

# Feedback: the best FEEDBACK_DOCS admitted papers (at least FEEDBACK_MIN_DOCS of them)
# give FEEDBACK_TERMS terms used by at least FEEDBACK_MIN_SHARE of them.
FEEDBACK_DOCS = 12
FEEDBACK_MIN_DOCS = 3
FEEDBACK_TERMS = 12
FEEDBACK_MIN_SHARE = 0.4
# A paper with some of the topic's words and this share of the feedback terms' weight
# is admitted; its reason names FEEDBACK_SHOWN of them.
FEEDBACK_ADMIT = 0.3
FEEDBACK_SHOWN = 2
# A part of a topic carrying this share of its IDF, verbatim anywhere, admits a paper:
# "KV cache" for "KV cache compression".
PARTIAL_SHARE = 0.6

# A topic whose phrase has an IDF of RARITY_IDF or more (in under 2 % of papers) counts fully.
RARITY_IDF = 4.0
RARITY_FLOOR = 0.1
# A narrower acronym counts in papers covering this much of the topic's own words.
NARROWER_COVERAGE = 0.3


# Suffixes that make a word of the same stem mean another thing: an agent noun
# ("decoder" is not "decoding"), an adjective of ability ("reasonable" is not "reasoning").
_OTHER_SENSE = (("er", "ers", "or", "ors"), ("able", "ably", "ible", "ibly"))


def _sense(word: str) -> int:
    return next((n for n, suffixes in enumerate(_OTHER_SENSE, 1) if word.endswith(suffixes)), 0)


_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=1 << 17)
def stem(token: str) -> str:
    return _stemmer.stemWord(token)


def content(tokens: Sequence[str]) -> list[str]:
    return [t for t in tokens if t not in STOPWORDS and t != "|"]


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """One topic against an index's papers: only the admitted ones."""

    cols: np.ndarray  # candidate columns
    values: np.ndarray  # fused relevance, > 0
    evidence: dict[int, str]  # column -> the words that qualified a paper without the phrase


class _Doc:
    """A paper's fields as stemmed content tokens, by sentence (chunk)."""

    __slots__ = ("lengths", "positions", "tf")

    def __init__(self, fields: Sequence[str], surface: dict[str, Counter[str]]) -> None:
        self.tf: list[dict[str, int]] = []
        self.lengths = np.zeros(len(fields))
        # stem -> [(chunk number, position in the chunk's content words)]
        self.positions: dict[str, list[tuple[int, int]]] = {}
        chunk_no = 0
        for f, text in enumerate(fields):
            counts: dict[str, int] = {}
            for chunk in text.split("|"):
                words = content(chunk.split())
                for position, word in enumerate(words):
                    s = stem(word)
                    surface[s][word] += 1
                    counts[s] = counts.get(s, 0) + 1
                    self.positions.setdefault(s, []).append((chunk_no, position))
                chunk_no += 1
                self.lengths[f] += len(words)
            self.tf.append(counts)


class TopicScorer:
    """Scores topics against the candidate papers of an index; background papers only
    sharpen IDF and feed the vocabulary."""

    def __init__(
        self, candidates: Sequence[Sequence[str]], background: Sequence[Sequence[str]], vocabulary: Vocabulary
    ):
        self.vocabulary = vocabulary
        self.n = len(candidates)
        # Normalized whole texts, candidates first, and their words' postings.
        self._texts = ["|".join(f) for f in (*candidates, *background)]
        self._words: dict[str, set[int]] = {}
        for col, text in enumerate(self._texts):
            for word in set(text.split()):
                self._words.setdefault(word, set()).add(col)
        self._field_texts = candidates
        # stem -> its words with their counts: its family, and its most used word for
        # reasons ("using" rather than "useful" for "use")
        self._forms: defaultdict[str, Counter[str]] = defaultdict(Counter)
        docs = [_Doc(f, self._forms) for f in candidates]
        back = [_Doc(f, self._forms) for f in background]
        self._surface = {s: min(c, key=lambda w: (-c[w], w)) for s, c in self._forms.items()}
        self._docs = docs
        every = docs + back
        self._n_docs = max(len(every), 1)
        self._df: dict[str, int] = {}
        for d in every:
            for s in {s for counts in d.tf for s in counts}:
                self._df[s] = self._df.get(s, 0) + 1
        lengths = np.array([d.lengths for d in every]).reshape(len(every), len(FIELD_WEIGHTS))
        average = np.maximum(lengths.mean(axis=0), 1.0) if len(every) else np.ones(len(FIELD_WEIGHTS))
        norm = 1 - B + B * lengths[: self.n] / average  # per candidate and field
        # stem -> (columns, saturated BM25F term frequency in [0, 1))
        postings: dict[str, dict[int, float]] = {}
        for col, d in enumerate(docs):
            for f, counts in enumerate(d.tf):
                for s, tf in counts.items():
                    cell = postings.setdefault(s, {})
                    cell[col] = cell.get(col, 0.0) + FIELD_WEIGHTS[f] * tf / norm[col, f]
        self._sat: dict[str, np.ndarray] = {}
        for s, cells in postings.items():
            row = np.zeros(self.n)
            row[list(cells)] = list(cells.values())
            self._sat[s] = row / (K1 + row)
        self._field_norm = norm
        self._cache: dict[str, TopicMatch | None] = {}

    def idf(self, s: str) -> float:
        df = self._df.get(s, 0)
        return math.log(1 + (self._n_docs - df + 0.5) / (df + 0.5))

    def rarity(self, terms: str) -> float:
        """Between RARITY_FLOOR and 1: a topic most papers mention weighs less beside a
        rare one in the same profile (its order within the topic is unchanged). The IDF
        of the phrase itself, over the candidates and the background."""
        df = len(self._containing(terms))
        idf = math.log(1 + (len(self._texts) - df + 0.5) / (df + 0.5))
        return RARITY_FLOOR + (1 - RARITY_FLOOR) * min(1.0, idf / RARITY_IDF)

    def _containing(self, terms: str) -> list[int]:
        """Columns (candidates, then background) whose text holds the phrase verbatim."""
        words = terms.split()
        if not words or any(w not in self._words for w in words):
            return []
        needle = f" {terms} "
        return [c for c in set.intersection(*(self._words[w] for w in words)) if needle in self._texts[c]]

    # ----------------------------------------------------------------- signals

    def coverage(self, stems: Sequence[str]) -> np.ndarray:
        total = sum(self.idf(s) for s in stems)
        out = np.zeros(self.n)
        if not total:
            return out
        for s in stems:
            if s in self._sat:
                out += self.idf(s) * self._sat[s]
        return out / total

    def phrase(self, terms: str) -> np.ndarray:
        """Field-weighted, saturated count of the verbatim phrase, in [0, 1)."""
        return self._phrase(terms)[0]

    def _phrase(self, terms: str) -> tuple[np.ndarray, np.ndarray]:
        """The phrase's saturated count, and 1 where it is in the title (what a paper is
        about)."""
        out = np.zeros(self.n)
        titled = np.zeros(self.n)
        pattern = None
        for col in self._containing(terms):
            if col < self.n:
                pattern = pattern or re.compile(rf"(?<= ){re.escape(terms)}(?= )")
                tf = np.array([len(pattern.findall(f)) for f in self._field_texts[col]], float)
                sat = tf / (K1 * self._field_norm[col] + tf)
                out[col] = sat @ FIELD_WEIGHTS / FIELD_WEIGHTS.sum()
                titled[col] = float(tf[0] > 0)
        return out, titled

    def proximity(self, stems: Sequence[str]) -> tuple[np.ndarray, dict[int, int]]:
        """1 where all ``stems`` (two or more) sit close together in one sentence."""
        out = np.zeros(self.n)
        spans: dict[int, int] = {}
        unique = list(dict.fromkeys(stems))
        if len(unique) < 2 or any(s not in self._sat for s in unique):
            return out, spans
        cols = np.flatnonzero(np.logical_and.reduce([self._sat[s] > 0 for s in unique]))
        limit = len(unique) + PROXIMITY_SLACK
        for col in cols:
            positions = self._docs[col].positions
            by_chunk: dict[int, dict[str, list[int]]] = {}
            for s in unique:
                for chunk, position in positions[s]:
                    by_chunk.setdefault(chunk, {}).setdefault(s, []).append(position)
            for chunk, found in by_chunk.items():
                if len(found) == len(unique) and _min_span(list(found.values())) <= limit:
                    out[col] = 1.0
                    spans[int(col)] = chunk
                    break
        return out, spans

    # ----------------------------------------------------------------- fusion

    def score(self, terms: str) -> TopicMatch | None:
        """The papers a normalized topic admits, with relevance and evidence; cached."""
        if terms in self._cache:
            return self._cache[terms]
        match = self._score(terms) if self.n else None
        self._cache[terms] = match
        return match

    def _name(self, terms: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Relevance of one name of a topic, its verbatim flag and its proximity flag."""
        stems = [stem(t) for t in content(terms.split())]
        if not stems:
            return np.zeros(self.n), np.zeros(self.n, bool), np.zeros(self.n, bool)
        phrase, titled = self._phrase(terms)
        near, _ = self.proximity(stems)
        near = np.where(phrase > 0, 0.0, near)
        value = W_COVERAGE * self.coverage(stems) + W_PHRASE * phrase + W_PROXIMITY * near + W_TITLE * titled
        return value, phrase > 0, near > 0

    def _score(self, terms: str) -> TopicMatch | None:
        words = content(terms.split())
        if not words:
            return None
        stems = [stem(w) for w in words]
        value, verbatim, near = self._name(terms)
        # Which evidence qualified each paper: "" for the phrase, else the words shown.
        evidence = np.full(self.n, None, object)
        evidence[verbatim] = ""
        admitted = verbatim | near
        variants: list[Variant] = self.vocabulary.variants(terms)
        for variant in variants:
            v_value, v_verbatim, v_near = self._name(variant.terms)
            if variant.narrower:
                own = self.coverage(stems) >= NARROWER_COVERAGE
                v_value, v_verbatim, v_near = v_value * own, v_verbatim & own, v_near & own
            v_value = VARIANT_DISCOUNT * v_value
            better = v_value > value
            value = np.where(better, v_value, value)
            new = (v_verbatim | v_near) & ~admitted
            evidence[new] = variant.shown
            admitted |= v_verbatim | v_near
        if near.any():
            for col in np.flatnonzero(near & (evidence == None)):  # noqa: E711 (numpy elementwise)
                evidence[col] = " ".join(words)
        # Parts of a topic of several words, or the stem family of a one-word topic. A
        # part without the topic's head noun is about something else: "KV cache" papers
        # that never speak of compression are not about "KV cache compression".
        head = self._has_head(terms) if len(words) > 1 else True
        for part, shown in [*self._parts(terms), *self._inflections(words)]:
            new = (self.phrase(part) > 0) & head & ~admitted
            evidence[new] = shown
            admitted |= new
        feedback, shown = self._feedback(terms, value, admitted)
        value = value + W_FEEDBACK * feedback
        if len(words) > 1 and shown:
            # Part of the topic plus much of what its best matches share: "web agents"
            # for "GUI agents" when GUI papers keep saying "web", "screenshot", "click".
            partly = self.coverage(stems) > 0
            by_feedback = ~admitted & partly & (feedback >= FEEDBACK_ADMIT)
            for col in np.flatnonzero(by_feedback):
                evidence[col] = ", ".join(shown[int(col)][:FEEDBACK_SHOWN])
            admitted |= by_feedback
        cols = np.flatnonzero(admitted)
        if not len(cols):
            return None
        value = value * self.rarity(terms)
        return TopicMatch(
            cols=cols,
            values=value[cols],
            evidence={int(c): evidence[c] for c in cols if evidence[c]},
        )

    def _has_head(self, terms: str) -> np.ndarray:
        """Where the topic's head noun (its stem) occurs anywhere in the paper."""
        row = self._sat.get(stem(_head(terms.split())))
        return np.zeros(self.n, bool) if row is None else row > 0

    def _inflections(self, words: Sequence[str]) -> list[tuple[str, str]]:
        """Other words of a one-word topic's stem family met in the papers, as phrases:
        "quantized" and "quantize" for "quantization", "decode" for "decoding". Agent
        nouns ("decoder") and adjectives of ability ("reasonable") name other things, so
        they and the rest of the family are kept apart, both ways."""
        if len(words) != 1:
            return []
        word = words[0]
        return [
            (other, other)
            for other in sorted(self._forms.get(stem(word), ()))
            if other != word and other.isalpha() and _sense(other) == _sense(word)
        ]

    def _parts(self, terms: str) -> list[tuple[str, str]]:
        """The parts of a topic of several words that carry most of its IDF (as
        PARTIAL_SHARE says), as phrases: "GUI" of "GUI agents", "KV cache" of "KV cache
        compression"."""
        tokens = terms.split()
        words = content(tokens)
        if len(words) < 2:
            return []
        total = sum(self.idf(stem(w)) for w in words)
        parts = []
        for i in range(len(tokens)):
            for j in range(i + 1, len(tokens) + 1):
                span = tokens[i:j]
                if (i, j) == (0, len(tokens)) or span[0] in STOPWORDS or span[-1] in STOPWORDS:
                    continue
                share = sum(self.idf(stem(w)) for w in content(span)) / total if total else 0.0
                if share >= PARTIAL_SHARE:
                    parts.append((" ".join(span), " ".join(span)))
        return parts

    def _feedback(self, terms: str, value: np.ndarray, admitted: np.ndarray) -> tuple[np.ndarray, dict[int, list[str]]]:
        """RM3-like expansion from the topic's best admitted papers: the share of the
        expansion terms' weight each paper carries, and which of them it uses."""
        out = np.zeros(self.n)
        ranked = [c for c in np.argsort(-value, kind="stable") if admitted[c]][:FEEDBACK_DOCS]
        if len(ranked) < FEEDBACK_MIN_DOCS:
            return out, {}
        query = {stem(w) for w in content(terms.split())}
        for variant in self.vocabulary.variants(terms):
            query |= {stem(w) for w in content(variant.terms.split())}
        used: dict[str, int] = {}
        for col in ranked:
            for s in {s for counts in self._docs[col].tf[:3] for s in counts}:
                used[s] = used.get(s, 0) + 1
        weights = {
            s: count / len(ranked) * self.idf(s)
            for s, count in used.items()
            if s not in query
            and count / len(ranked) >= FEEDBACK_MIN_SHARE
            and len(s) > 2
            and self._surface[s] not in FUNCTION_WORDS
        }
        best = sorted(weights, key=lambda s: (-weights[s], s))[:FEEDBACK_TERMS]
        if not best:
            return out, {}
        total = sum(weights[s] for s in best)
        for s in best:
            out += weights[s] * self._sat[s]
        shown = {int(c): [self._surface[s] for s in best if self._sat[s][c] > 0] for c in np.flatnonzero(out)}
        return out / total, shown


def _head(tokens: Sequence[str]) -> str:
    """The head noun of an English noun phrase: the last word, or the word before "of"
    ("compression" of "KV cache compression", "mixture" of "mixture of experts")."""
    if "of" in tokens[1:]:
        tokens = tokens[: tokens.index("of", 1)]
    words = content(tokens)
    return words[-1] if words else tokens[-1]


def _min_span(lists: list[list[int]]) -> int:
    """The smallest window holding one position from each list (positions sorted)."""
    events = sorted((p, i) for i, positions in enumerate(lists) for p in positions)
    need = len(lists)
    counts = [0] * need
    have = 0
    best = math.inf
    left = 0
    for right, (position, which) in enumerate(events):
        if counts[which] == 0:
            have += 1
        counts[which] += 1
        while have == need:
            best = min(best, position - events[left][0] + 1)
            counts[events[left][1]] -= 1
            if counts[events[left][1]] == 0:
                have -= 1
            left += 1
        del right
    return int(best) if best != math.inf else 1 << 30
