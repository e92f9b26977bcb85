"""Digests as they were recorded: each day's outcome for the manage page, the web view and the Atom feed.

Everything here reads what the planner and the batch wrote on the delivery rows (the
outcome line, the papers and their reasons), never a fresh ranking: the subscriber
sees what happened, and the feed carries exactly what the emails carried.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.templatetags.static import static
from django.urls import reverse
from django.utils import feedgenerator, timezone

from digest import tokens
from digest.models import Delivery, Subscriber
from digest.ranking import RankedItem
from digest.rendering import Card, DayRenderer, reason_line, web_copy_reader
from digest.sending.editions import is_weekly_day, papers_days
from digest.sending.reasons import PAUSED_LINE, UNSUBSCRIBED_LINE, zone
from papers.models import Paper

HISTORY_DAYS = 30
FEED_ENTRIES = 50
Outcome = Delivery.Outcome
# Outcomes whose papers a reader can open again (an email or the feed carried them).
READABLE = (Outcome.SENT, Outcome.SENT_LATE, Outcome.NOTE, Outcome.FEED)
# Rows whose papers are in the feed: sent ones, and those a digest was made for but that
# never arrived (on days without an email, the feed still has what it would have held).
FEED_STATUSES = (Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.BOUNCED, Delivery.Status.STUCK)
# Rows planned before outcomes were recorded still get a line, from their status.
STATUS_LINES = {
    Delivery.Status.WAITING: "Held back: Hugging Face's list is late",
    Delivery.Status.PENDING: "On its way",
    Delivery.Status.SENDING: "Being sent right now",
    Delivery.Status.SENT: "Sent",
    Delivery.Status.FAILED: "Not sent: the service had a problem; curators were alerted",
    Delivery.Status.BOUNCED: "Your mail server refused it — check your address",
    Delivery.Status.STUCK: "Not sent: the service had a problem; curators were alerted",
    Delivery.Status.SKIPPED: "Not sent: nothing new matched your topics",
}


def local_today(subscriber: Subscriber) -> date:
    return timezone.now().astimezone(zone(subscriber.time_zone)).date()


def in_archive(sent_at: datetime | None) -> bool:
    """A sent digest stays readable for DIGEST_ARCHIVE_DAYS after it went out."""
    return sent_at is not None and sent_at > timezone.now() - timedelta(days=settings.DIGEST_ARCHIVE_DAYS)


# --------------------------------------------------------------------------- the manage page


@dataclass(frozen=True)
class DayLine:
    day: date
    outcome: str  # a Delivery.Outcome, or "" for a day without a row
    line: str
    read_url: str = ""  # the web view, while the archive keeps it
    list_url: str = ""  # the public page of the Hugging Face list it drew from

    @property
    def tone(self) -> str:
        """How the page colours the line: sent, quiet (nothing to send) or problem."""
        if self.outcome in READABLE:
            return "sent"
        if self.outcome in (Outcome.BOUNCED, Outcome.FAILED, Outcome.STUCK, Outcome.NEVER_ARRIVED):
            return "problem"
        return "quiet"


@dataclass(frozen=True)
class History:
    days: list[DayLine]  # the last HISTORY_DAYS digest dates since signup, newest first
    older: list[DayLine]  # digests sent before those, still in the archive, newest first


def history(subscriber: Subscriber, *, today: date | None = None) -> History:
    """Every digest date of the last 30 days explained, and the older sent digests the
    archive still keeps: one query, whatever the subscriber's history."""
    today = today or local_today(subscriber)
    oldest = today - timedelta(days=settings.DIGEST_ARCHIVE_DAYS - 1)
    rows = {
        row["digest_date"]: row
        for row in Delivery.objects.filter(subscriber=subscriber, digest_date__gte=oldest, digest_date__lte=today)
        .values("digest_date", "status", "outcome", "outcome_line", "sent_at")
        .order_by("-digest_date")
    }
    start = _signup_day(subscriber)
    weekly = subscriber.frequency == Subscriber.Frequency.WEEKLY
    days = []
    for back in range(HISTORY_DAYS):
        day = today - timedelta(days=back)
        if day < start and day not in rows:
            break
        row = rows.get(day)
        line = _line(subscriber, day, row, today=today, weekly=weekly)
        if line is not None:
            days.append(line)
    cutoff = today - timedelta(days=HISTORY_DAYS)
    older = [
        _line(subscriber, day, row, today=today, weekly=weekly)
        for day, row in rows.items()
        if day <= cutoff and row["status"] == Delivery.Status.SENT
    ]
    return History(days=days, older=[line for line in older if line is not None])


def _line(
    subscriber: Subscriber, day: date, row: dict[str, Any] | None, *, today: date, weekly: bool
) -> DayLine | None:
    list_day = papers_days(day, weekly=weekly)[-1]
    list_url = reverse("day", args=[list_day.isoformat()])
    if row is not None:
        outcome = row["outcome"]
        line = row["outcome_line"] or STATUS_LINES.get(row["status"], row["status"])
        readable = row["status"] == Delivery.Status.SENT and in_archive(row["sent_at"])
        read_url = tokens.webview_url(subscriber, day=day) if readable else ""
        return DayLine(day=day, outcome=outcome, line=line, read_url=read_url, list_url=list_url)
    if _paused_on(subscriber, day):
        return DayLine(day=day, outcome=Outcome.PAUSED, line=PAUSED_LINE, list_url=list_url)
    if weekly and not is_weekly_day(day):
        return None  # not a digest date for a weekly subscriber
    if subscriber.unsubscribed_at and subscriber.unsubscribed_at.astimezone(zone(subscriber.time_zone)).date() <= day:
        return DayLine(day=day, outcome=Outcome.UNSUBSCRIBED, line=UNSUBSCRIBED_LINE, list_url=list_url)
    if subscriber.status == Subscriber.Status.PENDING:
        return None
    if day == today:
        return DayLine(day=day, outcome="", line=f"Due today at {subscriber.send_hour:02d}:00", list_url=list_url)
    if day <= _signup_day(subscriber):
        return DayLine(day=day, outcome="", line="You signed up; digests start with your next send hour")
    return DayLine(day=day, outcome="", line="No digest was planned for this day", list_url=list_url)


def _signup_day(subscriber: Subscriber) -> date:
    return (subscriber.confirmed_at or subscriber.created_at).astimezone(zone(subscriber.time_zone)).date()


def _paused_on(subscriber: Subscriber, day: date) -> bool:
    for start, end in subscriber.pauses or []:
        if date.fromisoformat(start) <= day and (end is None or day <= date.fromisoformat(end)):
            return True
    return False


# --------------------------------------------------------------------------- the web view


class NotInArchive(Exception):
    """No digest of that day for this subscriber, or it is older than the archive keeps."""


def sent_digest_html(*, subscriber: Subscriber, day: date) -> str:
    """The HTML of the digest sent to ``subscriber`` for ``day``, from the papers recorded
    with its delivery (so the web view shows what was sent, not today's ranking)."""
    delivery = Delivery.objects.filter(subscriber=subscriber, digest_date=day, status=Delivery.Status.SENT).first()
    if delivery is None or not delivery.papers:
        raise NotInArchive(f"there is no digest of {day} for you")
    if not in_archive(delivery.sent_at):
        raise NotInArchive(f"digests stay readable for {settings.DIGEST_ARCHIVE_DAYS} days; the one of {day} is gone")
    entries = [e for e in delivery.papers if isinstance(e, dict) and e.get("arxiv_id")]
    papers = {p.arxiv_id: p for p in Paper.objects.filter(arxiv_id__in=[e["arxiv_id"] for e in entries])}
    picks = [
        RankedItem(paper_id=papers[e["arxiv_id"]].pk, score=0.0, reason=str(e.get("reason", "")))
        for e in entries
        if e["arxiv_id"] in papers
    ]
    if not picks:
        raise NotInArchive(f"the papers of your digest of {day} are no longer kept")
    weekly = subscriber.frequency == Subscriber.Frequency.WEEKLY
    shown = [papers[e["arxiv_id"]] for e in entries if e["arxiv_id"] in papers]
    renderer = DayRenderer(day=day, papers=shown, weekly=weekly)
    note = delivery.outcome == Outcome.NOTE
    reader = web_copy_reader(topics=() if note else subscriber.topics or (), frequency=subscriber.frequency)
    return renderer.web_copy(reader, picks)


# --------------------------------------------------------------------------- the Atom feed


@dataclass(frozen=True)
class FeedVersion:
    """What a reader's conditional GET compares: cheap to compute, changes with any new entry."""

    etag: str
    last_modified: datetime | None


def feed_rows(subscriber: Subscriber) -> list[dict[str, Any]]:
    """The newest deliveries that carried papers: at most FEED_ENTRIES, each holding at least one. One query."""
    return list(
        Delivery.objects.filter(subscriber=subscriber, status__in=FEED_STATUSES)
        .exclude(papers=[])
        .order_by("-digest_date")
        .values("id", "digest_date", "status", "sent_at", "created_at", "papers")[:FEED_ENTRIES]
    )


def feed_version(subscriber: Subscriber, rows: list[dict[str, Any]]) -> FeedVersion:
    stamps = [(r["id"], r["status"], _updated(r).isoformat(), r["papers"]) for r in rows]
    digest = hashlib.sha256(json.dumps([subscriber.feed_key, stamps], default=str).encode()).hexdigest()[:32]
    return FeedVersion(etag=f'"{digest}"', last_modified=max((_updated(r) for r in rows), default=None))


def _updated(row: dict[str, Any]) -> datetime:
    return row["sent_at"] or row["created_at"]


@dataclass(frozen=True)
class FeedEntry:
    paper: Paper
    card: Card
    reason: str
    digest_date: date
    updated: datetime
    emailed: bool


def feed_entries(rows: list[dict[str, Any]]) -> list[FeedEntry]:
    """One entry per paper, newest first, at most FEED_ENTRIES: one query for the papers."""
    wanted: list[tuple[str, str, dict[str, Any]]] = []
    seen: set[str] = set()
    for row in rows:
        for item in row["papers"]:
            arxiv_id = item.get("arxiv_id") if isinstance(item, dict) else None
            if arxiv_id and arxiv_id not in seen:
                seen.add(arxiv_id)
                wanted.append((arxiv_id, str(item.get("reason", "")), row))
    papers = {
        p.arxiv_id: p
        for p in Paper.objects.filter(arxiv_id__in=list(seen), hidden=False, withdrawn_at__isnull=True).only(
            "id", "arxiv_id", "title", "abstract", "ai_summary", "authors", "organization", "upvotes",
            "num_comments", "github_repo", "github_stars", "project_page", "thumbnail",
        )
    }  # fmt: skip
    entries = [
        FeedEntry(
            paper=papers[arxiv_id],
            card=Card.from_paper(papers[arxiv_id]),
            reason=reason_line(reason),
            digest_date=row["digest_date"],
            updated=_updated(row),
            emailed=row["status"] == Delivery.Status.SENT,
        )
        for arxiv_id, reason, row in wanted
        if arxiv_id in papers
    ]
    return entries[:FEED_ENTRIES]


XHTML = "http://www.w3.org/1999/xhtml"
# XML 1.0 section 2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
# Anything else (C0 controls, lone surrogates, U+FFFE, U+FFFF) makes the whole document
# unreadable to a feed reader, so it is dropped wherever it came from.
XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_chars(value: str) -> str:
    return XML_FORBIDDEN.sub("", value)


class _XmlCharsOnly(feedgenerator.SimplerXMLGenerator):
    """Writes only characters XML 1.0 allows, in text and in attribute values."""

    def characters(self, content: str) -> None:
        super().characters(xml_chars(content) if content else content)

    def startElement(self, name: str, attrs: dict[str, str]) -> None:
        super().startElement(name, {key: xml_chars(value) for key, value in attrs.items()})


class _AtomFeed(feedgenerator.Atom1Feed):
    """Django's Atom 1.0 writer, plus a stylesheet for people who open the feed in a
    browser, the arXiv abstract and PDF links of each entry, and an XHTML summary (which
    that stylesheet can show, where escaped HTML would show its tags)."""

    def __init__(self, *args: Any, stylesheet: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stylesheet = stylesheet

    def write(self, outfile: Any, encoding: str) -> None:
        handler = _XmlCharsOnly(outfile, encoding, short_empty_elements=True)
        handler.startDocument()
        handler.processingInstruction("xml-stylesheet", f'type="text/css" href="{self.stylesheet}"')
        handler.startElement("feed", self.root_attributes())
        self.add_root_elements(handler)
        self.write_items(handler)
        handler.endElement("feed")

    def add_item_elements(self, handler: Any, item: dict[str, Any]) -> None:
        super().add_item_elements(handler, item)
        for rel, href, mime, title in item["more_links"]:
            handler.addQuickElement("link", "", {"rel": rel, "href": href, "type": mime, "title": title})
        handler.startElement("summary", {"type": "xhtml"})
        handler.startElement("div", {"xmlns": XHTML})
        for css_class, text in item["summary_parts"]:
            handler.addQuickElement("p", text, {"class": css_class})
        handler.startElement("p", {"class": "links"})
        for label, href in [("Hugging Face", item["link"]), *((t, h) for _, h, _, t in item["more_links"])]:
            handler.addQuickElement("a", label, {"href": href})
            handler.characters(" ")
        handler.endElement("p")
        handler.endElement("div")
        handler.endElement("summary")


def atom_feed(subscriber: Subscriber, entries: list[FeedEntry], *, feed_url: str) -> bytes:
    """The subscriber's Atom 1.0 document: entry ids stable per (subscriber, paper)."""
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    site = settings.SITE_NAME.lower().replace(" ", "-")
    feed = _AtomFeed(
        title=f"{settings.SITE_NAME}: your papers",
        link=settings.SITE_URL + "/",
        description="The papers of your digests, with why each one is there.",
        subtitle="The papers of your digests, with why each one is there.",
        feed_url=feed_url,
        feed_guid=f"tag:{host},2026:{site}:feed:{subscriber.pk}",
        author_name=settings.SITE_NAME,
        language="en",
        stylesheet=static("digest/feed.css"),
    )
    for entry in entries:
        card = entry.card
        day = f"{entry.digest_date:%A} {entry.digest_date.day} {entry.digest_date:%B %Y}"
        delivered = f"in your email of {day}" if entry.emailed else f"for {day}, not emailed"
        feed.add_item(
            title=card.title,
            link=card.hf_url,
            description=None,
            unique_id=f"tag:{host},2026:{site}:{subscriber.pk}:{card.arxiv_id}",
            unique_id_is_permalink=False,
            updateddate=entry.updated,
            pubdate=entry.updated,
            author_name=entry.paper.organization or None,
            more_links=[
                ("related", card.arxiv_url, "text/html", "arXiv abstract"),
                ("enclosure", card.pdf_url, "application/pdf", "PDF"),
            ],
            summary_parts=[
                ("reason", entry.reason),
                ("byline", card.byline),
                ("text", card.summary),
                ("stats", f"{card.stats} · {delivered}"),
            ],
        )
    return feed.writeString("utf-8").encode()
