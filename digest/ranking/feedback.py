"""Learned term weights from "more / less like this" feedback, kept small and bounded."""

from __future__ import annotations

from collections.abc import Mapping

from digest.ranking.data import PaperDoc
from digest.ranking.text import STOPWORDS, profile_terms

# learn_weights
FEEDBACK_STEP = 0.5
FEEDBACK_DECAY = 0.9  # every new signal fades older ones
FEEDBACK_LIMIT = 2.0  # |weight| cap per term
FEEDBACK_MIN = 0.05  # weights that faded below this are dropped
FEEDBACK_MAX_TERMS = 50
FEEDBACK_TERMS_PER_PAPER = 8


def feedback_terms(paper: PaperDoc) -> tuple[str, ...]:
    """The normalized terms a "more / less like this" on ``paper`` adjusts.

    Its AI keywords, which name what the paper is about; papers without them fall back
    to the title's words.
    """
    terms = dict.fromkeys(t for kw in paper.ai_keywords if (t := profile_terms(kw)))
    if not terms:
        words = profile_terms(paper.title).split()
        terms = dict.fromkeys(w for w in words if w != "|" and len(w) > 2 and w not in STOPWORDS)
    return tuple(terms)[:FEEDBACK_TERMS_PER_PAPER]


def learn_weights(weights: Mapping[str, float], paper: PaperDoc, signal: int) -> dict[str, float]:
    """Return the subscriber's new term weights after "more" (+1) or "less" (-1) like ``paper``.

    Older weights decay by FEEDBACK_DECAY, each of the paper's terms moves by
    FEEDBACK_STEP, every weight stays within +/-FEEDBACK_LIMIT, faded ones are dropped
    and only the FEEDBACK_MAX_TERMS strongest are kept, so the stored dict stays small.
    """
    if signal not in (1, -1):
        raise ValueError(f"feedback signal must be 1 or -1, got {signal!r}")
    learned: dict[str, float] = {}
    for term, weight in weights.items():
        normalized = profile_terms(term)
        if normalized:
            learned[normalized] = learned.get(normalized, 0.0) + float(weight) * FEEDBACK_DECAY
    for term in feedback_terms(paper):
        learned[term] = learned.get(term, 0.0) + signal * FEEDBACK_STEP
    kept = (
        (term, max(-FEEDBACK_LIMIT, min(FEEDBACK_LIMIT, weight)))
        for term, weight in learned.items()
        if abs(weight) >= FEEDBACK_MIN
    )
    strongest = sorted(kept, key=lambda tw: (-abs(tw[1]), tw[0]))[:FEEDBACK_MAX_TERMS]
    return {term: round(weight, 4) for term, weight in strongest}
