"""Writes of the papers stage: scrape a list, store it idempotently, judge the run.

Every scrape leaves a ScrapeRun whatever happens. A run that looks broken (the feed
errors, changes shape, or answers with far fewer papers than usual) is marked failed
and the curators are alerted, so a bad day holds its digests back instead of sending
an empty or wrong email.
"""

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from papers.feed import FeedClient, FeedError, FeedPaper, FetchResult, parse_any
from papers.lookup import ARXIV_INTERVAL, PaperLookup
from papers.models import Paper, PaperSnapshot, Pin, ScrapeRun

logger = logging.getLogger(__name__)

# Fields the feed owns; curator fields (hidden, pins) are never overwritten by a scrape.
FEED_FIELDS = [
    "title",
    "abstract",
    "authors",
    "organization",
    "published_at",
    "featured_on",
    "upvotes",
    "num_comments",
    "github_repo",
    "github_stars",
    "project_page",
    "thumbnail",
    "ai_summary",
    "ai_keywords",
    "withdrawn_at",
]
# How many earlier complete weekday runs make the "usual count" a day is judged against.
HISTORY_RUNS = 10
MIN_HISTORY = 3


# ETag / Last-Modified per URL, kept between runs so an unchanged list costs one 304.
VALIDATORS_CACHE_KEY = "papers:feed-validators"
VALIDATORS_TTL = 7 * 24 * 3600


def feed_client() -> FeedClient:
    return FeedClient(
        settings.HF_BASE_URL,
        timeout=settings.HF_TIMEOUT,
        max_retries=settings.HF_MAX_RETRIES,
        budget=settings.HF_REQUEST_BUDGET,
        validators=cache.get(VALIDATORS_CACHE_KEY) or {},
    )


def _keep_validators(feed: FeedClient) -> None:
    cache.set(VALIDATORS_CACHE_KEY, feed.validators, VALIDATORS_TTL)


def feed_client_quick() -> FeedClient:
    """For interactive start-up: give up fast when the network is not there."""
    return FeedClient(settings.HF_BASE_URL, timeout=5.0, connect_timeout=3.0, max_retries=0, budget=50)


def local_today() -> date:
    return timezone.localdate()


def scrape_day(*, day: date, client: FeedClient | None = None) -> ScrapeRun:
    """Bring in the daily list of `day`; a day not yet over is stored as partial."""
    run = ScrapeRun.objects.create(source=ScrapeRun.Source.DAILY, day=day)
    with client or feed_client() as feed:
        try:
            result = feed.daily(day)
        except FeedError as exc:
            return _fail(run, str(exc), requests=feed.requests_made)
        _keep_validators(feed)
    return _finish(run, result)


def scrape_trending(*, client: FeedClient | None = None) -> ScrapeRun:
    run = ScrapeRun.objects.create(source=ScrapeRun.Source.TRENDING)
    with client or feed_client() as feed:
        try:
            result = feed.trending()
        except FeedError as exc:
            return _fail(run, str(exc), requests=feed.requests_made)
        _keep_validators(feed)
    if not result.not_modified and not result.papers:
        return _fail(run, "the trending list is empty", requests=result.requests, via=result.source)
    return _finish(run, result, trending=True)


def scrape_file(*, path: Path, day: date | None = None) -> ScrapeRun:
    """Store a saved API JSON or HTML page; `day` defaults to the day most papers were featured."""
    run = ScrapeRun.objects.create(source=ScrapeRun.Source.FILE, day=day, via=path.name[:255], url=str(path)[:1000])
    try:
        papers, kind = parse_any(path.read_bytes())
    except OSError as exc:
        return _fail(run, f"cannot read {path}: {exc.strerror or exc}")
    except FeedError as exc:
        return _fail(run, f"{path.name}: {exc}")
    if not papers:
        return _fail(run, f"{path.name} holds no papers")
    if day is None:
        days = [p.featured_on for p in papers if p.featured_on]
        run.day = max(set(days), key=days.count) if days else None
    result = FetchResult(papers=papers, source=kind, url=str(path), requests=0, not_modified=False, notes=[])
    return _finish(run, result, judge=False)


def _finish(run: ScrapeRun, result: FetchResult, *, trending: bool = False, judge: bool = True) -> ScrapeRun:
    run.via = run.via or result.source
    run.url = run.url or result.url
    run.requests = result.requests
    run.notes = "; ".join(result.notes)
    if result.not_modified:
        # Nothing changed since the last run: that run's verdict still stands.
        previous = (
            ScrapeRun.objects.filter(source=run.source, day=run.day)
            .exclude(pk=run.pk)
            .exclude(status=ScrapeRun.Status.RUNNING)
            .first()
        )
        run.status = previous.status if previous else ScrapeRun.Status.OK
        run.notes = "; ".join(filter(None, [run.notes, "not modified since the last run"]))
        run.finished_at = timezone.now()
        run.save()
        return run

    fallback_day = run.day or local_today()
    new, updated = store_papers(result.papers, run=run, fallback_day=fallback_day, trending=trending)
    run.papers_seen = len(result.papers)
    run.papers_new = new
    run.papers_updated = updated

    problem = judge_day(run) if judge and run.source == ScrapeRun.Source.DAILY else None
    if problem:
        return _fail(run, problem, requests=run.requests)
    in_progress = run.source == ScrapeRun.Source.DAILY and run.day is not None and run.day >= local_today()
    run.status = ScrapeRun.Status.PARTIAL if in_progress else ScrapeRun.Status.OK
    run.finished_at = timezone.now()
    run.save()
    logger.info(run.summary())
    return run


def judge_day(run: ScrapeRun) -> str:
    """Why a daily run's count looks broken, or "" when it looks like a real day."""
    assert run.day is not None
    weekday = run.day.weekday() < 5
    complete = run.day < local_today()
    if run.papers_seen == 0:
        if weekday and complete:
            return f"the feed answered with no papers for {run.day}, a weekday"
        return ""
    if not (weekday and complete):
        return ""
    history = list(
        ScrapeRun.objects.filter(
            source=ScrapeRun.Source.DAILY, status=ScrapeRun.Status.OK, day__lt=run.day, papers_seen__gt=0
        )
        .exclude(day__week_day__in=[1, 7])  # Django counts Sunday as 1 and Saturday as 7
        .order_by("-day")
        .values_list("papers_seen", flat=True)[:HISTORY_RUNS]
    )
    if len(history) < MIN_HISTORY:
        return ""
    usual = sum(history) / len(history)
    if run.papers_seen < usual * settings.SCRAPE_MIN_RATIO:
        return (
            f"only {run.papers_seen} papers for {run.day}, far below the recent average of {usual:.0f};"
            " the feed may have changed"
        )
    return ""


def _fail(run: ScrapeRun, error: str, *, requests: int = 0, via: str = "") -> ScrapeRun:
    run.status = ScrapeRun.Status.FAILED
    run.error = error
    run.requests = requests or run.requests
    run.via = run.via or via
    run.finished_at = timezone.now()
    run.save()
    alert_curators(subject=f"Scrape failed: {run.source} {run.day or ''}".strip(), body=run.summary())
    return run


def alert_curators(*, subject: str, body: str) -> None:
    """Log an error and email ADMINS; a failed alert email must not hide the failure itself."""
    logger.error("%s: %s", subject, body)
    try:
        mail_admins(subject, body, fail_silently=False)
    except Exception:
        logger.exception("could not email the alert to ADMINS")


@transaction.atomic
def store_papers(
    papers: Iterable[FeedPaper], *, run: ScrapeRun, fallback_day: date, trending: bool = False
) -> tuple[int, int]:
    """Insert new papers, update changed ones, snapshot every count; returns (new, updated).

    Idempotent: storing the same list twice changes only counts and adds a snapshot.
    """
    papers = list(papers)
    existing = {
        p.arxiv_id: p for p in Paper.objects.filter(arxiv_id__in=[p.arxiv_id for p in papers]).only(*FEED_FIELDS)
    }
    rows: list[Paper] = []
    new = updated = 0
    for item in papers:
        row = Paper(arxiv_id=item.arxiv_id, **paper_fields(item, fallback_day=fallback_day))
        before = existing.get(item.arxiv_id)
        if before is None:
            new += 1
        else:
            if before.featured_on and not trending:
                # A paper stays on the day it was first featured, whichever list saw it again.
                row.featured_on = min(before.featured_on, row.featured_on)
            elif before.featured_on:
                row.featured_on = before.featured_on
            if any(getattr(before, f) != getattr(row, f) for f in FEED_FIELDS):
                updated += 1
        rows.append(row)
    # update_conflicts makes two scrapes racing on one paper both succeed: one inserts, one updates.
    Paper.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["arxiv_id"], update_fields=[*FEED_FIELDS, "updated_at"]
    )
    ids = dict(Paper.objects.filter(arxiv_id__in=[r.arxiv_id for r in rows]).values_list("arxiv_id", "pk"))
    now = timezone.now()
    PaperSnapshot.objects.bulk_create(
        [
            PaperSnapshot(
                paper_id=ids[item.arxiv_id],
                run=run,
                taken_at=now,
                upvotes=item.upvotes,
                num_comments=item.num_comments,
                github_stars=item.github_stars,
                trending_rank=rank if trending else None,
            )
            for rank, item in enumerate(papers, start=1)
        ],
        ignore_conflicts=True,
    )
    return new, updated


def paper_fields(item: FeedPaper, *, fallback_day: date) -> dict[str, object]:
    """What a feed item sets on its Paper, all but the arXiv id that names the row."""
    return {
        "title": item.title,
        "abstract": item.abstract,
        "authors": list(item.authors),
        "organization": item.organization[:200],
        "published_at": item.published_at,
        "featured_on": item.featured_on or fallback_day,
        "upvotes": max(item.upvotes, 0),
        "num_comments": max(item.num_comments, 0),
        "github_repo": item.github_repo[:500],
        "github_stars": item.github_stars,
        "project_page": item.project_page[:500],
        "thumbnail": item.thumbnail[:500],
        "ai_summary": item.ai_summary,
        "ai_keywords": list(item.ai_keywords),
        "withdrawn_at": item.withdrawn_at,
        "updated_at": timezone.now(),
    }


# --- papers named by readers ------------------------------------------------------
#
# A reader may name any arXiv paper. The ones we do not store are looked up (papers/lookup.py)
# and stored like the daily list's, but with featured_on NULL: no day's query selects them,
# and every reader who names one shares the row.

# arXiv asks for one request every 3 s from a client as a whole: every process takes its slot
# from the shared cache.
ARXIV_SLOT_KEY = "papers:arxiv-slot"


def arxiv_slot(max_wait: float | None) -> bool:
    """Take the next arXiv request slot shared by all processes, waiting at most ``max_wait``
    seconds (None: as long as it takes); False when it is not free in time."""
    ends = None if max_wait is None else time.monotonic() + max_wait
    while not cache.add(ARXIV_SLOT_KEY, 1, timeout=ARXIV_INTERVAL):
        step = 0.25
        if ends is not None and time.monotonic() + step > ends:
            return False
        time.sleep(step)
    return True


def paper_lookup(*, quick: bool = False) -> PaperLookup:
    """The Hugging Face paper API and arXiv's export API behind the feed client's limits.
    ``quick``: for a page that waits on the answer, no retries (a deadline bounds each wait)."""
    retries = 0 if quick else settings.HF_MAX_RETRIES
    hf = FeedClient(
        settings.HF_BASE_URL, timeout=settings.HF_TIMEOUT, max_retries=retries, budget=settings.HF_REQUEST_BUDGET
    )
    # budget=1 per ARXIV_INTERVAL keeps this client's retries at arXiv's pace too.
    arxiv = FeedClient(
        settings.ARXIV_API_URL,
        timeout=settings.HF_TIMEOUT,
        max_retries=retries,
        budget=1,
        budget_window=ARXIV_INTERVAL,
    )
    return PaperLookup(hf, arxiv, arxiv_gate=arxiv_slot)


@dataclass(frozen=True)
class PapersFetched:
    """Where each asked-for id stands after a fetch."""

    found: frozenset[str]  # in our store now (before, or fetched just now)
    missing: frozenset[str]  # neither Hugging Face nor arXiv has it
    left: tuple[str, ...]  # not fetched (time ran out, over the limit, or a source failed): try later


def papers_fetch(
    arxiv_ids: Sequence[str],
    *,
    budget: float | None = None,
    limit: int | None = None,
    lookup: PaperLookup | None = None,
) -> PapersFetched:
    """Make sure the papers of ``arxiv_ids`` are in our store: ours first, then looked up.

    ``budget``: seconds the lookups may take (None: no deadline, with retries; for workers).
    ``limit``: at most this many ids are looked up; the rest are left for later.
    """
    ids = list(dict.fromkeys(arxiv_ids))
    stored = set(Paper.objects.filter(arxiv_id__in=ids).values_list("arxiv_id", flat=True))
    wanted = [i for i in ids if i not in stored]
    later = wanted[limit:] if limit is not None else []
    wanted = wanted[:limit] if limit is not None else wanted
    if not wanted:
        return PapersFetched(frozenset(stored), frozenset(), tuple(later))
    with lookup or paper_lookup(quick=budget is not None) as source:
        result = source.look_up(wanted, budget=budget)
        requests = source.requests_made
    store_fetched(result.papers)
    logger.info(
        "fetched %s of %s named papers (%s not found, %s left) in %s requests%s",
        len(result.papers),
        len(wanted),
        len(result.missing),
        len(result.left),
        requests,
        f": {'; '.join(result.notes)}" if result.notes else "",
    )
    found = stored | {p.arxiv_id for p in result.papers}
    return PapersFetched(frozenset(found), frozenset(result.missing), tuple(result.left + later))


def store_fetched(papers: Iterable[FeedPaper]) -> int:
    """Store papers looked up by id, never on any day (featured_on NULL). A paper already in
    the store (a scrape or another reader got it first) is left as it is; returns how many are new."""
    rows = {}
    for item in papers:
        fields = paper_fields(item, fallback_day=local_today())
        fields["featured_on"] = None
        rows[item.arxiv_id] = Paper(arxiv_id=item.arxiv_id, **fields)
    if not rows:
        return 0
    known = set(Paper.objects.filter(arxiv_id__in=list(rows)).values_list("arxiv_id", flat=True))
    Paper.objects.bulk_create([row for key, row in rows.items() if key not in known], ignore_conflicts=True)
    return len(rows) - len(known)


def days_back(*, until: date, days: int) -> list[date]:
    """The `days` days before and including `until`, oldest first."""
    return [until - timedelta(days=n) for n in range(days - 1, -1, -1)]


def scrape_schedule_run(*, now: datetime | None = None) -> list[ScrapeRun]:
    """What beat's daily entry does: today's list so far, and yesterday's final list until it is ok."""
    today = timezone.localtime(now).date() if now else local_today()
    yesterday = today - timedelta(days=1)
    runs = []
    if not ScrapeRun.objects.filter(source=ScrapeRun.Source.DAILY, day=yesterday, status=ScrapeRun.Status.OK).exists():
        runs.append(scrape_day(day=yesterday))
    runs.append(scrape_day(day=today))
    return runs


# --- curation -------------------------------------------------------------------


class CurationError(ValueError):
    """A curator's request that cannot be done; the message says why in one line."""


def papers_pin(*, paper_ids: Iterable[int], day: date, note: str = "", by: object | None = None) -> int:
    """Pin papers for `day`: every subscriber's digest of that day shows them first, with
    the note. Pinning again updates the note. Hidden papers are refused: they never go out."""
    ids = list(paper_ids)
    hidden = list(Paper.objects.filter(pk__in=ids, hidden=True).values_list("arxiv_id", flat=True))
    if hidden:
        raise CurationError(f"hidden papers cannot be pinned (unhide them first): {', '.join(sorted(hidden))}")
    with transaction.atomic():
        for paper_id in ids:
            Pin.objects.update_or_create(paper_id=paper_id, day=day, defaults={"note": note.strip(), "created_by": by})
    return len(ids)


def papers_hide(*, paper_ids: Iterable[int], hidden: bool) -> int:
    """Hide papers from every digest (or bring them back); returns how many changed."""
    return (
        Paper.objects.filter(pk__in=list(paper_ids))
        .exclude(hidden=hidden)
        .update(hidden=hidden, updated_at=timezone.now())
    )


def scrape_enqueue(*, day: date) -> None:
    """Queue a scrape of `day` on a worker (what the console's "scrape now" does)."""
    if day > local_today():
        raise CurationError(f"{day} is in the future: there is no list to scrape yet")
    # By name: papers.tasks imports this module, so importing it back would be a loop.
    current_app.tasks["papers.tasks.scrape_day"].delay(day.isoformat())
