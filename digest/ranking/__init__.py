"""Rank a day's papers for every subscriber at once.

Pure on purpose: no Django, no database, no network, so it is fast to test and to
benchmark. The caller builds one :class:`PaperIndex` per digest (a day's papers, or a
week's for weekly subscribers) and calls :meth:`PaperIndex.rank` with batches of
:class:`Profile`; the index caches topic scores, so later batches reuse them.

How a paper is scored for one subscriber:

* Relevance: each distinct topic is scored once per index against all its papers by
  :mod:`digest.ranking.relevance` (BM25F over title, AI keywords, AI summary and
  abstract, the verbatim phrase, proximity, acronyms learned by
  :mod:`digest.ranking.vocabulary`, pseudo-relevance feedback; IDF over the index's
  papers plus ``background`` papers). A paper without evidence for any topic is out.
* Both sides go through one normalization (:func:`normalize_text`): case and
  diacritics, simple plurals, hyphens, common abbreviations.
* Excludes remove a paper, followed authors or organizations lift it above every
  topic-only match, popularity (upvotes, normalized per featured day), momentum and
  learned feedback weights reorder papers of similar relevance, curator pins come first.

The work is bulk linear algebra: a sparse (subscribers x topics) query matrix times a
sparse (topics x papers) relevance matrix, built in one go per block of subscribers
from ids cached per distinct wording; the top papers are taken with argpartition per
block, and each distinct reason is written once, only for papers actually picked.

The caller's duties: leave hidden and withdrawn papers out of ``papers`` (or set the
``hidden`` / ``withdrawn`` flags, which the index also honours); put the ids of
already-sent papers in ``Profile.already_sent`` (restricting them to the index's papers
keeps profiles small, but any superset works).
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from itertools import chain, repeat
from operator import attrgetter

import numpy as np
from scipy import sparse

from digest.ranking.data import PaperDoc, Profile, RankedItem
from digest.ranking.feedback import (
    FEEDBACK_DECAY,
    FEEDBACK_LIMIT,
    FEEDBACK_MAX_TERMS,
    FEEDBACK_MIN,
    FEEDBACK_STEP,
    feedback_terms,
    learn_weights,
)
from digest.ranking.relevance import TopicMatch, TopicScorer
from digest.ranking.text import doc_fields, normalize_name, normalize_text, profile_terms
from digest.ranking.vocabulary import Vocabulary

__all__ = [
    "FEEDBACK_DECAY",
    "FEEDBACK_LIMIT",
    "FEEDBACK_MAX_TERMS",
    "FEEDBACK_MIN",
    "FEEDBACK_STEP",
    "TRENDING_REASON",
    "PaperDoc",
    "PaperIndex",
    "Profile",
    "RankedItem",
    "feedback_terms",
    "learn_weights",
    "normalize_name",
    "normalize_text",
    "profile_terms",
]

# --------------------------------------------------------------------------- tuning

# Relevance (digest/ranking/relevance.py) is about 0 to 1 per topic. Popularity and
# momentum (their blend is 0 to 1) and learned feedback weights move a paper by at most
# SIMILAR: they reorder papers of similar relevance, never lift an off-topic one.
SIMILAR = 0.1
# Each topic beyond a paper's best one adds this share of its relevance.
MORE_TOPICS = 0.1
W_POPULARITY = 0.75
W_MOMENTUM = 0.25
LEARNED_SIMILAR = 1.0
# Without topics, popularity and momentum are the whole score.
W_TREND_POPULARITY = 0.8
W_TREND_MOMENTUM = 0.2
# Above any relevance a profile's topics can add up to (each topic is at most about 2):
# a followed author's paper beats any topic-only match.
FOLLOW_LIFT = 10.0
# Learned weights move a paper by at most this much: enough to reorder, never to outrank
# a follow or to let an unrelated paper in (they never make a paper eligible).
LEARNED_MAX = 0.5
# Above every other score, so pins sort first; the reported score includes it.
PIN_BONUS = 100.0

# Scoring is done in blocks of subscribers so the dense (block x papers) scores stay in
# cache (perf-anchors.md: blocks of 10k beat blocks of 100k by 2x).
BLOCK_SIZE = 8192


TRENDING_REASON = "trending today"

# Reason kinds, in priority order: a pin explains itself first, then a follow, then a match.
_PIN, _FOLLOW, _MATCH, _TRENDING = range(4)

# --------------------------------------------------------------------------- index


class _RawIds(dict):
    """Raw phrase (as a subscriber typed it) -> its id; new phrases get the next id and
    their normalized term, so each distinct wording is normalized once per index."""

    def __init__(self, index: PaperIndex) -> None:
        super().__init__()
        self._index = index

    def __missing__(self, raw: str) -> int:
        raw_id = self[raw] = len(self)
        self._index._add_raw(raw)
        return raw_id


class _Ints:
    """A growing array of ints, read as numpy without a copy."""

    def __init__(self) -> None:
        self._data = np.empty(1024, np.int64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> int:
        return int(self._data[i])

    def __setitem__(self, i: int, value: int) -> None:
        self._data[i] = value

    def append(self, value: int) -> None:
        if self._n == len(self._data):
            self._data = np.concatenate([self._data, np.empty(len(self._data), np.int64)])
        self._data[self._n] = value
        self._n += 1

    def take(self, ids: np.ndarray) -> np.ndarray:
        return self._data[: self._n][ids]


class _Reasons(dict):
    """Reason key -> the reason of a topic match, written on first use. A match's reason
    depends only on the paper and the wordings of the profile's best two topics in it, so
    its key packs (first wording, paper column, runner-up wording + 1) in one integer."""

    def __init__(self, index: PaperIndex) -> None:
        super().__init__()
        self._index = index
        self.span = 1 << 24  # above every raw id + 1; doubled (and the cache emptied) when not

    def keys_of(self, first: np.ndarray, cols: np.ndarray, second: np.ndarray) -> np.ndarray:
        while len(self._index._raw_texts) + 1 >= self.span:
            self.span <<= 1
            self.clear()
        return (first * len(self._index.papers) + cols) * self.span + second + 1

    def __missing__(self, key: int) -> str:
        index = self._index
        rest, second = divmod(key, self.span)
        first, col = divmod(rest, len(index.papers))
        second -= 1
        matches = index._topic_matches
        evidence = matches[index._raw_topic(first)].evidence.get(col)
        if evidence is not None:
            reason = f"about {index._wordings[first]} ({evidence})"
        else:
            reason = f"matches: {index._wordings[first]}"
            if second >= 0 and col not in matches[index._raw_topic(second)].evidence:
                reason = f"{reason}, {index._wordings[second]}"
        self[key] = reason
        return reason


class _Rows:
    """A sparse matrix's rows (topics, phrases or follows, each a few paper columns),
    grown as new ones are met and kept as one CSR matrix for fancy row indexing."""

    def __init__(self, n_papers: int) -> None:
        self._n_papers = n_papers
        self._cols: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._matrix: sparse.csr_array | None = None

    def __len__(self) -> int:
        return len(self._cols)

    def add(self, cols: np.ndarray, values: np.ndarray | None = None) -> int:
        self._cols.append(np.asarray(cols, np.int64))
        self._values.append(np.ones(len(cols)) if values is None else np.asarray(values, float))
        self._matrix = None
        return len(self._cols) - 1

    def dense(self, rows: np.ndarray) -> np.ndarray:
        """The given rows as a dense (rows x papers) array."""
        matrix = self.matrix()
        starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
        lengths = ends - starts
        cells = np.arange(lengths.sum()) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        out = np.zeros((len(rows), self._n_papers))
        out[np.repeat(np.arange(len(rows)), lengths), matrix.indices[cells]] = matrix.data[cells]
        return out

    def matrix(self) -> sparse.csr_array:
        if self._matrix is None:
            lengths = np.fromiter(map(len, self._cols), np.int64, len(self._cols))
            indptr = np.r_[0, np.cumsum(lengths)]
            cols = np.concatenate(self._cols) if self._cols else np.zeros(0, np.int64)
            values = np.concatenate(self._values) if self._values else np.zeros(0)
            self._matrix = sparse.csr_array((values, cols, indptr), shape=(len(self._cols), self._n_papers))
        return self._matrix


def _flat(lists: Sequence[Sequence], n_rows: int) -> tuple[list, np.ndarray]:
    """The items of per-profile sequences in one list, and the profile row of each."""
    lengths = np.fromiter(map(len, lists), np.int64, n_rows)
    return list(chain.from_iterable(lists)), np.repeat(np.arange(n_rows), lengths)


def _first_per_row(rows: np.ndarray, keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Mask of the first occurrence of each (row, key) pair (rows non-decreasing)."""
    keep = np.zeros(len(rows), bool)
    if len(rows):
        _, first = np.unique(rows * max(n_keys, 1) + keys, return_index=True)
        keep[first] = True
    return keep


class PaperIndex:
    """The papers of one digest, ready to be ranked against any number of profiles.

    Build it once per digest day (or week) and reuse it for every batch of subscribers:
    topic scores, phrase features and follows are computed on first use and cached.
    """

    def __init__(
        self,
        papers: Sequence[PaperDoc],
        *,
        background: Sequence[PaperDoc] = (),
        trending_reason: str = TRENDING_REASON,
    ) -> None:
        """``papers`` are the candidates; ``background`` (recent papers) only sharpens
        IDF, so that a phrase common this month is not mistaken for a rare one today.
        ``trending_reason`` is the reason shown to subscribers without topics (a weekly
        index may say "trending this week")."""
        seen: set[int] = set()
        candidates = []
        for paper in papers:
            if paper.hidden or paper.withdrawn or paper.id in seen:
                continue
            seen.add(paper.id)
            candidates.append(paper)
        # Column order is the tie-break order, so a stable sort on score alone breaks
        # ties by upvotes desc, then arXiv id.
        candidates.sort(key=lambda p: (-p.upvotes, p.arxiv_id))
        self.papers: tuple[PaperDoc, ...] = tuple(candidates)
        self.trending_reason = trending_reason
        self._ids = np.array([p.id for p in self.papers], np.int64)
        self._col_of = {p.id: col for col, p in enumerate(self.papers)}
        n_papers = len(self.papers)

        fields = [doc_fields(p) for p in self.papers]
        arxiv_ids = {p.arxiv_id for p in self.papers}
        extra = [p for p in {p.arxiv_id: p for p in background}.values() if p.arxiv_id not in arxiv_ids]
        vocabulary = Vocabulary(f"{p.title}. {p.abstract} {p.ai_summary}" for p in (*self.papers, *extra))
        self._scorer = TopicScorer(fields, [doc_fields(p) for p in extra], vocabulary)
        # Whole-document text of the candidates, for excludes and learned terms; "|" keeps fields apart.
        self._docs = ["|".join(f) for f in fields]
        self._postings: dict[str, list[int]] = {}
        for col, doc in enumerate(self._docs):
            for token in set(doc.split()):
                self._postings.setdefault(token, []).append(col)
        self._postings.pop("|", None)

        self._pinned = np.array([p.pinned for p in self.papers], bool)
        self._pin_reasons = [
            f"curator's pick: {p.pin_note.strip()}" if p.pin_note.strip() else "curator's pick" for p in self.papers
        ]
        self._popularity = _per_day_log_scale([p.upvotes for p in self.papers], self.papers)
        self._momentum = _per_day_log_scale([max(p.momentum, 0.0) for p in self.papers], self.papers)
        self._trend = W_TREND_POPULARITY * self._popularity + W_TREND_MOMENTUM * self._momentum
        self._blend = W_POPULARITY * self._popularity + W_MOMENTUM * self._momentum

        self._authors: dict[str, list[int]] = {}
        self._author_names: list[dict[str, str]] = []
        for col, paper in enumerate(self.papers):
            names = {normalize_name(a): a for a in paper.authors if normalize_name(a)}
            self._author_names.append(names)
            for name in names:
                self._authors.setdefault(name, []).append(col)
        self._org_texts = [f" {normalize_name(p.organization)} " for p in self.papers]

        # Everything below grows with the distinct wordings subscribers use, never with
        # subscribers: ids for raw phrases, their normalized terms, and per term its topic
        # score row and phrase row (-2 until first needed, -1 for none).
        self._raw_ids = _RawIds(self)
        self._raw_texts: list[str] = []
        self._wordings: list[str] = []  # as quoted in reasons, spaces collapsed
        self._raw_term = _Ints()  # raw id -> term id, -1 when it normalizes to nothing
        self._term_ids: dict[str, int] = {}
        self._term_texts: list[str] = []
        self._term_topic = _Ints()
        self._term_phrase = _Ints()
        self._reasons_cache = _Reasons(self)
        self._topics = _Rows(n_papers)  # fused relevance of each topic in each paper
        self._topic_matches: list[TopicMatch] = []
        self._phrases = _Rows(n_papers)  # 1 where the phrase occurs verbatim
        self._names: dict[str, str] = {}  # raw name -> normalized
        self._follow_ids: dict[tuple[str, str], int] = {}
        self._follows = _Rows(n_papers)

    def __len__(self) -> int:
        return len(self.papers)

    # ----------------------------------------------------------------- features

    def _add_raw(self, raw: str) -> None:
        self._raw_texts.append(raw)
        self._wordings.append(" ".join(raw.split()))
        term = profile_terms(raw)
        if not term:
            self._raw_term.append(-1)
            return
        term_id = self._term_ids.get(term)
        if term_id is None:
            term_id = self._term_ids[term] = len(self._term_ids)
            self._term_texts.append(term)
            self._term_topic.append(-2)
            self._term_phrase.append(-2)
        self._raw_term.append(term_id)

    def _terms_of(self, raws: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw ids and term ids (-1 for none) of raw phrases."""
        raw_ids = np.fromiter(map(self._raw_ids.__getitem__, raws), np.int64, len(raws))
        return raw_ids, self._raw_term.take(raw_ids)

    def _raw_topic(self, raw_id: int) -> int:
        return self._term_topic[self._raw_term[raw_id]]

    def _topic_rows(self, term_ids: np.ndarray) -> np.ndarray:
        """Row of each term in ``self._topics`` (-1: the topic admits no paper)."""
        unique = np.unique(term_ids)
        for term_id in unique[self._term_topic.take(unique) == -2].tolist():
            match = self._scorer.score(self._term_texts[term_id])
            if match is None:
                self._term_topic[term_id] = -1
            else:
                self._term_topic[term_id] = self._topics.add(match.cols, match.values)
                self._topic_matches.append(match)
        return self._term_topic.take(term_ids)

    def _phrase_rows(self, term_ids: np.ndarray) -> np.ndarray:
        """Row of each term in ``self._phrases`` (-1: no paper holds it verbatim)."""
        unique = np.unique(term_ids)
        for term_id in unique[self._term_phrase.take(unique) == -2].tolist():
            cols = self._phrase(self._term_texts[term_id])
            self._term_phrase[term_id] = -1 if cols is None else self._phrases.add(cols)
        return self._term_phrase.take(term_ids)

    def _phrase(self, phrase: str) -> np.ndarray | None:
        """Columns of the papers containing a normalized phrase verbatim (for excludes
        and learned terms); None when there are none."""
        tokens = [t for t in phrase.split() if t != "|"]
        postings = sorted((self._postings.get(t, ()) for t in tokens), key=len)
        if tokens and postings[0]:
            needle = f" {phrase} "
            cols = sorted(c for c in set(postings[0]).intersection(*postings[1:]) if needle in self._docs[c])
            if cols:
                return np.array(cols, np.int64)
        return None

    def _name(self, raw: str) -> str:
        name = self._names.get(raw)
        if name is None:
            name = self._names[raw] = normalize_name(raw)
        return name

    def _follow_rows(self, kind: str, names: list[str]) -> np.ndarray:
        """Row of each followed name in ``self._follows`` (-1: no paper of theirs)."""
        rows = []
        for name in names:
            row = self._follow_ids.get((kind, name))
            if row is None:
                if kind == "author":
                    papers = self._authors.get(name, [])
                else:
                    needle = f" {name} "
                    # Organization on word boundaries: "Meta" follows "Meta AI" too.
                    papers = [c for c, text in enumerate(self._org_texts) if needle in text]
                row = self._follow_ids[(kind, name)] = self._follows.add(papers) if papers else -1
            rows.append(row)
        return np.array(rows, np.int64)

    # ----------------------------------------------------------------- ranking

    def rank(self, profiles: Sequence[Profile]) -> dict[int, list[RankedItem]]:
        """Each profile's papers, best first, capped at its ``max_papers``.

        Keyed by ``subscriber_id`` (a repeated id keeps its last profile). A profile
        with topics, authors or organizations gets only papers that match one of them,
        plus pins, and may get an empty list; one without gets the trending papers.
        The result for a profile does not depend on the other profiles in the call.
        """
        ranked: dict[int, list[RankedItem]] = {}
        if not self.papers:
            return {p.subscriber_id: [] for p in profiles}
        # Millions of small result objects and no reference cycles: the cyclic garbage
        # collector would only rescan the growing heap again and again.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for start in range(0, len(profiles), BLOCK_SIZE):
                self._rank_block(profiles[start : start + BLOCK_SIZE], ranked)
        finally:
            if collecting:
                gc.enable()
        return ranked

    def _rank_block(self, profiles: Sequence[Profile], ranked: dict[int, list[RankedItem]]) -> None:
        n_rows, n_papers = len(profiles), len(self.papers)
        shape = (n_rows, n_papers)

        # Topics: one entry per (profile, distinct term) in the profile's order; the
        # first wording of a term is the one its reasons quote.
        raws, rows = _flat(list(map(attrgetter("topics"), profiles)), n_rows)
        raw_ids, term_ids = self._terms_of(raws)
        kept = term_ids >= 0
        rows, raw_ids, term_ids = rows[kept], raw_ids[kept], term_ids[kept]
        first = _first_per_row(rows, term_ids, len(self._term_ids))
        rows, raw_ids, term_ids = rows[first], raw_ids[first], term_ids[first]
        selective = np.bincount(rows, minlength=n_rows) > 0
        topic_rows = self._topic_rows(term_ids)
        scored = topic_rows >= 0
        entry_rows, entry_raws, entry_topics = rows[scored], raw_ids[scored], topic_rows[scored]
        best, second, top, total = self._best_topics(entry_rows, entry_topics, shape)
        # A paper on one of the topics is on topic: the best topic counts, each further
        # one adds a little, so matching two topics weakly never beats one strongly.
        relevance = top + MORE_TOPICS * (total - top)

        excluded = np.zeros(shape, bool)
        raws, rows = _flat(list(map(attrgetter("excludes"), profiles)), n_rows)
        if raws:
            _, term_ids = self._terms_of(raws)
            rows, term_ids = rows[term_ids >= 0], term_ids[term_ids >= 0]
            phrase_rows = self._phrase_rows(term_ids)
            rows, phrase_rows = rows[phrase_rows >= 0], phrase_rows[phrase_rows >= 0]
            excluded = self._spread(rows, phrase_rows, np.ones(len(rows)), self._phrases, shape) > 0

        learned: np.ndarray | float = 0.0  # a scalar while no profile of the block has learned weights
        weighted = [(row, raw, float(w)) for row, p in enumerate(profiles) if p.weights for raw, w in p.weights.items()]
        if weighted:
            rows = np.array([row for row, _, w in weighted if w], np.int64)
            weights = np.array([w for _, _, w in weighted if w])
            _, term_ids = self._terms_of([raw for _, raw, w in weighted if w])
            rows, weights, term_ids = rows[term_ids >= 0], weights[term_ids >= 0], term_ids[term_ids >= 0]
            phrase_rows = self._phrase_rows(term_ids)
            keep = phrase_rows >= 0
            learned = self._spread(rows[keep], phrase_rows[keep], weights[keep], self._phrases, shape)

        follows = np.zeros(shape, bool)
        for kind, attribute in (("author", "authors"), ("org", "organizations")):
            raws, rows = _flat(list(map(attrgetter(attribute), profiles)), n_rows)
            if raws:
                names = [self._name(raw) for raw in raws]
                named = np.array([bool(n) for n in names])
                selective[rows[named]] = True
                follow_rows = self._follow_rows(kind, [n for n in names if n])
                rows = rows[named][follow_rows >= 0]
                follows |= (
                    self._spread(rows, follow_rows[follow_rows >= 0], np.ones(len(rows)), self._follows, shape) > 0
                )

        matched = relevance > 0
        scores = np.where(
            selective[:, None],
            relevance + SIMILAR * (self._blend + LEARNED_SIMILAR * np.tanh(learned)),
            self._trend + LEARNED_MAX * np.tanh(learned),
        )
        scores += FOLLOW_LIFT * follows + PIN_BONUS * self._pinned
        eligible = ~excluded & (~selective[:, None] | matched | follows | self._pinned)
        # Papers already sent are skipped: out of the running, as the ineligible ones.
        for row, profile in enumerate(profiles):
            if profile.already_sent:
                cols = [c for i in profile.already_sent if (c := self._col_of.get(i)) is not None]
                eligible[row, cols] = False
        scores[~eligible] = -np.inf

        limits = np.fromiter(map(attrgetter("max_papers"), profiles), np.int64, n_rows)
        order = _top_order(scores, min(max(int(limits.max()), 0), n_papers))
        ordered = np.take_along_axis(scores, order, axis=1)
        # Ineligible papers sort last, so each profile's picks are a prefix of its row.
        picked = np.isfinite(ordered) & (np.arange(order.shape[1]) < limits[:, None])
        counts = picked.sum(axis=1)
        rows = np.repeat(np.arange(n_rows), counts)
        cols = order[picked]
        reasons = self._reasons(profiles, rows, cols, matched, follows, best, second, entry_raws, entry_topics)
        items = list(
            map(
                tuple.__new__,
                repeat(RankedItem),
                zip(self._ids[cols].tolist(), ordered[picked].tolist(), reasons, strict=True),
            )
        )
        ends = np.cumsum(counts).tolist()
        starts = [0, *ends[:-1]]
        ranked.update(
            zip(
                map(attrgetter("subscriber_id"), profiles),
                map(items.__getitem__, map(slice, starts, ends)),
                strict=True,
            )
        )

    @staticmethod
    def _spread(rows: np.ndarray, feature_rows: np.ndarray, values: np.ndarray, features: _Rows, shape) -> np.ndarray:
        """Dense (profiles x papers) sum of the features each profile row refers to."""
        if not len(rows):
            return np.zeros(shape)
        query = sparse.csr_array((values, (rows, feature_rows)), shape=(shape[0], len(features)))
        return (query @ features.matrix()).toarray()

    def _best_topics(
        self, rows: np.ndarray, topics: np.ndarray, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per (profile, paper): the entry of the profile's best-matching topic and of the
        runner-up (-1 for none), so reasons name the topics that weigh most, the best
        topic's relevance and the sum over the profile's topics."""
        best = np.full(shape, -1, np.int64)
        second = np.full(shape, -1, np.int64)
        top = np.zeros(shape)
        if not len(rows):
            return best, second, top, np.zeros(shape)
        total = np.zeros(shape)
        runner_up = np.zeros(shape)  # the runner-up's relevance
        # Entries of one profile are consecutive; go through them by position (each
        # profile's first topic, then its second, ...), so a strictly better topic takes
        # over and ties stay with the earlier topic, and sums run in the profile's order.
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        position = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
        for slot in range(int(position.max()) + 1):
            entries = np.flatnonzero(position == slot)
            owners = rows[entries]
            values = self._topics.dense(topics[entries])
            entry = entries[:, None]
            best_value, second_value = top[owners], runner_up[owners]
            best_entry, second_entry = best[owners], second[owners]
            better = values > best_value
            runner = ~better & (values > second_value)
            second[owners] = np.where(better, best_entry, np.where(runner, entry, second_entry))
            runner_up[owners] = np.where(better, best_value, np.where(runner, values, second_value))
            best[owners] = np.where(better, entry, best_entry)
            top[owners] = np.where(better, values, best_value)
            total[owners] += values
        return best, second, top, total

    def _reasons(
        self,
        profiles: Sequence[Profile],
        rows: np.ndarray,
        cols: np.ndarray,
        matched: np.ndarray,
        follows: np.ndarray,
        best: np.ndarray,
        second: np.ndarray,
        entry_raws: np.ndarray,
        entry_topics: np.ndarray,
    ) -> list[str]:
        """The reason of each picked (profile row, paper column). Kinds are decided in
        bulk, and each distinct reason is written once: a match's reason depends only on
        the paper and the wordings of its best two topics."""
        if not len(rows):
            return []
        kinds = np.where(matched[rows, cols], _MATCH, _TRENDING)
        kinds[follows[rows, cols]] = _FOLLOW
        kinds[self._pinned[cols]] = _PIN
        reasons = np.empty(len(rows), object)
        reasons[kinds == _TRENDING] = self.trending_reason
        pins = np.flatnonzero(kinds == _PIN)
        reasons[pins] = [self._pin_reasons[c] for c in cols[pins].tolist()]
        for i in np.flatnonzero(kinds == _FOLLOW).tolist():
            reasons[i] = self._follow_reason(profiles[rows[i]], int(cols[i]))
        hits = np.flatnonzero(kinds == _MATCH)
        if len(hits):
            hit_cols = cols[hits]
            first = best[rows[hits], hit_cols]
            runner_up = second[rows[hits], hit_cols]
            first_raw = entry_raws[first]
            second_raw = np.where(runner_up >= 0, entry_raws[runner_up], -1)
            keys = self._reasons_cache.keys_of(first_raw, hit_cols, second_raw)
            reasons[hits] = list(map(self._reasons_cache.__getitem__, keys.tolist()))
        return reasons.tolist()

    def _follow_reason(self, profile: Profile, col: int) -> str:
        names = self._author_names[col]
        for raw in profile.authors:
            if (name := self._name(raw)) in names:
                return f"follows: {names[name]}"
        return f"follows: {self.papers[col].organization}"


def _per_day_log_scale(values: Sequence[float], papers: Sequence[PaperDoc]) -> np.ndarray:
    """log1p(value) / log1p(the day's largest value): 1.0 for each day's leader, so the
    days of a weekly index compare fairly whatever their traffic."""
    values_array = np.log1p(np.asarray(values, float))
    days = [p.day for p in papers]
    scaled = np.zeros(len(values_array))
    for day in set(days):
        mask = np.array([d == day for d in days])
        peak = values_array[mask].max()
        if peak > 0:
            scaled[mask] = values_array[mask] / peak
    return scaled


def _top_order(scores: np.ndarray, k: int) -> np.ndarray:
    """Columns of the ``k`` best scores per row, best first, ties to the lower column.

    Columns are in tie-break order, so this is exactly a stable sort on descending
    score truncated to ``k``, computed with argpartition where ``k`` is small.
    """
    n = scores.shape[1]
    if k <= 0:
        return np.zeros((scores.shape[0], 0), np.int64)
    if k >= n:
        return np.argsort(-scores, axis=1, kind="stable")
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    candidates.sort(axis=1)
    ranked = np.argsort(-np.take_along_axis(scores, candidates, axis=1), axis=1, kind="stable")
    order = np.take_along_axis(candidates, ranked, axis=1)
    # argpartition picks arbitrarily among papers tied with the k-th score; such rows
    # (rare: equal finite scores straddling the cut) get a full stable sort.
    kth = np.take_along_axis(scores, order[:, -1:], axis=1)
    ambiguous = np.isfinite(kth[:, 0]) & ((scores >= kth).sum(axis=1) > k)
    if ambiguous.any():
        order[ambiguous] = np.argsort(-scores[ambiguous], axis=1, kind="stable")[:, :k]
    return order
