"""Writes of the papers a subscriber likes: named on a form, imported, synced, or voted on.

A liked (or disliked) paper is a LikedPaper row from the moment its id is given. Its paper
is ours already, or fetched (papers.services.papers_fetch): a form submit fetches up to
SUBMIT_FETCH_IDS ids within SUBMIT_FETCH_SECONDS and leaves the rest to a Celery task; the
digest batch fetches what is still pending before it ranks. An id neither Hugging Face nor
arXiv knows is "not found" and the other papers still count.

Every change of a subscriber's list ends in :func:`liked_papers_changed`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery

from digest import jobs
from digest.models import LikedPaper, Subscriber
from papers import services as paper_services
from papers.models import Paper

logger = logging.getLogger(__name__)

MAX_LIKED_PAPERS = 1000
# What a page that waits on the answer fetches at once; the rest goes to the background.
SUBMIT_FETCH_IDS = 30
SUBMIT_FETCH_SECONDS = 5.0

Source = LikedPaper.Source
State = LikedPaper.State


class TooManyLikedPapers(ValueError):
    """More than MAX_LIKED_PAPERS in total; the message states the limit."""


def limit_message(total: int) -> str:
    return f"At most {MAX_LIKED_PAPERS:,} papers in total, please (this would make {total:,})."


@dataclass(frozen=True)
class Prefetched:
    """What a form submit fetched before answering."""

    ids: tuple[str, ...]
    missing: frozenset[str]  # exist nowhere: listed as "not found"
    later: int  # left for the background fetch


def prefetch(arxiv_ids: Iterable[str]) -> Prefetched:
    """Fetch what a page may wait for: up to SUBMIT_FETCH_IDS unknown ids within
    SUBMIT_FETCH_SECONDS; papers we store already cost one query."""
    ids = tuple(dict.fromkeys(arxiv_ids))
    if not ids:
        return Prefetched((), frozenset(), 0)
    fetched = paper_services.papers_fetch(ids, budget=SUBMIT_FETCH_SECONDS, limit=SUBMIT_FETCH_IDS)
    return Prefetched(ids, fetched.missing, len(fetched.left))


@dataclass(frozen=True)
class Added:
    added: int  # new rows
    pending: int  # of them, still being fetched
    not_found: tuple[str, ...]  # of them, existing nowhere


def liked_papers_add(
    *,
    subscriber: Subscriber,
    arxiv_ids: Sequence[str],
    source: str,
    liked: bool = True,
    prefetched: Prefetched | None = None,
    fetch_now: bool = True,
) -> Added:
    """Add ids to the subscriber's papers (ids already there are left as they are).

    The library importers and the Zotero sync call this with their source. Papers are fetched
    here (within the submit budget) unless ``prefetched`` says what a caller fetched already,
    or ``fetch_now`` is False (a worker, e.g. a daily sync: nothing waits on it); what is still
    unknown is fetched in the background. TooManyLikedPapers past the limit, with nothing stored.
    """
    ids = list(dict.fromkeys(arxiv_ids))
    have = set(subscriber.liked_papers.filter(arxiv_id__in=ids).values_list("arxiv_id", flat=True))
    new = [i for i in ids if i not in have]
    total = subscriber.liked_papers.count() + len(new)
    if total > MAX_LIKED_PAPERS:
        raise TooManyLikedPapers(limit_message(total))
    if not new:
        return Added(0, 0, ())
    if prefetched is None:
        prefetched = prefetch(new) if fetch_now else Prefetched(tuple(new), frozenset(), len(new))
    with transaction.atomic():
        stored = dict(Paper.objects.filter(arxiv_id__in=new).values_list("arxiv_id", "pk"))
        rows = [
            LikedPaper(
                subscriber=subscriber,
                arxiv_id=arxiv_id,
                paper_id=stored.get(arxiv_id),
                liked=liked,
                source=source,
                state=State.FOUND
                if arxiv_id in stored
                else State.NOT_FOUND
                if arxiv_id in prefetched.missing
                else State.PENDING,
            )
            for arxiv_id in new
        ]
        # A second submit racing this one adds the same ids once.
        LikedPaper.objects.bulk_create(rows, ignore_conflicts=True)
        liked_papers_changed(subscriber)
    return Added(
        added=len(rows),
        pending=sum(r.state == State.PENDING for r in rows),
        not_found=tuple(r.arxiv_id for r in rows if r.state == State.NOT_FOUND),
    )


def liked_papers_vote(*, subscriber: Subscriber, paper: Paper, liked: bool) -> bool:
    """ "More like this" makes the paper a liked one, "less like this" a disliked one; a
    paper already on the list keeps where it came from and takes the vote's side. Returns
    whether anything changed (a repeated vote changes nothing)."""
    row = LikedPaper.objects.filter(subscriber=subscriber, arxiv_id=paper.arxiv_id).first()
    if row is None:
        if subscriber.liked_papers.count() >= MAX_LIKED_PAPERS:
            logger.info("vote of subscriber %s not kept as a liked paper: the list is full", subscriber.pk)
            return False
        try:
            with transaction.atomic():
                LikedPaper.objects.create(
                    subscriber=subscriber,
                    arxiv_id=paper.arxiv_id,
                    paper=paper,
                    liked=liked,
                    source=Source.VOTE,
                    state=State.FOUND,
                )
        except IntegrityError:  # the same vote, a moment ago
            return False
    elif row.liked == liked and row.paper_id == paper.pk:
        return False
    else:
        row.liked, row.paper, row.state = liked, paper, State.FOUND
        row.save(update_fields=["liked", "paper", "state"])
    liked_papers_changed(subscriber)
    return True


def liked_papers_remove(
    *,
    subscriber: Subscriber,
    row_ids: Iterable[int] = (),
    arxiv_ids: Iterable[str] = (),
    source: str | None = None,
) -> int:
    """Remove rows by id (the manage page's buttons) or by arXiv id (a Zotero item gone from
    the library, with ``source``); returns how many went."""
    rows = subscriber.liked_papers.all()
    row_ids, arxiv_ids = list(row_ids), list(arxiv_ids)
    if source is not None:
        rows = rows.filter(source=source)
    removed, _ = rows.filter(pk__in=row_ids).delete() if row_ids else (0, {})
    if arxiv_ids:
        more, _ = rows.filter(arxiv_id__in=arxiv_ids).delete()
        removed += more
    if removed:
        liked_papers_changed(subscriber)
    return removed


def liked_papers_changed(subscriber: Subscriber, *, fetch: bool = True) -> int:
    """Where every change of a subscriber's liked papers ends (form, import, vote, removal,
    fetch): rows whose paper has reached our store meanwhile (a scrape, another reader) are
    linked to it, and, with ``fetch``, what is still pending is handed to the background
    fetch once the transaction commits. Returns the rows still pending."""
    pending = LikedPaper.objects.filter(subscriber=subscriber, state=State.PENDING)
    _link_stored(pending)
    left = pending.count()
    if left and fetch:
        jobs.enqueue_on_commit(jobs.FETCH_LIKED_PAPERS, subscriber.pk)
    return left


def _link_stored(rows: object) -> int:
    """Pending rows whose paper is stored by now -> found, in one UPDATE."""
    stored = Paper.objects.filter(arxiv_id=OuterRef("arxiv_id"))
    return rows.filter(
        arxiv_id__in=Paper.objects.values("arxiv_id")
    ).update(  # type: ignore[attr-defined]
        paper_id=Subquery(stored.values("pk")[:1]), state=State.FOUND
    )


@dataclass(frozen=True)
class Fetched:
    subscribers: int  # with pending rows
    found: int
    not_found: int
    left: int


def liked_papers_fetch(*, subscriber_ids: Sequence[int], budget: float | None = None) -> Fetched:
    """Fetch the pending papers of these subscribers: the Celery task's work (no deadline) and
    the digest batch's before it ranks (within ``budget``). One query when nothing is
    pending; else a fixed number, plus the change hook of each subscriber whose list moved."""
    pending = LikedPaper.objects.filter(subscriber_id__in=list(subscriber_ids), state=State.PENDING)
    rows = list(pending.values_list("subscriber_id", "arxiv_id"))
    if not rows:
        return Fetched(0, 0, 0, 0)
    owners = {subscriber_id for subscriber_id, _ in rows}
    fetched = paper_services.papers_fetch([arxiv_id for _, arxiv_id in rows], budget=budget)
    with transaction.atomic():
        not_found = pending.filter(arxiv_id__in=list(fetched.missing)).update(state=State.NOT_FOUND)
        found = _link_stored(pending)
        moved = set(
            LikedPaper.objects.filter(subscriber_id__in=list(owners))
            .exclude(state=State.PENDING)
            .filter(arxiv_id__in=[arxiv_id for _, arxiv_id in rows])
            .values_list("subscriber_id", flat=True)
        )
        for subscriber in Subscriber.objects.filter(pk__in=moved):
            liked_papers_changed(subscriber, fetch=False)
    return Fetched(len(owners), found, not_found, len(rows) - found - not_found)
