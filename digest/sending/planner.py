"""Plan, hold and release digest days: one delivery row per (subscriber, date), then fan out.

Planning is idempotent: a unique constraint on (subscriber, date) means a second beat, a
repeated run or a retried task inserts nothing new. Rows whose papers are not ready (the
day's scrape failed or is missing) are created "waiting" and curators are alerted; they
turn "pending" once a good scrape lands, or are skipped after WAITING_DAYS.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, QuerySet
from django.utils import timezone

from digest import jobs
from digest.models import Delivery, Subscriber
from digest.sending import reasons
from digest.sending.editions import digest_ready, is_weekly_day, papers_days
from digest.sending.outcomes import mark_stuck
from digest.sending.pause import sending_paused
from papers.services import alert_curators

logger = logging.getLogger(__name__)

# Planning reads active subscribers this many at a time (memory stays flat).
PLAN_CHUNK = 2000
# A digest held back longer than this is no longer news: it is skipped, not sent late.
WAITING_DAYS = 2


@dataclass
class PlanReport:
    planned: int = 0
    waiting: int = 0
    released: int = 0
    stuck: int = 0
    batches: int = 0
    dates: set[date] = field(default_factory=set)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _create_deliveries(subscriber_ids: Iterable[int], digest_date: date, *, ready: bool, weekly: bool) -> int:
    status = Delivery.Status.PENDING if ready else Delivery.Status.WAITING
    why = (
        {}
        if ready
        else {
            "outcome": Delivery.Outcome.HELD,
            "outcome_line": reasons.held_line(papers_days(digest_date, weekly=weekly)[-1]),
        }
    )
    created = 0
    iterator = iter(subscriber_ids)
    while chunk := list(itertools.islice(iterator, PLAN_CHUNK)):
        before = Delivery.objects.filter(digest_date=digest_date, subscriber_id__in=chunk).count()
        Delivery.objects.bulk_create(
            [Delivery(subscriber_id=sid, digest_date=digest_date, status=status, **why) for sid in chunk],
            ignore_conflicts=True,
        )
        created += Delivery.objects.filter(digest_date=digest_date, subscriber_id__in=chunk).count() - before
    return created


def _due(digest_date: date, subscribers: QuerySet[Subscriber]) -> Iterator[int]:
    """Of ``subscribers``, the ids without a delivery for ``digest_date`` yet."""
    planned = Delivery.objects.filter(digest_date=digest_date).values("subscriber_id")
    return (
        subscribers.filter(status=Subscriber.Status.ACTIVE)
        .exclude(pk__in=planned)
        .order_by("pk")
        .values_list("pk", flat=True)
        .iterator(chunk_size=PLAN_CHUNK)
    )


def _plan(report: PlanReport, digest_date: date, subscribers: QuerySet[Subscriber]) -> None:
    """One delivery per due subscriber of each frequency due on ``digest_date``: pending
    when its papers are ready, waiting when not."""
    frequencies = [Subscriber.Frequency.DAILY]
    if is_weekly_day(digest_date):
        frequencies.append(Subscriber.Frequency.WEEKLY)
    for frequency in frequencies:
        ids = _due(digest_date, subscribers.filter(frequency=frequency))
        weekly = frequency == Subscriber.Frequency.WEEKLY
        ready = digest_ready(digest_date, weekly=weekly)
        created = _create_deliveries(ids, digest_date, ready=ready, weekly=weekly)
        report.planned += created
        if created:
            report.dates.add(digest_date)
        if not ready:
            report.waiting += created


def plan_date(digest_date: date, *, subscriber_ids: Iterable[int] | None = None) -> PlanReport:
    """Plan ``digest_date`` for every due subscriber (or these), whatever their send hour."""
    report = PlanReport(dates={digest_date})
    subscribers = Subscriber.objects.all()
    if subscriber_ids is not None:
        subscribers = subscribers.filter(pk__in=list(subscriber_ids))
    _plan(report, digest_date, subscribers)
    return report


def plan_due(*, now: datetime | None = None) -> PlanReport:
    """The hourly planner: plan every subscriber whose local send hour has come today."""
    now = now or timezone.now()
    report = PlanReport()
    zones = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).values_list("time_zone", flat=True).distinct()
    for zone_name in zones:
        local = now.astimezone(_zone(zone_name))
        _plan(report, local.date(), Subscriber.objects.filter(time_zone=zone_name, send_hour__lte=local.hour))
    return report


def release_waiting() -> int:
    """Waiting deliveries whose papers have become ready turn pending."""
    released = 0
    waiting = Delivery.objects.filter(status=Delivery.Status.WAITING)
    weekly_ids = Subscriber.objects.filter(frequency=Subscriber.Frequency.WEEKLY).values("pk")
    for digest_date in waiting.values_list("digest_date", flat=True).distinct():
        for weekly in (False, True):
            if not digest_ready(digest_date, weekly=weekly):
                continue
            rows = waiting.filter(digest_date=digest_date)
            rows = rows.filter(subscriber_id__in=weekly_ids) if weekly else rows.exclude(subscriber_id__in=weekly_ids)
            released += rows.update(status=Delivery.Status.PENDING)
    return released


def expire_waiting(*, today: date | None = None) -> int:
    today = today or timezone.localdate()
    return Delivery.objects.filter(
        status=Delivery.Status.WAITING, digest_date__lt=today - timedelta(days=WAITING_DAYS)
    ).update(
        status=Delivery.Status.SKIPPED,
        error=f"its papers never arrived within {WAITING_DAYS} days",
        outcome=Delivery.Outcome.NEVER_ARRIVED,
        outcome_line=reasons.never_arrived_line(WAITING_DAYS),
    )


def alert_waiting() -> None:
    """Tell curators, once a day per date, that digests are held back for missing papers."""
    counts = (
        Delivery.objects.filter(status=Delivery.Status.WAITING)
        .values_list("digest_date")
        .annotate(n=Count("id"))
        .order_by("digest_date")
    )
    for digest_date, count in counts:
        if cache.add(f"digest:alerted-waiting:{digest_date}", 1, timeout=86_400):
            day = papers_days(digest_date, weekly=False)[-1]
            alert_curators(
                subject=f"Digests of {digest_date} held back",
                body=(
                    f"{count} digests of {digest_date} are waiting: the papers of {day} have no good scrape."
                    " They go out as soon as a scrape of that day succeeds (scrape it again from the console"
                    f" or with: python manage.py scrape --date {day})."
                ),
            )


def fan_out(*, dates: Iterable[date] | None = None, batch_size: int | None = None) -> int:
    """Send the ids of pending deliveries to the workers, a batch per task; how many batches."""
    if sending_paused():
        return 0
    size = batch_size or settings.DIGEST_BATCH_SIZE
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING)
    if dates is not None:
        pending = pending.filter(digest_date__in=list(dates))
    ids = pending.order_by("id").values_list("id", flat=True).iterator(chunk_size=size)
    batches = 0
    while chunk := list(itertools.islice(ids, size)):
        jobs.enqueue(jobs.SEND_DIGEST_BATCH, chunk)
        batches += 1
    return batches


def planner_run(*, now: datetime | None = None) -> PlanReport:
    """What beat runs hourly: plan, release, sweep, alert, fan out.

    Every step reads its state from the database, so a lost broker message, a flushed
    Redis or a second beat is repaired by the next run.
    """
    report = plan_due(now=now)
    report.released = release_waiting()
    expire_waiting(today=timezone.localdate(now) if now else None)
    report.stuck = mark_stuck(now=now)
    alert_waiting()
    report.batches = fan_out()
    logger.info(
        "planner: %s planned (%s waiting), %s released, %s stuck, %s batches",
        report.planned,
        report.waiting,
        report.released,
        report.stuck,
        report.batches,
    )
    return report
