"""Reads that views, commands and the admin share."""

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from celery import current_app as app
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, Q
from django.utils import timezone

from digest import heartbeats, inbound
from digest.models import ConsentRecord, Delivery, DeliveryEvent, LikedPaper, Subscriber
from digest.ranking import PaperIndex
from digest.rendering import Card
from digest.sending.editions import paper_doc, profile_for
from papers.models import Paper, Pin, ScrapeRun


def latest_day_papers(*, limit: int) -> tuple[date | None, list[Paper]]:
    day = (
        Paper.objects.filter(hidden=False, featured_on__isnull=False)
        .order_by("-featured_on")
        .values_list("featured_on", flat=True)
        .first()
    )
    if day is None:
        return None, []
    papers = list(Paper.objects.filter(featured_on=day, hidden=False).order_by("-upvotes", "arxiv_id")[:limit])
    return day, papers


def health() -> dict[str, object]:
    """Database, broker, the age of the last good scrape and of the worker's and beat's
    heartbeats, for an uptime monitor."""
    checks: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {exc.__class__.__name__}"
    last = None
    if checks["database"] == "ok":
        last = (
            ScrapeRun.objects.filter(status__in=[ScrapeRun.Status.OK, ScrapeRun.Status.PARTIAL])
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
    age = (timezone.now() - last).total_seconds() if last else None
    checks["last_good_scrape"] = last.isoformat() if last else None
    checks["last_good_scrape_age_seconds"] = round(age) if age is not None else None
    stale = age is None or age > settings.HEALTH_MAX_SCRAPE_AGE
    checks["scrape"] = "stale" if stale else "ok"
    limits = {heartbeats.WORKER: settings.HEALTH_MAX_WORKER_AGE, heartbeats.BEAT: settings.HEALTH_MAX_BEAT_AGE}
    names = {heartbeats.WORKER: "last_worker_heartbeat_age_seconds", heartbeats.BEAT: "last_planner_run_age_seconds"}
    for part, limit in limits.items():
        seen = heartbeats.age(part)
        checks[names[part]] = round(seen) if seen is not None else None
        checks[part] = "ok" if seen is not None and seen <= limit else "stale"
    checks["ok"] = all(checks[part] == "ok" for part in ("database", "broker", "scrape", *limits))
    return checks


# --- subscriptions ------------------------------------------------------------

PREVIEW_DAYS = 7


def recent_days(*, days: int = PREVIEW_DAYS) -> list[date]:
    """The latest `days` days that have visible papers, newest first.

    Days with papers rather than calendar days: a fresh install holding only the bundled
    sample, or a service whose scrapes paused over a holiday, still previews something.
    """
    # Papers fetched because a reader named them are on no day (featured_on NULL).
    return list(
        Paper.objects.filter(hidden=False, withdrawn_at__isnull=True, featured_on__isnull=False)
        .order_by("-featured_on")
        .values_list("featured_on", flat=True)
        .distinct()[:days]
    )


class RecentIndex:
    """The ranking index of the recent days' papers for the live preview, one per process,
    rebuilt only when those papers change (a cheap aggregate query per preview)."""

    def __init__(self) -> None:
        self._stamp: tuple | None = None
        self._index: PaperIndex | None = None
        self._papers: dict[int, Paper] = {}

    def get(self, days: list[date]) -> tuple[PaperIndex, dict[int, Paper]]:
        visible = Paper.objects.filter(featured_on__in=days, hidden=False, withdrawn_at__isnull=True)
        stamp = (tuple(days), *visible.aggregate(n=Count("id"), at=Max("updated_at")).values())
        if self._index is None or stamp != self._stamp:
            papers = {p.pk: p for p in visible}
            self._index = PaperIndex([paper_doc(p) for p in papers.values()])
            self._papers, self._stamp = papers, stamp
        return self._index, self._papers


recent_index = RecentIndex()


def preview_papers(
    *,
    topics: list[str],
    excludes: list[str],
    authors: list[str],
    organizations: list[str],
    limit: int,
    liked: Sequence[str] = (),
) -> list[tuple[Paper, str]]:
    """Recent papers a digest with these filters and these liked papers (arXiv ids) would
    contain, each with the reason why, ranked by the same code as the emails.

    The profile comes from the same DB -> core adapter as a digest's (editions.profile_for),
    given a subscriber who is not stored and the liked papers we hold: a paper named is
    never shown, and whatever the adapter makes of liked papers, the preview shows too."""
    if not (topics or authors or organizations or liked) or limit <= 0:
        return []
    days = recent_days()
    if not days:
        return []
    index, papers = recent_index.get(days)
    reader = Subscriber(
        pk=0,
        topics=list(topics),
        excludes=list(excludes),
        authors=list(authors),
        organizations=list(organizations),
        max_papers=limit,
    )
    named = list(Paper.objects.filter(arxiv_id__in=list(liked)).values_list("pk", flat=True)) if liked else []
    profile = profile_for(reader, named=named)
    return [(papers[item.paper_id], item.reason) for item in index.rank([profile])[0]]


@dataclass(frozen=True)
class PreviewSeeds:
    """What the preview makes of pasted ids: how many we hold, and what it cannot read."""

    known: int
    unknown: int  # fetched once the form is sent
    bad: tuple[str, ...]


def preview_seeds(ids: Sequence[str], *, bad: Sequence[str] = ()) -> PreviewSeeds:
    known = Paper.objects.filter(arxiv_id__in=list(ids)).count() if ids else 0
    return PreviewSeeds(known=known, unknown=len(ids) - known, bad=tuple(piece[:40] for piece in bad[:5]))


@dataclass(frozen=True)
class YourPapers:
    """The manage page's "Your papers": the list, those being fetched, those not found."""

    rows: list[LikedPaper]  # found or being fetched, newest first
    pending: int
    not_found: list[LikedPaper]

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.not_found)


NO_PAPERS = YourPapers(rows=[], pending=0, not_found=[])


def your_papers(subscriber: Subscriber) -> YourPapers:
    rows = list(subscriber.liked_papers.select_related("paper").order_by("-added_at", "-pk"))
    return YourPapers(
        rows=[r for r in rows if r.state != LikedPaper.State.NOT_FOUND],
        pending=sum(r.state == LikedPaper.State.PENDING for r in rows),
        not_found=[r for r in rows if r.state == LikedPaper.State.NOT_FOUND],
    )


# The signup page shows them on every view; they change with a scrape, a few times a day.
SUGGESTIONS_SECONDS = 120


def topic_suggestions(*, limit: int = 16) -> list[str]:
    """The most frequent keywords of the recent days' papers, for the signup page.

    Kept in the shared cache for a couple of minutes: computing them reads a week of
    papers, which under load was a third of the signup page's database time."""
    key = f"digest:topic-suggestions:{limit}"
    suggestions = cache.get(key)
    if suggestions is None:
        suggestions = _topic_suggestions(limit)
        cache.set(key, suggestions, timeout=SUGGESTIONS_SECONDS)
    return suggestions


def _topic_suggestions(limit: int) -> list[str]:
    days = recent_days()
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for keywords in Paper.objects.filter(featured_on__in=days, hidden=False, withdrawn_at__isnull=True).values_list(
        "ai_keywords", flat=True
    ):
        for keyword in keywords or []:
            if not isinstance(keyword, str) or "," in keyword or not 2 < len(keyword) <= 60:
                continue  # a comma would split it in the topics field
            key = keyword.casefold()
            counts[key] += 1
            spelling.setdefault(key, keyword)
    return [spelling[key] for key, _ in counts.most_common(limit)]


def subscriber_data(*, subscriber: Subscriber) -> dict[str, Any]:
    """Everything kept about one subscriber, for their "download my data" JSON."""

    def iso(value: datetime | date | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "email": subscriber.email,
        "status": subscriber.status,
        "preferences": {
            "topics": subscriber.topics,
            "excludes": subscriber.excludes,
            "authors": subscriber.authors,
            "organizations": subscriber.organizations,
            "frequency": subscriber.frequency,
            "send_hour": subscriber.send_hour,
            "time_zone": subscriber.time_zone,
            "max_papers": subscriber.max_papers,
            "quiet_day": subscriber.quiet_day,
            "channel": subscriber.channel,
        },
        "learned_weights": subscriber.weights,
        "liked_papers": [
            {"arxiv_id": arxiv_id, "liked": liked, "source": source, "state": state, "added_at": iso(at)}
            for arxiv_id, liked, source, state, at in subscriber.liked_papers.order_by("added_at", "pk").values_list(
                "arxiv_id", "liked", "source", "state", "added_at"
            )
        ],
        "created_at": iso(subscriber.created_at),
        "confirmation_sent_at": iso(subscriber.confirmation_sent_at),
        "confirmed_at": iso(subscriber.confirmed_at),
        "paused_at": iso(subscriber.paused_at),
        "unsubscribed_at": iso(subscriber.unsubscribed_at),
        "bounce_count": subscriber.bounce_count,
        "consents": [
            {
                "created_at": iso(c.created_at),
                "ip": c.ip,
                "user_agent": c.user_agent,
                "form_version": c.form_version,
                "preferences": c.preferences,
                "confirmed_at": iso(c.confirmed_at),
            }
            for c in subscriber.consents.order_by("created_at")
        ],
        "deliveries": [
            {
                "date": iso(d.digest_date),
                "status": d.status,
                "outcome": d.outcome_line,
                "sent_at": iso(d.sent_at),
                "papers": d.papers,
            }
            for d in subscriber.deliveries.order_by("digest_date")
        ],
        "feedback": [
            {"paper": arxiv_id, "signal": signal, "at": iso(at)}
            for arxiv_id, signal, at in subscriber.feedback.order_by("created_at").values_list(
                "paper__arxiv_id", "signal", "created_at"
            )
        ],
    }


def consent_export() -> list[dict[str, Any]]:
    """One row per consent record, oldest first: the curators' proof of opt-in."""
    rows = ConsentRecord.objects.select_related("subscriber").order_by("created_at", "pk")
    return [
        {
            "email": c.subscriber.email,
            "status": c.subscriber.status,
            "consented_at": c.created_at.isoformat(),
            "ip": c.ip or "",
            "user_agent": c.user_agent,
            "form_version": c.form_version,
            "confirmed_at": c.confirmed_at.isoformat() if c.confirmed_at else "",
        }
        for c in rows
    ]


# --- the console's dashboard ------------------------------------------------------------

# Today's failed and bounced digests are a spike at this many and over twice the daily
# average of the week before.
SPIKE_MIN = 5
SPIKE_FACTOR = 2
GROWTH_DAYS = 30
# Gmail's line: a sender's user-reported spam rate must never reach 0.3 %.
COMPLAINT_RATE_LIMIT = 0.003


@dataclass(frozen=True)
class MailDay:
    """One digest date's mail: what left, and what came back about it (later, too)."""

    day: date
    sent: int
    hard_bounces: int  # refused during the send (SMTP 5xx) or reported later
    soft_bounces: int
    complaints: int

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    @property
    def over_limit(self) -> bool:
        return self.complaint_rate >= COMPLAINT_RATE_LIMIT

    @property
    def rate_text(self) -> str:
        return f"{self.complaint_rate:.2%}"


@dataclass(frozen=True)
class Dashboard:
    today: date
    problems: list[str]
    scrapes: list[ScrapeRun]
    deliveries_today: list[tuple[str, str, int]]  # (status, label, count) in the life-cycle's order
    bounces_week: int
    unsubscribes_week: int
    confirmations_week: int
    growth: list[tuple[date, int]]  # subscribed (confirmed, not unsubscribed) at the end of each day
    mail_days: list[MailDay]  # the last seven digest dates, newest first
    complaint_limit_text: str = f"{COMPLAINT_RATE_LIMIT:.1%}"


def dashboard(*, today: date, now: datetime) -> Dashboard:
    """Everything on the console's front page, in three queries whatever the data's size."""
    status = Delivery.Status
    week_ago = today - timedelta(days=7)
    scrapes = list(ScrapeRun.objects.order_by("-started_at")[:8])
    overdue = now - timedelta(seconds=settings.DIGEST_STUCK_AFTER)
    per_day: dict[date, Counter[str]] = defaultdict(Counter)
    stuck = 0
    # Events join in: deliveries count distinct, and each kind counts the deliveries it hit
    # (one bounce reported by a webhook and by the mailbox counts once).
    kind = DeliveryEvent.Kind
    rows = (
        Delivery.objects.filter(digest_date__gte=week_ago, digest_date__lte=today)
        .values_list("digest_date", "status")
        .annotate(
            n=Count("pk", distinct=True),
            overdue=Count("pk", distinct=True, filter=Q(status=status.SENDING, claimed_at__lt=overdue)),
            delivered=Count("pk", distinct=True, filter=Q(sent_at__isnull=False)),
            hard=Count("events__delivery_id", distinct=True, filter=Q(events__kind=kind.HARD_BOUNCE)),
            soft=Count("events__delivery_id", distinct=True, filter=Q(events__kind=kind.SOFT_BOUNCE)),
            complaints=Count("events__delivery_id", distinct=True, filter=Q(events__kind=kind.COMPLAINT)),
        )
        .order_by()
    )
    for day, state, n, late, delivered, hard, soft, complaints in rows:
        per_day[day][state] += n
        # A send still running long after its claim belongs to a dead worker even before
        # the sweeper has marked it stuck.
        stuck += late + (n if state == status.STUCK else 0)
        mail = per_day[day]
        mail["_sent"] += delivered
        # Refused during the send: bounced without ever having been sent.
        mail["_hard"] += hard + (n - delivered if state == status.BOUNCED else 0)
        mail["_soft"] += soft
        mail["_complaints"] += complaints
    mail_days = [
        MailDay(
            day=day,
            sent=per_day[day]["_sent"],
            hard_bounces=per_day[day]["_hard"],
            soft_bounces=per_day[day]["_soft"],
            complaints=per_day[day]["_complaints"],
        )
        for day in (today - timedelta(days=back) for back in range(7))
    ]

    ends = [_day_end(today - timedelta(days=back)) for back in range(GROWTH_DAYS - 1, -1, -1)]
    week_start = _day_end(week_ago)
    counts = Subscriber.objects.aggregate(
        **{
            f"d{i}": Count(
                "pk",
                filter=Q(confirmed_at__lt=end) & (Q(unsubscribed_at__isnull=True) | Q(unsubscribed_at__gte=end)),
            )
            for i, end in enumerate(ends)
        },
        unsubscribes=Count("pk", filter=Q(unsubscribed_at__gte=week_start)),
        confirmations=Count("pk", filter=Q(confirmed_at__gte=week_start)),
    )
    growth = [(today - timedelta(days=GROWTH_DAYS - 1 - i), counts[f"d{i}"]) for i in range(GROWTH_DAYS)]

    todays = per_day[today]
    failed_today = todays[status.FAILED] + todays[status.BOUNCED]
    before = [per_day[week_ago + timedelta(days=i)] for i in range(7)]
    baseline = sum(c[status.FAILED] + c[status.BOUNCED] for c in before) / 7
    problems = []
    last_daily = next((run for run in scrapes if run.source == ScrapeRun.Source.DAILY), None)
    if last_daily is None:
        problems.append("No scrape of the daily list among the latest runs: is beat running?")
    elif last_daily.status == ScrapeRun.Status.FAILED:
        problems.append(f"The last scrape of {last_daily.day} failed: {last_daily.error or 'no error recorded'}")
    if stuck:
        problems.append(f"{stuck} digest(s) stuck mid-send this week (a worker died): check and retry them")
    if failed_today >= SPIKE_MIN and failed_today > SPIKE_FACTOR * baseline:
        problems.append(f"{failed_today} digests failed or bounced today, against {baseline:.1f} a day the week before")
    if todays[status.WAITING]:
        problems.append(f"{todays[status.WAITING]} of today's digests wait for the day's papers (no good scrape yet)")
    for mail in mail_days:
        if mail.over_limit:
            problems.append(
                f"Spam complaints about the digests of {mail.day}: {mail.complaints} of {mail.sent} sent"
                f" ({mail.complaint_rate:.2%}), over Gmail's {COMPLAINT_RATE_LIMIT:.1%} limit"
            )
    if inbound.last_error():
        problems.append(f"The bounce mailbox cannot be read: {inbound.last_error()}")
    waiting = inbound.unrecognized_waiting()
    if waiting:
        problems.append(
            f"{waiting} message(s) in the bounce mailbox need a person: not a bounce, complaint or unsubscribe"
            " this service recognizes, or naming no delivery of ours"
        )
    rejected = inbound.rejected_recent(today=today)
    if rejected:
        problems.append(
            f"{rejected} bounce, complaint or unsubscribe report(s) this week proved nothing and changed nothing"
            " (forged, or about mail we did not send): see Rejected reports"
        )
    return Dashboard(
        today=today,
        problems=problems,
        scrapes=scrapes,
        deliveries_today=[(value, label, todays[value]) for value, label in status.choices],
        bounces_week=sum(c[status.BOUNCED] for c in [*before[1:], todays]),
        unsubscribes_week=counts["unsubscribes"],
        confirmations_week=counts["confirmations"],
        growth=growth,
        mail_days=mail_days,
    )


def _day_end(day: date) -> datetime:
    """Midnight after `day` in the service's time zone."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


# --------------------------------------------------------------------------- the public day page

DAY_PAGE_SIZE = 30


@dataclass(frozen=True)
class DayPage:
    """One Hugging Face list as the service scraped it, for the public /day/ page."""

    day: date
    scraped: bool  # a good scrape of the day exists (a weekend may hold no papers)
    pinned: list[tuple[Card, str]]  # curators' picks with their notes, shown first
    cards: list[Card]  # this page's papers, most upvoted first, the pinned ones left out
    page: int
    pages: int
    total: int


def day_page(*, day: date, page: int) -> DayPage | None:
    """The list of ``day``, ``DAY_PAGE_SIZE`` papers a page; None when the service never
    scraped that day. Pins are those of the digest that carries this list (dated the
    day after). Four queries, no subscriber data."""
    if day >= date.max:
        return None  # no digest can be dated the day after, so no list of it can exist
    visible = Paper.objects.filter(hidden=False, withdrawn_at__isnull=True)
    listed = visible.filter(featured_on=day)
    scraped = ScrapeRun.objects.filter(
        day=day,
        status__in=[ScrapeRun.Status.OK, ScrapeRun.Status.PARTIAL],
        source__in=[ScrapeRun.Source.DAILY, ScrapeRun.Source.FILE],
    ).exists()
    pins = list(
        Pin.objects.filter(day=day + timedelta(days=1), paper__in=visible).select_related("paper").order_by("id")
    )
    pinned_ids = [pin.paper_id for pin in pins]
    total = listed.exclude(pk__in=pinned_ids).count()
    if not scraped and not total and not pins:
        return None
    pages = max(1, -(-total // DAY_PAGE_SIZE))
    if not 1 <= page <= pages:
        return None
    rows = listed.exclude(pk__in=pinned_ids).order_by("-upvotes", "arxiv_id")
    start = (page - 1) * DAY_PAGE_SIZE
    return DayPage(
        day=day,
        scraped=scraped,
        pinned=[(Card.from_paper(pin.paper), pin.note) for pin in pins] if page == 1 else [],
        cards=[Card.from_paper(p) for p in rows[start : start + DAY_PAGE_SIZE]],
        page=page,
        pages=pages,
        total=total + len(pins),
    )
