"""The plain values the ranker takes and gives: papers, subscriber profiles, ranked items."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class PaperDoc:
    id: int  # Paper pk
    arxiv_id: str
    title: str
    abstract: str
    ai_summary: str
    ai_keywords: tuple[str, ...]
    authors: tuple[str, ...]
    organization: str
    upvotes: int
    momentum: float = 0.0  # upvote growth since the previous scrape (>= 0)
    pinned: bool = False  # curator's pick for the day: shown to everyone, first
    pin_note: str = ""
    day: date | None = None  # featured day (popularity is normalized per day)
    # The caller should leave these papers out; the flags are a second line of defence.
    hidden: bool = False
    withdrawn: bool = False


@dataclass(frozen=True, slots=True)
class Profile:
    subscriber_id: int
    topics: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    organizations: tuple[str, ...] = ()
    weights: Mapping[str, float] = field(default_factory=dict)  # learned term -> +/- weight
    max_papers: int = 10
    already_sent: frozenset[int] = frozenset()  # Paper ids in the sent-paper ledger


class RankedItem(NamedTuple):
    """A named tuple, not a dataclass: a million digests make millions of them."""

    paper_id: int
    score: float
    reason: str  # shown in the email: "matches: speculative decoding", "follows: Yann LeCun", ...
