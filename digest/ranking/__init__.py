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
sparse (topics x papers) relevance matrix. Python touches each subscriber only to pick
the top few papers of its dense score row and to write their reasons.

The caller's duties: leave hidden and withdrawn papers out of ``papers`` (or set the
``hidden`` / ``withdrawn`` flags, which the index also honours); put the ids of
already-sent papers in ``Profile.already_sent`` (restricting them to the index's papers
keeps profiles small, but any superset works).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class _Interest:
    """One profile's filters, normalized."""

    topics: tuple[tuple[str, str], ...]  # (normalized phrase, the subscriber's wording)
    excludes: tuple[str, ...]
    authors: tuple[str, ...]  # normalized names
    organizations: tuple[str, ...]


class _Coo:
    """Triples of a sparse matrix under construction."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.values: list[float] = []

    def add(self, row: int, col: int, value: float = 1.0) -> None:
        self.rows.append(row)
        self.cols.append(col)
        self.values.append(value)

    def extend(self, row: int, cols: Iterable[int], values: Iterable[float] | None = None) -> None:
        cols = list(cols)
        self.rows.extend([row] * len(cols))
        self.cols.extend(cols)
        self.values.extend([1.0] * len(cols) if values is None else values)

    def matrix(self, shape: tuple[int, int], *, ones: bool = False) -> sparse.csr_array:
        values = np.ones(len(self.rows)) if ones else np.array(self.values, float)
        return sparse.csr_array((values, (self.rows, self.cols)), shape=shape)


@dataclass(frozen=True, slots=True)
class _Queries:
    """One block of profiles as sparse matrices (profiles x phrases or follows), with the
    feature matrices (phrases or follows x papers) they multiply."""

    interests: list[_Interest]
    selective: np.ndarray  # profiles with topics, authors or organizations
    topics: sparse.csr_array
    # One entry per (profile, topic) pair in ``topics``: profile row, phrase column, and
    # the topic's index in ``_Interest.topics``.
    topic_rows: np.ndarray
    topic_cols: np.ndarray
    topic_slots: np.ndarray
    excludes: sparse.csr_array
    learned: sparse.csr_array
    follows: sparse.csr_array
    matches: sparse.csr_array  # fused relevance of each topic in each paper
    present: sparse.csr_array  # 1 where the phrase occurs
    followed: sparse.csr_array
    topic_matches: list[TopicMatch]  # per topic column
    slot_cols: list[dict[int, int]]  # per profile row: topic slot -> topic column

    def topics_one_per_row(self) -> sparse.csr_array:
        """``topics`` with each nonzero on its own row, so products keep topics apart."""
        n = len(self.topic_rows)
        return sparse.csr_array((np.ones(n), (np.arange(n), self.topic_cols)), shape=(n, self.topics.shape[1]))


class PaperIndex:
    """The papers of one digest, ready to be ranked against any number of profiles.

    Build it once per digest day (or week) and reuse it for every batch of subscribers:
    phrase features are computed on first use and cached.
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
        self._ids = [p.id for p in self.papers]

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
        self._phrases: dict[str, np.ndarray | None] = {}

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
        self._orgs: dict[str, list[int]] = {}
        self._terms: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.papers)

    # ----------------------------------------------------------------- features

    def _phrase(self, phrase: str) -> np.ndarray | None:
        """Columns of the papers containing a normalized phrase verbatim (for excludes
        and learned terms); None when there are none."""
        if phrase in self._phrases:
            return self._phrases[phrase]
        present = None
        tokens = [t for t in phrase.split() if t != "|"]
        postings = sorted((self._postings.get(t, ()) for t in tokens), key=len)
        if tokens and postings[0]:
            needle = f" {phrase} "
            cols = sorted(c for c in set(postings[0]).intersection(*postings[1:]) if needle in self._docs[c])
            present = np.array(cols, np.int64) if cols else None
        self._phrases[phrase] = present
        return present

    def _organization(self, name: str) -> list[int]:
        """Papers whose organization contains the followed one on word boundaries
        ("Meta" follows "Meta AI" too)."""
        if name not in self._orgs:
            needle = f" {name} "
            self._orgs[name] = [c for c, text in enumerate(self._org_texts) if needle in text]
        return self._orgs[name]

    def _term(self, raw: str) -> str:
        term = self._terms.get(raw)
        if term is None:
            term = self._terms[raw] = profile_terms(raw)
        return term

    def _interest(self, profile: Profile, seen: dict[tuple[tuple[str, ...], ...], _Interest]) -> _Interest:
        """The profile's filters, normalized once per distinct set of filters in ``seen``
        (kept per block, not per index, so memory does not grow with subscribers)."""
        key = (profile.topics, profile.excludes, profile.authors, profile.organizations)
        interest = seen.get(key)
        if interest is None:
            topics: dict[str, str] = {}
            for raw in profile.topics:
                term = self._term(raw)
                if term:
                    topics.setdefault(term, " ".join(raw.split()))
            interest = seen[key] = _Interest(
                topics=tuple(topics.items()),
                excludes=tuple(dict.fromkeys(t for raw in profile.excludes if (t := self._term(raw)))),
                authors=tuple(dict.fromkeys(n for raw in profile.authors if (n := normalize_name(raw)))),
                organizations=tuple(dict.fromkeys(n for raw in profile.organizations if (n := normalize_name(raw)))),
            )
        return interest

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
        n_papers = len(self.papers)
        q = self._queries(profiles)
        best, second, top = self._best_topics(q, (len(profiles), n_papers))
        # A paper on one of the topics is on topic: the best topic counts, each further
        # one adds a little, so matching two topics weakly never beats one strongly.
        relevance = top + MORE_TOPICS * ((q.topics @ q.matches).toarray() - top)
        excluded = (q.excludes @ q.present).toarray() > 0
        learned = (q.learned @ q.present).toarray()
        follows = (q.follows @ q.followed).toarray() > 0

        matched = relevance > 0
        scores = np.where(
            q.selective[:, None],
            relevance + SIMILAR * (self._blend + LEARNED_SIMILAR * np.tanh(learned)),
            self._trend + LEARNED_MAX * np.tanh(learned),
        )
        scores += FOLLOW_LIFT * follows + PIN_BONUS * self._pinned
        eligible = ~excluded & (~q.selective[:, None] | matched | follows | self._pinned)
        scores[~eligible] = -np.inf

        # Enough candidates per row to fill max_papers after skipping already-sent ones.
        wanted = max(max(p.max_papers, 0) + len(p.already_sent) for p in profiles)
        order = _top_order(scores, min(wanted, n_papers))
        # Which reason each candidate gets is decided in bulk; text is written only for
        # the papers actually picked.
        kinds = np.full(scores.shape, _TRENDING, np.int8)
        kinds[matched] = _MATCH
        kinds[follows] = _FOLLOW
        kinds[:, self._pinned] = _PIN
        picked = [np.take_along_axis(m, order, axis=1).tolist() for m in (scores, kinds, best, second)]
        for row, (profile, interest, *candidates) in enumerate(
            zip(profiles, q.interests, order.tolist(), *picked, strict=True)
        ):
            ranked[profile.subscriber_id] = self._pick(
                profile, interest, q.topic_matches, q.slot_cols[row], *candidates
            )

    def _pick(
        self,
        profile: Profile,
        interest: _Interest,
        topic_matches: list[TopicMatch],
        slots: dict[int, int],
        cols: list[int],
        scores: list[float],
        kinds: list[int],
        best: list[int],
        second: list[int],
    ) -> list[RankedItem]:
        """A profile's items from its candidates, best first: the one Python loop per
        subscriber, so it touches only the few candidates and keeps lookups local."""
        items: list[RankedItem] = []
        limit = profile.max_papers
        sent = profile.already_sent
        ids = self._ids
        no_score = -math.inf
        item = RankedItem
        for col, score, kind, first, runner_up in zip(cols, scores, kinds, best, second, strict=True):
            if len(items) >= limit or score == no_score:
                break
            paper_id = ids[col]
            if paper_id in sent:
                continue
            if kind == _MATCH:
                evidence = topic_matches[slots[first]].evidence.get(col)
                if evidence is None:
                    reason = f"matches: {interest.topics[first][1]}"
                    if runner_up >= 0 and col not in topic_matches[slots[runner_up]].evidence:
                        reason = f"{reason}, {interest.topics[runner_up][1]}"
                else:
                    reason = f"about {interest.topics[first][1]} ({evidence})"
            elif kind == _TRENDING:
                reason = self.trending_reason
            elif kind == _PIN:
                reason = self._pin_reasons[col]
            else:
                reason = self._follow_reason(interest, col)
            items.append(item(paper_id, score, reason))
        return items

    def _queries(self, profiles: Sequence[Profile]) -> _Queries:
        """The block's sparse query matrices, over the phrases and follows it uses."""
        n_papers = len(self.papers)
        phrase_cols: dict[str, int] = {}
        phrase_features: list[np.ndarray] = []
        topic_cols: dict[str, int] = {}
        topic_matches: list[TopicMatch] = []
        slot_cols: list[dict[int, int]] = []
        follow_cols: dict[tuple[str, str], int] = {}
        follow_papers: list[list[int]] = []

        def phrase_col(term: str) -> int | None:
            col = phrase_cols.get(term)
            if col is None:
                feature = self._phrase(term)
                if feature is None:
                    return None
                col = phrase_cols[term] = len(phrase_features)
                phrase_features.append(feature)
            return col

        def topic_col(term: str) -> int | None:
            col = topic_cols.get(term)
            if col is None:
                match = self._scorer.score(term)
                if match is None:
                    return None
                col = topic_cols[term] = len(topic_matches)
                topic_matches.append(match)
            return col

        def follow_col(kind: str, name: str) -> int | None:
            col = follow_cols.get((kind, name))
            if col is None:
                papers = self._authors.get(name, []) if kind == "author" else self._organization(name)
                if not papers:
                    return None
                col = follow_cols[(kind, name)] = len(follow_papers)
                follow_papers.append(papers)
            return col

        topics = _Coo()
        topic_slots: list[int] = []  # which of the profile's topics, for the reason
        excludes = _Coo()
        learned = _Coo()
        follows = _Coo()
        interests: list[_Interest] = []
        seen: dict[tuple[tuple[str, ...], ...], _Interest] = {}
        selective = np.zeros(len(profiles), bool)
        for row, profile in enumerate(profiles):
            interest = self._interest(profile, seen)
            interests.append(interest)
            selective[row] = bool(interest.topics or interest.authors or interest.organizations)
            slots: dict[int, int] = {}
            for slot, (term, _) in enumerate(interest.topics):
                if (col := topic_col(term)) is not None:
                    topics.add(row, col)
                    topic_slots.append(slot)
                    slots[slot] = col
            slot_cols.append(slots)
            for term in interest.excludes:
                if (col := phrase_col(term)) is not None:
                    excludes.add(row, col)
            for raw, weight in profile.weights.items():
                if weight and (term := self._term(raw)) and (col := phrase_col(term)) is not None:
                    learned.add(row, col, float(weight))
            for kind, names in (("author", interest.authors), ("org", interest.organizations)):
                for name in names:
                    if (col := follow_col(kind, name)) is not None:
                        follows.add(row, col)

        n_rows, n_phrases, n_topics = len(profiles), len(phrase_features), len(topic_matches)
        feature_coo = _Coo()
        for col, feature in enumerate(phrase_features):
            feature_coo.extend(col, feature.tolist())
        topic_coo = _Coo()
        for col, match in enumerate(topic_matches):
            topic_coo.extend(col, match.cols.tolist(), match.values.tolist())
        followed = _Coo()
        for col, papers in enumerate(follow_papers):
            followed.extend(col, papers)
        return _Queries(
            interests=interests,
            selective=selective,
            topics=topics.matrix((n_rows, n_topics)),
            topic_rows=np.array(topics.rows, np.int64),
            topic_cols=np.array(topics.cols, np.int64),
            topic_slots=np.array(topic_slots, np.int64),
            excludes=excludes.matrix((n_rows, n_phrases)),
            learned=learned.matrix((n_rows, n_phrases)),
            follows=follows.matrix((n_rows, len(follow_papers))),
            matches=topic_coo.matrix((n_topics, n_papers)),
            present=feature_coo.matrix((n_phrases, n_papers), ones=True),
            followed=followed.matrix((len(follow_papers), n_papers)),
            topic_matches=topic_matches,
            slot_cols=slot_cols,
        )

    def _best_topics(self, q: _Queries, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per (profile, paper): the slot of the profile's best-matching topic and of the
        runner-up (-1 for none), so reasons name the topics that weigh most, and the
        best topic's relevance."""
        best = np.full(shape, -1, np.int16)
        second = np.full(shape, -1, np.int16)
        top = np.zeros(shape)
        # One row per (profile, topic) pair: its relevance in every paper.
        per_topic = (q.topics_one_per_row() @ q.matches).tocoo()
        if not per_topic.nnz:
            return best, second, top
        entry, paper, value = per_topic.coords[0], per_topic.coords[1], per_topic.data
        row, slot = q.topic_rows[entry], q.topic_slots[entry]
        order = np.lexsort((slot, -value, paper, row))
        row, paper, slot, value = row[order], paper[order], slot[order], value[order]
        starts = np.flatnonzero(np.r_[True, (row[1:] != row[:-1]) | (paper[1:] != paper[:-1])])
        best[row[starts], paper[starts]] = slot[starts]
        top[row[starts], paper[starts]] = value[starts]
        nexts = starts + 1
        nexts = nexts[nexts < len(row)]
        same = (row[nexts] == row[nexts - 1]) & (paper[nexts] == paper[nexts - 1])
        nexts = nexts[same]
        second[row[nexts], paper[nexts]] = slot[nexts]
        return best, second, top

    def _follow_reason(self, interest: _Interest, col: int) -> str:
        names = self._author_names[col]
        for name in interest.authors:
            if name in names:
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
