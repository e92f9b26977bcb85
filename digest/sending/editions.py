"""A digest date's papers as the pure ranker and renderer see them: the one DB -> core adapter."""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q

from digest import tokens
from digest.models import LikedPaper, SentPaper, Subscriber
from digest.ranking import TRENDING_REASON, PaperDoc, PaperIndex, Profile, RankedItem
from digest.rendering import DayRenderer, Reader, RenderedDigest
from papers.models import Paper, PaperSnapshot, Pin, ScrapeRun
from papers.services import days_back

# Recent papers that sharpen the rarity (IDF) of a topic phrase.
BACKGROUND_DAYS = 30


def papers_days(digest_date: date, *, weekly: bool) -> list[date]:
    """The feed days a digest dated ``digest_date`` draws from, oldest first: the list of
    D - 1 for a daily digest, D - 7 .. D - 1 for a weekly one."""
    return days_back(until=digest_date - timedelta(days=1), days=7 if weekly else 1)


def pin_days(digest_date: date, *, weekly: bool) -> list[date]:
    """Pins are made for the date a digest carries, so a weekly one shows its week's pins."""
    return days_back(until=digest_date, days=7 if weekly else 1)


def day_ready(day: date) -> bool:
    """A list is ready once a scrape of it (or a saved file of it) finished ok."""
    return ScrapeRun.objects.filter(
        day=day, status=ScrapeRun.Status.OK, source__in=[ScrapeRun.Source.DAILY, ScrapeRun.Source.FILE]
    ).exists()


def digest_ready(digest_date: date, *, weekly: bool = False) -> bool:
    # A weekly digest needs the last day of its week; earlier days hold what they hold.
    return day_ready(papers_days(digest_date, weekly=weekly)[-1])


def is_weekly_day(day: date) -> bool:
    # calendar's names are English: the processes never set a locale.
    return calendar.day_name[day.weekday()].lower() == settings.DIGEST_WEEKLY_DAY


def paper_doc(paper: Paper, *, momentum: float = 0.0, pin: Pin | None = None) -> PaperDoc:
    return PaperDoc(
        id=paper.pk,
        arxiv_id=paper.arxiv_id,
        title=paper.title,
        abstract=paper.abstract,
        ai_summary=paper.ai_summary,
        ai_keywords=tuple(paper.ai_keywords or ()),
        authors=tuple(paper.authors or ()),
        organization=paper.organization,
        upvotes=paper.upvotes,
        momentum=momentum,
        pinned=pin is not None,
        pin_note=pin.note if pin else "",
        day=paper.featured_on,
        hidden=paper.hidden,
        withdrawn=paper.withdrawn_at is not None,
    )


def momentum_of(paper_ids: Iterable[int]) -> dict[int, float]:
    """Upvotes gained between each paper's last two snapshots."""
    latest: dict[int, list[int]] = {}
    rows = (
        PaperSnapshot.objects.filter(paper_id__in=list(paper_ids))
        .order_by("paper_id", "-taken_at")
        .values_list("paper_id", "upvotes")
    )
    for paper_id, upvotes in rows:
        seen = latest.setdefault(paper_id, [])
        if len(seen) < 2:
            seen.append(upvotes)
    return {pid: float(max(v[0] - v[1], 0)) for pid, v in latest.items() if len(v) == 2}


@dataclass
class Edition:
    """Everything a digest date needs once, whoever it is for: the papers, their index and
    the pre-inlined renderer."""

    digest_date: date
    weekly: bool
    days: list[date]  # the feed days it draws from, oldest first
    papers: dict[int, Paper]
    index: PaperIndex
    renderer: DayRenderer

    @property
    def paper_ids(self) -> list[int]:
        return list(self.papers)

    @property
    def has_list(self) -> bool:
        """Whether Hugging Face published any paper on its days (weekends often have none)."""
        return any(p.featured_on in self.days for p in self.papers.values())


def edition_stamp(digest_date: date, *, weekly: bool) -> tuple:
    """Changes whenever a curator pins, hides or unhides, or a scrape updates the papers."""
    days = papers_days(digest_date, weekly=weekly)
    papers = Paper.objects.filter(featured_on__in=days).aggregate(n=Count("id"), at=Max("updated_at"))
    pins = Pin.objects.filter(day__in=pin_days(digest_date, weekly=weekly)).aggregate(
        n=Count("id"), at=Max("created_at"), ids=Max("id")
    )
    return (papers["n"], papers["at"], pins["n"], pins["at"], pins["ids"])


def build_edition(digest_date: date, *, weekly: bool = False, renderer: type[DayRenderer] = DayRenderer) -> Edition:
    days = papers_days(digest_date, weekly=weekly)
    pins = {
        pin.paper_id: pin
        for pin in Pin.objects.filter(day__in=pin_days(digest_date, weekly=weekly)).order_by("day", "id")
    }
    visible = Paper.objects.filter(hidden=False, withdrawn_at__isnull=True)
    candidates = {p.pk: p for p in visible.filter(Q(featured_on__in=days) | Q(pk__in=list(pins)))}
    background = visible.filter(
        featured_on__gte=days[0] - timedelta(days=BACKGROUND_DAYS), featured_on__lt=days[0]
    ).only("id", "arxiv_id", "title", "abstract", "ai_summary", "ai_keywords", "authors", "organization", "upvotes")
    momentum = momentum_of(candidates)
    docs = [paper_doc(p, momentum=momentum.get(pk, 0.0), pin=pins.get(pk)) for pk, p in candidates.items()]
    index = PaperIndex(
        docs,
        background=[paper_doc(p) for p in background],
        trending_reason="trending this week" if weekly else TRENDING_REASON,
    )
    return Edition(
        digest_date=digest_date,
        weekly=weekly,
        days=days,
        papers=candidates,
        index=index,
        renderer=renderer(day=digest_date, papers=list(candidates.values()), weekly=weekly),
    )


class Editions:
    """The editions one process has built, each reused until its stamp changes.

    A worker builds a date's edition once (indexing and pre-inlining cost tens of
    milliseconds) and checks its stamp, two cheap aggregate queries, per batch, so a
    curator's pin or hide in another process shows in the next batch. The process-wide
    instance is :data:`editions`; a caller that needs other renderers (the benchmark's
    naive path) makes its own.
    """

    def __init__(self, *, renderer: type[DayRenderer] = DayRenderer, size: int = 8) -> None:
        self.renderer = renderer
        self.size = size
        self._built: dict[tuple[date, bool], tuple[tuple, Edition]] = {}

    def get(self, digest_date: date, *, weekly: bool = False) -> Edition:
        stamp = edition_stamp(digest_date, weekly=weekly)
        key = (digest_date, weekly)
        cached = self._built.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if len(self._built) >= self.size:
            self._built.clear()
        built = build_edition(digest_date, weekly=weekly, renderer=self.renderer)
        self._built[key] = (stamp, built)
        return built


editions = Editions()


def profile_for(subscriber: Subscriber, *, already_sent: Iterable[int] = (), named: Iterable[int] = ()) -> Profile:
    """``named``: papers the reader named, imported or voted on (LikedPaper rows, liked or
    not), skipped like the ones already sent: a reader never gets a named paper back."""
    return Profile(
        subscriber_id=subscriber.pk,
        topics=tuple(subscriber.topics or ()),
        excludes=tuple(subscriber.excludes or ()),
        authors=tuple(subscriber.authors or ()),
        organizations=tuple(subscriber.organizations or ()),
        weights=dict(subscriber.weights or {}),
        max_papers=subscriber.max_papers,
        already_sent=frozenset(already_sent) | frozenset(named),
    )


def named_papers(subscriber_ids: Sequence[int], paper_ids: Sequence[int]) -> dict[int, set[int]]:
    """The papers among ``paper_ids`` each subscriber named, imported or voted on: one query."""
    named: dict[int, set[int]] = {}
    if subscriber_ids and paper_ids:
        rows = LikedPaper.objects.filter(subscriber_id__in=subscriber_ids, paper_id__in=paper_ids).values_list(
            "subscriber_id", "paper_id"
        )
        for subscriber_id, paper_id in rows:
            named.setdefault(subscriber_id, set()).add(paper_id)
    return named


def ledger(subscriber_ids: Sequence[int], paper_ids: Sequence[int]) -> dict[int, set[int]]:
    """The papers among ``paper_ids`` each subscriber has already received."""
    sent: dict[int, set[int]] = {}
    if subscriber_ids and paper_ids:
        rows = SentPaper.objects.filter(subscriber_id__in=subscriber_ids, paper_id__in=paper_ids).values_list(
            "subscriber_id", "paper_id"
        )
        for subscriber_id, paper_id in rows:
            sent.setdefault(subscriber_id, set()).add(paper_id)
    return sent


def rank(
    ed: Edition, subscribers: Sequence[Subscriber], *, named: dict[int, set[int]] | None = None
) -> dict[int, list[RankedItem]]:
    """Each subscriber's picks from the edition, never a paper they already received or named
    (``named``: what named_papers answers for them, when the caller has read it already)."""
    ids = [s.pk for s in subscribers]
    already = ledger(ids, ed.paper_ids)
    named = named_papers(ids, ed.paper_ids) if named is None else named
    return ed.index.rank(
        [profile_for(s, already_sent=already.get(s.pk, ()), named=named.get(s.pk, ())) for s in subscribers]
    )


def top_overall(ed: Edition, subscribers: Sequence[Subscriber], *, count: int) -> dict[int, list[RankedItem]]:
    """The day's most upvoted papers each subscriber has not received or named yet (a quiet day's note)."""
    ids = [s.pk for s in subscribers]
    already, named = ledger(ids, ed.paper_ids), named_papers(ids, ed.paper_ids)
    return ed.index.rank(
        [
            Profile(
                subscriber_id=s.pk,
                max_papers=count,
                already_sent=frozenset(already.get(s.pk, ())) | frozenset(named.get(s.pk, ())),
            )
            for s in subscribers
        ]
    )


def reader_for(subscriber: Subscriber, digest_date: date, *, note: bool = False) -> Reader:
    """``note``: a quiet day's note, whose intro speaks of the day's top papers, not of topics."""
    return Reader(
        email=subscriber.email,
        topics=() if note else tuple(subscriber.topics or ()),
        frequency=subscriber.frequency,
        webview_url=tokens.webview_url(subscriber, day=digest_date),
        manage_url=tokens.manage_url(subscriber),
        unsubscribe_url=tokens.unsubscribe_url(subscriber),
        feedback_links=tokens.FeedbackLinks(subscriber),
    )


def compose(ed: Edition, subscriber: Subscriber, picks: Sequence[RankedItem], *, note: bool = False) -> RenderedDigest:
    return ed.renderer.render(reader_for(subscriber, ed.digest_date, note=note), picks)


def edition(digest_date: date, *, weekly: bool = False) -> Edition:
    """The process's edition of ``digest_date``, rebuilt when its papers or pins changed."""
    return editions.get(digest_date, weekly=weekly)
