"""Reads that views, commands and the admin share."""

import re
from collections import Counter
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from digest.models import ConsentRecord, Subscriber
from papers.models import Paper, ScrapeRun


def latest_day_papers(*, limit: int) -> tuple[date | None, list[Paper]]:
    day = Paper.objects.filter(hidden=False).order_by("-featured_on").values_list("featured_on", flat=True).first()
    if day is None:
        return None, []
    papers = list(Paper.objects.filter(featured_on=day, hidden=False).order_by("-upvotes", "arxiv_id")[:limit])
    return day, papers


def health() -> dict[str, object]:
    """Database, broker and the age of the last good scrape, for an uptime monitor."""
    checks: dict[str, object] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        from digest.celery import app

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
    checks["ok"] = checks["database"] == "ok" and checks["broker"] == "ok" and not stale
    return checks


# --- subscriptions ------------------------------------------------------------

PREVIEW_DAYS = 7


def recent_days(*, days: int = PREVIEW_DAYS) -> list[date]:
    """The latest `days` days that have visible papers, newest first.

    Days with papers rather than calendar days: a fresh install holding only the bundled
    sample, or a service whose scrapes paused over a holiday, still previews something.
    """
    return list(
        Paper.objects.filter(hidden=False, withdrawn_at__isnull=True)
        .order_by("-featured_on")
        .values_list("featured_on", flat=True)
        .distinct()[:days]
    )


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    # Word boundaries that also work around phrases starting or ending in punctuation ("c++").
    return re.compile(rf"(?<!\w){re.escape(phrase)}(?!\w)", re.IGNORECASE)


def preview_papers(
    *,
    topics: list[str],
    excludes: list[str],
    authors: list[str],
    organizations: list[str],
    limit: int,
) -> list[tuple[Paper, str]]:
    """Recent papers a digest with these filters would contain, each with the reason why.

    A simple case-insensitive phrase match over title, keywords, summary and abstract of
    the recent days' papers; the digest's ranking module replaces this body, so callers
    rely only on the signature.
    """
    if not (topics or authors or organizations) or limit <= 0:
        return []
    days = recent_days()
    if not days:
        return []
    topic_patterns = [(t, _phrase_pattern(t)) for t in topics]
    exclude_patterns = [_phrase_pattern(x) for x in excludes]
    wanted_authors = {a.casefold() for a in authors}
    org_patterns = [(o, _phrase_pattern(o)) for o in organizations]
    scored: list[tuple[int, int, str, Paper, str]] = []
    papers = Paper.objects.filter(featured_on__in=days, hidden=False, withdrawn_at__isnull=True).only(
        "arxiv_id", "title", "abstract", "authors", "organization", "featured_on", "upvotes",
        "ai_summary", "ai_keywords",
    )  # fmt: skip
    for paper in papers:
        text = "\n".join([paper.title, " ; ".join(paper.ai_keywords), paper.ai_summary, paper.abstract])
        if any(p.search(text) for p in exclude_patterns):
            continue
        reasons = []
        topics_hit = [t for t, p in topic_patterns if p.search(text)]
        if topics_hit:
            reasons.append("matches: " + ", ".join(topics_hit))
        authors_hit = [a for a in paper.authors if a.casefold() in wanted_authors]
        if authors_hit:
            reasons.append("by " + ", ".join(authors_hit))
        orgs_hit = [o for o, p in org_patterns if p.search(paper.organization)]
        if orgs_hit:
            reasons.append("from " + ", ".join(orgs_hit))
        if reasons:
            hits = len(topics_hit) + len(authors_hit) + len(orgs_hit)
            scored.append((hits, paper.upvotes, paper.arxiv_id, paper, "; ".join(reasons)))
    scored.sort(key=lambda row: (-row[0], -row[1], row[2]))
    return [(paper, reason) for *_, paper, reason in scored[:limit]]


def topic_suggestions(*, limit: int = 16) -> list[str]:
    """The most frequent keywords of the recent days' papers, for the signup page."""
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
        },
        "learned_weights": subscriber.weights,
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
                "confirmed_at": iso(c.confirmed_at),
            }
            for c in subscriber.consents.order_by("created_at")
        ],
        "deliveries": [
            {"date": iso(d.digest_date), "status": d.status, "sent_at": iso(d.sent_at), "papers": d.papers}
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
