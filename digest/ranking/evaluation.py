"""Measure rankers against hand-labelled personas: nDCG@10, recall@10 and precision@5.

Pure like the ranker: it reads the fixture files it is pointed at and nothing else. The
``evalranking`` command is its door. Three rankers are measured on the same pool:

* ``shipped``: :class:`digest.ranking.PaperIndex`, exactly as the digests use it;
* ``bm25``: the textbook baseline, Okapi BM25 over title and abstract with no phrase
  logic and no vocabulary (lowercase words, stopwords dropped, plurals stripped);
* ``phrase``: the ranker this project shipped before relevance work (issue 10), kept
  here as a reference: a topic counts only where its phrase occurs verbatim.

Metrics use graded gains (2 = relevant, 1 = partly relevant, 0 = not): nDCG@10 with
gain 2^grade - 1 and a log2 discount, ideal ranking from the labels; recall@10 is the
share of the persona's papers graded >= 1 found in the top 10, out of at most 10 (so a
persona with 30 such papers can reach 1.0); precision@5 counts papers graded >= 1.
Every ranker may return fewer than ten papers (a cut-off is part of ranking); empty
places earn nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digest.ranking import PaperDoc, PaperIndex, Profile
from digest.ranking.text import STOPWORDS, normalize_name, normalize_text, profile_terms, stem
from papers.feed import FeedError, FeedPaper, parse_api_items

# The eval pool, relative to the fixtures root (the parent of the relevance folder).
POOL = Path("hf") / "api" / "daily_papers_month-2025-11.json"
K = 10
GRADES = frozenset({0, 1, 2})
METRICS = ("ndcg@10", "recall@10", "p@5")


class EvaluationError(Exception):
    """Fixtures that cannot be evaluated: missing, malformed or inconsistent."""


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    topics: tuple[str, ...]
    excludes: tuple[str, ...]
    authors: tuple[str, ...]
    organizations: tuple[str, ...]
    intent: str

    def profile(self, *, max_papers: int = K) -> Profile:
        return Profile(
            subscriber_id=0,
            topics=self.topics,
            excludes=self.excludes,
            authors=self.authors,
            organizations=self.organizations,
            max_papers=max_papers,
        )


@dataclass(frozen=True, slots=True)
class Fixtures:
    papers: tuple[PaperDoc, ...]
    personas: tuple[Persona, ...]
    labels: Mapping[str, Mapping[str, int]]  # persona name -> arXiv id -> grade


# --------------------------------------------------------------------------- loading


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvaluationError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise EvaluationError(f"{path} is not valid JSON: {exc}") from None


def load_pool(path: Path) -> tuple[PaperDoc, ...]:
    """The eval pool's papers, through the same parser as the scraper."""
    try:
        feed = parse_api_items(_read_json(path))
    except FeedError as exc:
        raise EvaluationError(f"{path}: {exc}") from None
    return pool_docs(feed)


def pool_docs(feed: Sequence[FeedPaper]) -> tuple[PaperDoc, ...]:
    """Parsed feed items as the ranker's documents, numbered from 1 in feed order."""
    return tuple(
        PaperDoc(
            id=pk,
            arxiv_id=p.arxiv_id,
            title=p.title,
            abstract=p.abstract,
            ai_summary=p.ai_summary,
            ai_keywords=p.ai_keywords,
            authors=p.authors,
            organization=p.organization,
            upvotes=p.upvotes,
            day=p.featured_on,
        )
        for pk, p in enumerate(feed, start=1)
    )


def load_personas(path: Path) -> tuple[Persona, ...]:
    raw = _read_json(path)
    if not isinstance(raw, list) or not raw:
        raise EvaluationError(f"{path} must hold a non-empty list of personas")
    personas = []
    for n, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise EvaluationError(f"{path}: persona #{n + 1} has no name")

        def strings(key: str, item: dict = item) -> tuple[str, ...]:
            value = item.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise EvaluationError(f"{path}: persona {item['name']!r}: {key} must be a list of strings")
            return tuple(value)

        personas.append(
            Persona(
                name=item["name"],
                topics=strings("topics"),
                excludes=strings("excludes"),
                authors=strings("authors"),
                organizations=strings("organizations"),
                intent=str(item.get("intent", "")),
            )
        )
    names = [p.name for p in personas]
    if len(set(names)) != len(names):
        raise EvaluationError(f"{path}: persona names repeat")
    return tuple(personas)


def load_labels(folder: Path, persona: Persona, arxiv_ids: Sequence[str]) -> dict[str, int]:
    """One persona's grades, checked: the right persona, every pool paper, grades 0-2."""
    path = folder / f"{persona.name}.json"
    raw = _read_json(path)
    if not isinstance(raw, dict) or raw.get("persona") != persona.name or not isinstance(raw.get("grades"), dict):
        raise EvaluationError(f"{path} must be an object with persona {persona.name!r} and grades")
    grades = raw["grades"]
    missing = sorted(set(arxiv_ids) - set(grades))
    unknown = sorted(set(grades) - set(arxiv_ids))
    if missing or unknown:
        raise EvaluationError(
            f"{path}: {len(missing)} pool papers without a grade {missing[:3]},"
            f" {len(unknown)} unknown ids {unknown[:3]}"
        )
    bad = [(a, g) for a, g in grades.items() if type(g) is not int or g not in GRADES]
    if bad:
        raise EvaluationError(f"{path}: grades must be 0, 1 or 2, got {bad[:3]}")
    return dict(grades)


def load_fixtures(folder: Path) -> Fixtures:
    """The personas, their labels and the pool, from a ``tests/fixtures/relevance`` folder."""
    if not folder.is_dir():
        raise EvaluationError(f"no fixtures folder at {folder}")
    papers = load_pool(folder.parent / POOL)
    personas = load_personas(folder / "personas.json")
    arxiv_ids = [p.arxiv_id for p in papers]
    labels = {p.name: load_labels(folder / "labels", p, arxiv_ids) for p in personas}
    return Fixtures(papers=papers, personas=personas, labels=labels)


# --------------------------------------------------------------------------- metrics


def _gain(grade: int) -> float:
    return 2.0**grade - 1.0


def ndcg(ranked: Sequence[str], grades: Mapping[str, int], k: int = K) -> float:
    dcg = sum(_gain(grades.get(a, 0)) / math.log2(i + 2) for i, a in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(_gain(g) / math.log2(i + 2) for i, g in enumerate(ideal))
    # A persona with nothing relevant in the pool: the perfect answer is an empty list.
    if idcg == 0:
        return 0.0 if ranked[:k] else 1.0
    return dcg / idcg


def recall(ranked: Sequence[str], grades: Mapping[str, int], k: int = K) -> float:
    relevant = sum(1 for g in grades.values() if g >= 1)
    if not relevant:
        return 1.0
    return sum(1 for a in ranked[:k] if grades.get(a, 0) >= 1) / min(relevant, k)


def precision(ranked: Sequence[str], grades: Mapping[str, int], k: int = 5) -> float:
    return sum(1 for a in ranked[:k] if grades.get(a, 0) >= 1) / k


def scores(ranked: Sequence[str], grades: Mapping[str, int]) -> dict[str, float]:
    return {"ndcg@10": ndcg(ranked, grades), "recall@10": recall(ranked, grades), "p@5": precision(ranked, grades)}


# --------------------------------------------------------------------------- baselines

Ranker = Callable[[Persona], list[str]]  # a persona -> arXiv ids, best first


def shipped_ranker(papers: Sequence[PaperDoc]) -> Ranker:
    index = PaperIndex(papers)
    by_id = {p.id: p.arxiv_id for p in papers}

    def rank(persona: Persona) -> list[str]:
        return [by_id[i.paper_id] for i in index.rank([persona.profile()])[0]]

    return rank


_WORDS = re.compile(r"\w+")


def _bm25_tokens(text: str) -> list[str]:
    return [stem(w) for w in _WORDS.findall(text.casefold()) if w not in STOPWORDS]


def bm25_ranker(papers: Sequence[PaperDoc], *, k1: float = 1.2, b: float = 0.75) -> Ranker:
    """Okapi BM25 over title + abstract; the persona's topics are one bag of words.

    Excludes drop papers containing an exclude's words (so the baseline is not punished
    for a filter every ranker applies); follows are unknown to it.
    """
    docs = [_bm25_tokens(f"{p.title} {p.abstract}") for p in papers]
    lengths = np.array([len(d) for d in docs], float)
    average = max(lengths.mean(), 1.0)
    counts: list[dict[str, int]] = []
    df: dict[str, int] = {}
    for tokens in docs:
        tf: dict[str, int] = {}
        for t in tokens:
            tf[t] = tf.get(t, 0) + 1
        counts.append(tf)
        for t in tf:
            df[t] = df.get(t, 0) + 1
    n = len(docs)
    norm = k1 * (1 - b + b * lengths / average)

    def rank(persona: Persona) -> list[str]:
        query = [t for topic in persona.topics for t in _bm25_tokens(topic)]
        score = np.zeros(n)
        for term in query:
            if term not in df:
                continue
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            tf = np.array([c.get(term, 0) for c in counts], float)
            score += idf * tf * (k1 + 1) / (tf + norm)
        for exclude in persona.excludes:
            words = _bm25_tokens(exclude)
            if words:
                hit = np.array([all(c.get(w, 0) for w in words) for c in counts])
                score[hit] = 0.0
        order = sorted((i for i in range(n) if score[i] > 0), key=lambda i: (-score[i], -papers[i].upvotes))
        return [papers[i].arxiv_id for i in order[:K]]

    return rank


def phrase_ranker(papers: Sequence[PaperDoc]) -> Ranker:
    """The ranker shipped before issue 10, for one profile at a time.

    A topic counts only where its normalized phrase occurs verbatim: phrase BM25 over
    title, keywords, summary and abstract (weights 3, 2.5, 1.5, 1; IDF over the pool),
    squashed as rel / (rel + 5) and blended 0.6 : 0.3 : 0.1 with per-day popularity
    (momentum is 0 in the pool); excludes remove, a followed organization or author
    lifts by 1.0 and is eligible without a match.
    """
    weights = np.array([3.0, 2.5, 1.5, 1.0])
    k1, b = 1.2, 0.75
    fields = [
        (
            normalize_text(p.title),
            " " + " | ".join(profile_terms(k) for k in p.ai_keywords) + " ",
            normalize_text(p.ai_summary),
            normalize_text(p.abstract),
        )
        for p in papers
    ]
    lengths = np.array([[len(f.split()) - f.count(" | ") for f in fs] for fs in fields], float)
    norm = k1 * (1 - b + b * lengths / np.maximum(lengths.mean(axis=0), 1.0))
    n = len(papers)
    upvotes = np.log1p(np.array([p.upvotes for p in papers], float))
    popularity = np.zeros(n)
    for day in {p.day for p in papers}:
        mask = np.array([p.day == day for p in papers])
        if upvotes[mask].max() > 0:
            popularity[mask] = upvotes[mask] / upvotes[mask].max()
    orgs = [f" {normalize_name(p.organization)} " for p in papers]
    authors = [{normalize_name(a) for a in p.authors} for p in papers]

    def phrase_scores(phrase: str) -> np.ndarray:
        pattern = re.compile(rf"(?<= ){re.escape(phrase)}(?= )")
        tf = np.array([[len(pattern.findall(f)) for f in fs] for fs in fields], float)
        df = int((tf.sum(axis=1) > 0).sum())
        if not df:
            return np.zeros(n)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * ((tf * (k1 + 1) / (tf + norm)) @ weights)

    def rank(persona: Persona) -> list[str]:
        relevance = sum((phrase_scores(t) for t in map(profile_terms, persona.topics) if t), np.zeros(n))
        follows = np.zeros(n, bool)
        for org in filter(None, map(normalize_name, persona.organizations)):
            follows |= np.array([f" {org} " in text for text in orgs])
        for name in filter(None, map(normalize_name, persona.authors)):
            follows |= np.array([name in names for names in authors])
        score = 0.6 * relevance / (relevance + 5.0) + 0.3 * popularity + 1.0 * follows
        eligible = (relevance > 0) | follows
        for exclude in filter(None, map(profile_terms, persona.excludes)):
            eligible &= phrase_scores(exclude) == 0
        order = sorted(np.flatnonzero(eligible), key=lambda i: (-score[i], -papers[i].upvotes, papers[i].arxiv_id))
        return [papers[i].arxiv_id for i in order[:K]]

    return rank


RANKERS: dict[str, Callable[[Sequence[PaperDoc]], Ranker]] = {
    "shipped": shipped_ranker,
    "bm25": bm25_ranker,
    "phrase": phrase_ranker,
}


# --------------------------------------------------------------------------- report


def evaluate(fixtures: Fixtures, rankers: Mapping[str, Callable[[Sequence[PaperDoc]], Ranker]] = RANKERS) -> dict:
    """``{"rankers": {name: {"mean": {metric: x}, "personas": {persona: {metric: x}}}}}``."""
    result: dict[str, dict] = {}
    for name, make in rankers.items():
        rank = make(fixtures.papers)
        per_persona = {p.name: scores(rank(p), fixtures.labels[p.name]) for p in fixtures.personas}
        mean = {m: sum(s[m] for s in per_persona.values()) / len(per_persona) for m in METRICS}
        result[name] = {
            "mean": {m: round(v, 4) for m, v in mean.items()},
            "personas": {p: {m: round(v, 4) for m, v in s.items()} for p, s in per_persona.items()},
        }
    return {"rankers": result}


def format_table(result: Mapping) -> str:
    """One row per persona and the mean; per ranker its three metrics."""
    rankers = list(result["rankers"])
    personas = list(next(iter(result["rankers"].values()))["personas"])
    width = max(len(p) for p in [*personas, "persona"]) + 2
    short = {"ndcg@10": "nDCG", "recall@10": "R@10", "p@5": "P@5"}
    head = "".join(f"{r:^21}" for r in rankers)
    sub = "".join("".join(f"{short[m]:>7}" for m in METRICS) for _ in rankers)
    lines = [f"{'':<{width}}{head}", f"{'persona':<{width}}{sub}"]
    rows = [(p, [result["rankers"][r]["personas"][p] for r in rankers]) for p in personas]
    rows.append(("mean", [result["rankers"][r]["mean"] for r in rankers]))
    for label, cells in rows:
        if label == "mean":
            lines.append("-" * (width + 21 * len(rankers)))
        lines.append(f"{label:<{width}}" + "".join("".join(f"{c[m]:>7.3f}" for m in METRICS) for c in cells))
    return "\n".join(lines)
