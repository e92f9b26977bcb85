"""Plan, rank, render and send the daily digests, each exactly once.

The pipeline, driven by beat's hourly planner (tasks.plan_digests) or by senddigests:

1. :func:`plan_due` creates one :class:`Delivery` row per (subscriber, digest date) for
   every active subscriber whose local send hour has come and whose frequency is due.
   A unique constraint makes planning idempotent: a second beat, a repeated run or a
   retried task inserts nothing new. Rows whose papers are not ready (the day's scrape
   failed or is missing) are created "waiting" and curators are alerted; they turn
   "pending" once a good scrape lands.
2. :func:`fan_out` sends the ids of pending rows to the workers in batches.
3. :func:`send_batch` claims its rows with one conditional UPDATE (pending -> sending;
   a row already claimed by anyone else is not touched, so duplicated tasks and
   concurrent workers never both get it), ranks the batch's subscribers in bulk, renders
   each email from the day's pre-inlined parts, sends them over one SMTP connection and
   records every outcome in a fixed number of queries.

A worker killed between claiming and recording leaves rows "sending": the planner marks
them "stuck" after DIGEST_STUCK_AFTER seconds and alerts curators. They are never resent
blindly, because the message may well have left (exactly once beats at least once for
email; a curator can retry them from the console).

The digest dated D holds the papers of the Hugging Face list of D - 1 (complete by the
morning of D); a weekly digest holds those of D - 7 .. D - 1.
"""

from __future__ import annotations

import binascii
import itertools
import json
import logging
import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, F, Max, Q, QuerySet
from django.utils import timezone

from digest import tokens
from digest.models import Delivery, SentPaper, Subscriber, Suppression, email_hash
from digest.ranking import TRENDING_REASON, PaperDoc, PaperIndex, Profile, RankedItem
from digest.rendering import DayRenderer, Reader, RenderedDigest
from papers.models import Paper, PaperSnapshot, Pin, ScrapeRun
from papers.services import alert_curators

logger = logging.getLogger(__name__)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Recent papers that sharpen the rarity (IDF) of a topic phrase.
BACKGROUND_DAYS = 30
# After too many errors in a row, sending stops for DIGEST_PAUSE_SECONDS (other batches
# leave their rows pending) and curators are alerted; the planner fans them out again.
PAUSE_KEY = "digest:sending-paused"
# Each message that left is noted in the shared cache before its row is written, so the
# sweeper can tell a dead worker's sent messages from its unsent ones.
# A "try" mark goes in just before the SMTP conversation: a dead worker's row with neither
# mark was never tried and may go out again; one with only the try mark is truly unknown.
JOURNAL_KEY = "digest:sent:{}"
TRY_KEY = "digest:try:{}"
JOURNAL_SECONDS = 3 * 86_400
# Planning reads active subscribers this many at a time (memory stays flat).
PLAN_CHUNK = 2000


class NothingToSend(Exception):
    """No digest for this subscriber and date: papers not ready, or nothing new for them."""


# --------------------------------------------------------------------------- editions


def papers_days(digest_date: date, *, weekly: bool) -> list[date]:
    """The feed days a digest dated ``digest_date`` draws from, oldest first."""
    span = 7 if weekly else 1
    return [digest_date - timedelta(days=n) for n in range(span, 0, -1)]


def day_ready(day: date) -> bool:
    """A list is ready once a scrape of it (or a saved file of it) finished ok."""
    return ScrapeRun.objects.filter(
        day=day, status=ScrapeRun.Status.OK, source__in=[ScrapeRun.Source.DAILY, ScrapeRun.Source.FILE]
    ).exists()


def digest_ready(digest_date: date, *, weekly: bool = False) -> bool:
    # A weekly digest needs the last day of its week; earlier days hold what they hold.
    return day_ready(papers_days(digest_date, weekly=weekly)[-1])


def is_weekly_day(day: date) -> bool:
    return WEEKDAYS[day.weekday()] == settings.DIGEST_WEEKLY_DAY


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
    the pre-inlined renderer. Built once per worker process and date, reused per batch."""

    digest_date: date
    weekly: bool
    papers: dict[int, Paper]
    index: PaperIndex
    renderer: DayRenderer
    stamp: tuple

    @property
    def paper_ids(self) -> list[int]:
        return list(self.papers)


def _edition_stamp(digest_date: date, *, weekly: bool) -> tuple:
    """Changes whenever a curator pins, hides or unhides, or a scrape updates the papers."""
    days = papers_days(digest_date, weekly=weekly)
    papers = Paper.objects.filter(featured_on__in=days).aggregate(n=Count("id"), at=Max("updated_at"))
    pins = Pin.objects.filter(day__in=_pin_days(digest_date, weekly=weekly)).aggregate(
        n=Count("id"), at=Max("created_at"), ids=Max("id")
    )
    return (papers["n"], papers["at"], pins["n"], pins["at"], pins["ids"])


def _pin_days(digest_date: date, *, weekly: bool) -> list[date]:
    span = 7 if weekly else 1
    return [digest_date - timedelta(days=n) for n in range(span)]


def build_edition(digest_date: date, *, weekly: bool = False, stamp: tuple | None = None) -> Edition:
    days = papers_days(digest_date, weekly=weekly)
    pins = {
        pin.paper_id: pin
        for pin in Pin.objects.filter(day__in=_pin_days(digest_date, weekly=weekly)).order_by("day", "id")
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
    renderer = DayRenderer(day=digest_date, papers=list(candidates.values()), weekly=weekly)
    return Edition(
        digest_date=digest_date,
        weekly=weekly,
        papers=candidates,
        index=index,
        renderer=renderer,
        stamp=stamp if stamp is not None else _edition_stamp(digest_date, weekly=weekly),
    )


_editions: dict[tuple[date, bool], Edition] = {}


def edition(digest_date: date, *, weekly: bool = False) -> Edition:
    """The cached edition, rebuilt when its papers or pins changed (two cheap queries)."""
    stamp = _edition_stamp(digest_date, weekly=weekly)
    key = (digest_date, weekly)
    cached = _editions.get(key)
    if cached is None or cached.stamp != stamp:
        if len(_editions) > 8:
            _editions.clear()
        cached = _editions[key] = build_edition(digest_date, weekly=weekly, stamp=stamp)
    return cached


def clear_editions() -> None:
    _editions.clear()


# --------------------------------------------------------------------------- composing


def profile_for(subscriber: Subscriber, *, already_sent: Iterable[int] = ()) -> Profile:
    return Profile(
        subscriber_id=subscriber.pk,
        topics=tuple(subscriber.topics or ()),
        excludes=tuple(subscriber.excludes or ()),
        authors=tuple(subscriber.authors or ()),
        organizations=tuple(subscriber.organizations or ()),
        weights=dict(subscriber.weights or {}),
        max_papers=subscriber.max_papers,
        already_sent=frozenset(already_sent),
    )


def reader_for(subscriber: Subscriber, digest_date: date) -> Reader:
    return Reader(
        email=subscriber.email,
        topics=tuple(subscriber.topics or ()),
        frequency=subscriber.frequency,
        webview_url=tokens.webview_url(subscriber, day=digest_date),
        manage_url=tokens.manage_url(subscriber),
        unsubscribe_url=tokens.unsubscribe_url(subscriber),
        feedback_links=tokens.FeedbackLinks(subscriber),
    )


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


def rank(ed: Edition, subscribers: Sequence[Subscriber]) -> dict[int, list[RankedItem]]:
    already = ledger([s.pk for s in subscribers], ed.paper_ids)
    return ed.index.rank([profile_for(s, already_sent=already.get(s.pk, ())) for s in subscribers])


@dataclass(frozen=True)
class Preview:
    subject: str
    text: str
    html: str
    paper_ids: tuple[int, ...]
    reasons: tuple[str, ...] = ()


def compose(ed: Edition, subscriber: Subscriber, picks: Sequence[RankedItem]) -> RenderedDigest:
    return ed.renderer.render(reader_for(subscriber, ed.digest_date), picks)


def preview_digest(*, subscriber: Subscriber, day: date) -> Preview:
    """The digest ``subscriber`` would get for ``day``, exactly as it would be sent now."""
    weekly = subscriber.frequency == Subscriber.Frequency.WEEKLY
    if not digest_ready(day, weekly=weekly):
        last = papers_days(day, weekly=weekly)[-1]
        raise NothingToSend(f"the papers of {last} are not ready: no good scrape of that day yet")
    ed = edition(day, weekly=weekly)
    picks = rank(ed, [subscriber]).get(subscriber.pk, [])
    if not picks:
        raise NothingToSend(f"nothing new for {subscriber.email} on {day}")
    digest = compose(ed, subscriber, picks)
    reasons = {p.paper_id: p.reason for p in picks}
    return Preview(
        subject=digest.subject,
        text=digest.text,
        html=digest.html,
        paper_ids=digest.paper_ids,
        reasons=tuple(reasons[pid] for pid in digest.paper_ids),
    )


# --------------------------------------------------------------------------- messages


def _domain() -> str:
    return parseaddr(settings.DIGEST_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"


def _encode_header(value: str) -> str:
    if value.isascii():
        return value
    # Header folds long values; its default line end is a bare LF, which SMTP forbids.
    return Header(value, "utf-8").encode(linesep="\r\n")


def _from_header(address: str) -> str:
    name, addr = parseaddr(address)
    if name and not name.isascii():
        encoded = Header(name, "utf-8").encode(linesep="\r\n")
        return f"{encoded} <{addr}>"
    return address


def _qp(text: str) -> bytes:
    # Quoted-printable keeps lines under 76 characters (SMTP's limit is 998) and the text
    # readable in the raw message; binascii does it in C.
    return binascii.b2a_qp(text.replace("\r\n", "\n").encode(), istext=True).replace(b"\n", b"\r\n")


class MessageBuilder:
    """Build a digest's bytes directly: multipart/alternative, text then HTML, QP-encoded.

    About ten times faster than the email package, and the tests parse what it makes.
    """

    def __init__(self) -> None:
        self.from_header = _from_header(settings.DIGEST_FROM_EMAIL)
        self.envelope_from = parseaddr(settings.DIGEST_FROM_EMAIL)[1]
        self.domain = _domain()
        site = settings.SITE_NAME.replace('"', "")
        self.list_id = f'"{site}" <daily.{self.domain}>'

    def build(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        html: str,
        unsubscribe_url: str,
        message_id: str | None = None,
        feedback_id: str = "digest",
    ) -> tuple[str, bytes]:
        message_id = message_id or f"<{uuid.uuid4().hex}@{self.domain}>"
        boundary = f"=_pd{uuid.uuid4().hex}"
        unsubscribe = f"<{unsubscribe_url}>"
        if settings.UNSUBSCRIBE_MAILTO:
            # As services.list_unsubscribe_headers: the token in the subject names the subscriber.
            token = unsubscribe_url.rstrip("/").rsplit("/", 1)[-1]
            unsubscribe += f", <mailto:{settings.UNSUBSCRIBE_MAILTO}?subject=unsubscribe-{token}>"
        headers = (
            f"From: {self.from_header}\r\n"
            f"To: {to}\r\n"
            f"Subject: {_encode_header(subject)}\r\n"
            f"Date: {format_datetime(datetime.now(UTC))}\r\n"
            f"Message-ID: {message_id}\r\n"
            f"List-Id: {self.list_id}\r\n"
            f"List-Unsubscribe: {unsubscribe}\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            f"Feedback-ID: {feedback_id}:{self.domain}\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
            "\r\n"
        )
        part = "Content-Type: text/{kind}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        data = b"".join(
            (
                headers.encode(),
                f"--{boundary}\r\n{part.format(kind='plain')}".encode(),
                _qp(text),
                f"\r\n--{boundary}\r\n{part.format(kind='html')}".encode(),
                _qp(html),
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        return message_id, data


# --------------------------------------------------------------------------- transports


class TemporaryError(Exception):
    """Try again later: SMTP 4xx, a dropped connection, a relay that does not answer."""


class RelayDown(TemporaryError):
    """The relay cannot be reached at all: no point trying the rest of the batch."""


class UnknownOutcome(Exception):
    """The relay went away after the whole message and before its answer: it may have
    taken it. Never retried (that could send it twice); the row is marked stuck."""


class PermanentError(Exception):
    """SMTP 5xx for this recipient or message: a hard bounce."""


class SmtpTransport:
    """One reused SMTP connection to EMAIL_HOST, reopened when the relay drops it."""

    def __init__(self) -> None:
        self.connection: smtplib.SMTP | None = None

    def open(self) -> None:
        if self.connection is not None:
            return
        try:
            connection = smtplib.SMTP(settings.EMAIL_HOST, settings.EMAIL_PORT, timeout=settings.EMAIL_TIMEOUT)
            if settings.EMAIL_USE_TLS:
                connection.starttls(context=ssl.create_default_context())
            if settings.EMAIL_HOST_USER:
                connection.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
        except (OSError, smtplib.SMTPException) as exc:
            raise RelayDown(f"cannot connect to {settings.EMAIL_HOST}:{settings.EMAIL_PORT}: {exc}") from exc
        self.connection = connection

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                self.connection.close()
            self.connection = None

    def send(self, sender: str, to: str, data: bytes) -> None:
        self.open()
        assert self.connection is not None
        try:
            refused = self._sendmail(sender, to, data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients.get(to, (450, b"refused"))
            self._raise(code, reply)
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            self._raise(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPResponseException as exc:
            self._drop()
            self._raise(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise TemporaryError(f"connection lost: {exc}") from exc
        if refused:
            code, reply = refused[to]
            self._raise(code, reply)

    def _sendmail(self, sender: str, to: str, data: bytes) -> dict:
        """smtplib's sendmail without its regex passes over the body: MessageBuilder's
        bytes already end lines in CRLF, so only dot-stuffing is left (a C replace)."""
        smtp = self.connection
        assert smtp is not None
        smtp.ehlo_or_helo_if_needed()
        code, reply = smtp.mail(sender)
        if code != 250:
            smtp.rset()
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = smtp.rcpt(to)
        if code not in (250, 251):
            smtp.rset()
            raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
        code, reply = smtp.docmd("data")
        if code != 354:
            smtp.rset()
            raise smtplib.SMTPDataError(code, reply)
        body = data.replace(b"\r\n.", b"\r\n..")
        if body.startswith(b"."):
            body = b"." + body
        smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise UnknownOutcome(f"the relay hung up after the whole message, before answering: {exc}") from exc
        if code != 250:
            smtp.rset()
            raise smtplib.SMTPDataError(code, reply)
        return {}

    def _drop(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _raise(self, code: int, reply: bytes | str) -> None:
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        message = f"{code} {text}".strip()
        if 500 <= code < 600:
            # After a 5xx the relay may have reset the transaction; RSET keeps the session usable.
            try:
                if self.connection is not None:
                    self.connection.rset()
            except (OSError, smtplib.SMTPException):
                self._drop()
            raise PermanentError(message)
        raise TemporaryError(message)


class OutboxTransport:
    """No EMAIL_HOST: each digest becomes an .eml file in OUTBOX_DIR, like every other email."""

    def __init__(self, outbox: Path | None = None) -> None:
        self.outbox = Path(outbox or settings.OUTBOX_DIR)

    def open(self) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        pass

    def send(self, sender: str, to: str, data: bytes) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        final = self.outbox / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        partial = final.with_suffix(".part")
        partial.write_bytes(data.replace(b"\r\n", b"\n"))
        partial.rename(final)


def transport() -> SmtpTransport | OutboxTransport:
    return SmtpTransport() if settings.EMAIL_HOST else OutboxTransport()


class Mailer:
    """Sends messages one by one over one transport: rate limit and 4xx retries with backoff."""

    def __init__(
        self,
        via: SmtpTransport | OutboxTransport | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.via = via or transport()
        self.sleep = sleep
        self.rate = settings.DIGEST_SEND_RATE
        self._next_at = 0.0

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.via.close()

    def _pace(self) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        if self._next_at > now:
            self.sleep(self._next_at - now)
        self._next_at = max(now, self._next_at) + 1.0 / self.rate

    def send(self, sender: str, to: str, data: bytes, *, before: Callable[[], None] | None = None) -> None:
        """Deliver or raise PermanentError / TemporaryError (the last one, after the retries).

        ``before`` runs just before each SMTP conversation, after any pacing wait.
        """
        tries = settings.DIGEST_SMTP_RETRIES
        for attempt in range(tries):
            self._pace()
            if before:
                before()
            try:
                self.via.send(sender, to, data)
                return
            except TemporaryError:
                if attempt + 1 >= tries:
                    raise
                self.sleep(settings.DIGEST_RETRY_BACKOFF * (2**attempt))


# --------------------------------------------------------------------------- planning


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


def _create_deliveries(subscriber_ids: Iterable[int], digest_date: date, *, ready: bool) -> int:
    status = Delivery.Status.PENDING if ready else Delivery.Status.WAITING
    created = 0
    iterator = iter(subscriber_ids)
    while chunk := list(itertools.islice(iterator, PLAN_CHUNK)):
        before = Delivery.objects.filter(digest_date=digest_date, subscriber_id__in=chunk).count()
        Delivery.objects.bulk_create(
            [Delivery(subscriber_id=sid, digest_date=digest_date, status=status) for sid in chunk],
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
        ready = digest_ready(digest_date, weekly=frequency == Subscriber.Frequency.WEEKLY)
        created = _create_deliveries(ids, digest_date, ready=ready)
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


# A digest held back longer than this is no longer news: it is skipped, not sent late.
WAITING_DAYS = 2


def expire_waiting(*, today: date | None = None) -> int:
    today = today or timezone.localdate()
    return Delivery.objects.filter(
        status=Delivery.Status.WAITING, digest_date__lt=today - timedelta(days=WAITING_DAYS)
    ).update(status=Delivery.Status.SKIPPED, error=f"its papers never arrived within {WAITING_DAYS} days")


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


def mark_stuck(*, now: datetime | None = None) -> int:
    """Rows left "sending" by a dead worker.

    Those whose message the journal says left are recorded as sent; those the worker
    never began to send go back to pending; the rest may or may not have left (the
    worker died mid-conversation), so they are marked stuck and reported, never resent
    blindly.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.DIGEST_STUCK_AFTER)
    candidates = list(Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_at__lt=cutoff))
    if not candidates:
        return 0
    journal = cache.get_many([JOURNAL_KEY.format(d.pk) for d in candidates])
    recovered, ledger_rows = [], []
    for delivery in candidates:
        outcome = journal.get(JOURNAL_KEY.format(delivery.pk))
        if outcome:
            _apply_sent(delivery, outcome)
            recovered.append(delivery)
            ledger_rows.extend(_ledger_rows(delivery, outcome["paper_ids"]))
    with transaction.atomic():
        for delivery in recovered:
            Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
                status=delivery.status,
                error="",
                sent_at=delivery.sent_at,
                message_id=delivery.message_id,
                papers=delivery.papers,
            )
        SentPaper.objects.bulk_create(ledger_rows, ignore_conflicts=True)
    unknown = [d.pk for d in candidates if d not in recovered]
    tried = cache.get_many([TRY_KEY.format(pk) for pk in unknown])
    untried = [pk for pk in unknown if TRY_KEY.format(pk) not in tried]
    Delivery.objects.filter(pk__in=untried, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.PENDING, error="its worker died before trying to send it"
    )
    stuck_ids = [pk for pk in unknown if TRY_KEY.format(pk) in tried]
    count = Delivery.objects.filter(pk__in=stuck_ids, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.STUCK,
        error="the worker sending it stopped before recording the outcome; it may or may not have been sent",
    )
    if recovered:
        logger.warning("recorded %s digests a dead worker had sent (from the journal)", len(recovered))
    if count:
        alert_curators(
            subject=f"{count} digests stuck",
            body=(
                f"{count} deliveries were claimed by a worker that never recorded their outcome (killed or"
                " lost its database). They may have been sent, so they are not resent automatically;"
                " check the SMTP relay's log and retry them from the console's Deliveries page if needed."
            ),
        )
    return count


def fan_out(*, dates: Iterable[date] | None = None, batch_size: int | None = None) -> int:
    """Send the ids of pending deliveries to the workers, a batch per task."""
    from digest.tasks import send_digest_batch

    if sending_paused():
        return 0
    size = batch_size or settings.DIGEST_BATCH_SIZE
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING)
    if dates is not None:
        pending = pending.filter(digest_date__in=list(dates))
    ids = pending.order_by("id").values_list("id", flat=True).iterator(chunk_size=size)
    batches = 0
    while chunk := list(itertools.islice(ids, size)):
        send_digest_batch.delay(chunk)
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


# --------------------------------------------------------------------------- sending


def sending_paused() -> bool:
    return bool(cache.get(PAUSE_KEY))


def pause_sending(reason: str) -> None:
    seconds = settings.DIGEST_PAUSE_SECONDS
    if cache.add(PAUSE_KEY, reason, timeout=seconds):
        alert_curators(
            subject="Digest sending paused",
            body=f"Sending stopped for {seconds} seconds: {reason}. Unsent digests stay pending and go out after.",
        )


@dataclass
class BatchReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    skipped: int = 0
    retry: int = 0  # back to pending for a later run
    stuck: int = 0  # the relay's answer was lost: maybe sent, reported, never resent
    stopped: str = ""

    def add(self, other: BatchReport) -> None:
        for name in ("claimed", "sent", "failed", "bounced", "skipped", "retry", "stuck"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.stopped = self.stopped or other.stopped


def claim(ids: Sequence[int], *, by: str) -> list[Delivery]:
    """Atomically take the pending rows among ``ids``: pending -> sending, stamped with ``by``.

    One conditional UPDATE: a row another claimer took first no longer matches
    ``status = pending`` (PostgreSQL re-checks the condition after waiting on its lock),
    so each row is claimed by exactly one batch.
    """
    now = timezone.now()
    Delivery.objects.filter(pk__in=list(ids), status=Delivery.Status.PENDING).update(
        status=Delivery.Status.SENDING, claimed_at=now, claimed_by=by
    )
    return list(
        Delivery.objects.filter(pk__in=list(ids), status=Delivery.Status.SENDING, claimed_by=by)
        .select_related("subscriber")
        .order_by("digest_date", "subscriber__frequency", "pk")
    )


def send_batch(
    ids: Sequence[int],
    *,
    mailer: Mailer | None = None,
    progress: Callable[[int], None] | None = None,
    timings: dict[str, float] | None = None,
) -> BatchReport:
    """Claim, rank, render, send and record one batch; see the module's docstring.

    ``timings``, when given, accumulates seconds per stage (benchdigest reads them).
    """
    report = BatchReport()
    if sending_paused():
        report.stopped = "sending is paused"
        return report
    timer = _Timer(timings)
    by = f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"
    with timer("record"):
        deliveries = claim(ids, by=by)
    report.claimed = len(deliveries)
    if not deliveries:
        return report
    batch = _Batch(deliveries, report, mailer=mailer, progress=progress, timer=timer)
    try:
        batch.run()
    finally:
        batch.close()
        # Rows never tried (an error stopped the loop) were not sent: back to pending.
        for delivery in deliveries:
            if delivery.status == Delivery.Status.SENDING:
                delivery.status, delivery.error = Delivery.Status.PENDING, report.stopped or "batch interrupted"
                report.retry += 1
        with timer("record"):
            _record(deliveries, batch.ledger_rows, batch.bounced_ids)
    if report.stuck:
        alert_curators(
            subject=f"{report.stuck} digests stuck",
            body=(
                f"The SMTP relay hung up after {report.stuck} whole messages without answering: they may have"
                " been delivered, so they are not resent automatically. Check the relay's log for their"
                " Message-IDs and retry them from the console's Deliveries page if they never left."
            ),
        )
    return report


class _Timer:
    """Seconds per stage into a dict, or nothing at all."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.stage = ""
        self.started = 0.0

    def __call__(self, stage: str) -> _Timer:
        self.stage = stage
        return self

    def __enter__(self) -> None:
        if self.timings is not None:
            self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.timings is not None:
            self.timings[self.stage] = self.timings.get(self.stage, 0.0) + time.perf_counter() - self.started


class _Batch:
    """One claimed batch on its way out; outcomes are set on the Delivery objects."""

    def __init__(
        self,
        deliveries: list[Delivery],
        report: BatchReport,
        *,
        mailer: Mailer | None,
        progress: Callable[[int], None] | None,
        timer: _Timer,
    ) -> None:
        self.timer = timer
        self.deliveries = deliveries
        self.report = report
        self.own_mailer = mailer is None
        self.mailer = mailer or Mailer()
        self.progress = progress
        self.builder = MessageBuilder()
        self.ledger_rows: list[SentPaper] = []
        self.bounced_ids: list[int] = []
        self.consecutive = 0
        self.suppressed = set(
            Suppression.objects.filter(email_hash__in=[email_hash(d.subscriber.email) for d in deliveries]).values_list(
                "email_hash", flat=True
            )
        )

    def close(self) -> None:
        if self.own_mailer:
            self.mailer.via.close()

    def run(self) -> None:
        groups = itertools.groupby(
            self.deliveries, key=lambda d: (d.digest_date, d.subscriber.frequency == Subscriber.Frequency.WEEKLY)
        )
        for (digest_date, weekly), group in groups:
            group = list(group)
            with self.timer("rank"):
                ed = edition(digest_date, weekly=weekly)
                ranked = rank(ed, [d.subscriber for d in group])
            for delivery in group:
                if self.report.stopped:
                    return
                self.one(ed, delivery, ranked.get(delivery.subscriber_id, []))
                if self.progress:
                    self.progress(1)

    def one(self, ed: Edition, delivery: Delivery, picks: list[RankedItem]) -> None:
        subscriber, report = delivery.subscriber, self.report
        if email_hash(subscriber.email) in self.suppressed or not subscriber.is_active:
            delivery.status, delivery.error = Delivery.Status.SKIPPED, "address suppressed or inactive"
            report.skipped += 1
            return
        if not picks:
            delivery.status, delivery.error = Delivery.Status.SKIPPED, "nothing new to send"
            report.skipped += 1
            return
        with self.timer("render"):
            digest = compose(ed, subscriber, picks)
            message_id, data = self.builder.build(
                to=subscriber.email,
                subject=digest.subject,
                text=digest.text,
                html=digest.html,
                unsubscribe_url=digest.unsubscribe_url,
                message_id=f"<digest.{delivery.pk}.{ed.digest_date:%Y%m%d}@{self.builder.domain}>",
                feedback_id=f"digest-{ed.digest_date:%Y%m%d}",
            )
        delivery.attempts += 1  # counted only when the relay is really asked
        try:
            with self.timer("send"):
                self.mailer.send(
                    self.builder.envelope_from,
                    subscriber.email,
                    data,
                    before=lambda: _journal(TRY_KEY.format(delivery.pk), 1),
                )
        except UnknownOutcome as exc:
            delivery.status, delivery.error = Delivery.Status.STUCK, str(exc)[:1000]
            report.stuck += 1
            self._error(delivery, stop=False)
        except PermanentError as exc:
            delivery.status, delivery.error = Delivery.Status.BOUNCED, str(exc)[:1000]
            self.bounced_ids.append(subscriber.pk)
            report.bounced += 1
            self._error(delivery, stop=False)
        except TemporaryError as exc:
            final = delivery.attempts >= settings.DIGEST_MAX_ATTEMPTS
            delivery.status = Delivery.Status.FAILED if final else Delivery.Status.PENDING
            delivery.error = str(exc)[:1000]
            report.failed += final
            report.retry += not final
            self._error(delivery, stop=isinstance(exc, RelayDown))
        else:
            reasons = {p.paper_id: p.reason for p in picks}
            outcome = {
                "sent_at": timezone.now().isoformat(),
                "message_id": message_id,
                "papers": [{"arxiv_id": ed.papers[pid].arxiv_id, "reason": reasons[pid]} for pid in digest.paper_ids],
                "paper_ids": list(digest.paper_ids),
            }
            with self.timer("send"):
                _journal(JOURNAL_KEY.format(delivery.pk), outcome)
            _apply_sent(delivery, outcome)
            self.ledger_rows.extend(_ledger_rows(delivery, outcome["paper_ids"]))
            report.sent += 1
            self.consecutive = 0

    def _error(self, delivery: Delivery, *, stop: bool) -> None:
        self.consecutive += 1
        if stop or self.consecutive >= settings.DIGEST_MAX_CONSECUTIVE_ERRORS:
            self.report.stopped = f"{self.consecutive} errors in a row, the last: {delivery.error}"
            pause_sending(self.report.stopped)


def _journal(key: str, value: object) -> None:
    try:
        cache.set(key, value, timeout=JOURNAL_SECONDS)
    except Exception:  # the journal only narrows what a crash leaves stuck; never fail a send over it
        logger.warning("could not write %s to the journal", key, exc_info=True)


def _apply_sent(delivery: Delivery, outcome: dict) -> None:
    delivery.status, delivery.error = Delivery.Status.SENT, ""
    delivery.sent_at = datetime.fromisoformat(outcome["sent_at"])
    delivery.message_id = outcome["message_id"]
    delivery.papers = outcome["papers"]


def _ledger_rows(delivery: Delivery, paper_ids: Sequence[int]) -> Iterator[SentPaper]:
    for paper_id in paper_ids:
        yield SentPaper(
            subscriber_id=delivery.subscriber_id, paper_id=paper_id, delivery=delivery, sent_on=delivery.digest_date
        )


def _record(done: Sequence[Delivery], ledger_rows: list[SentPaper], bounced_ids: list[int]) -> None:
    """Write a batch's outcomes: a fixed number of queries whatever the batch's size.

    A dropped database connection is retried on a fresh one: the messages have left,
    and a row left "sending" would be reported stuck.
    """
    for attempt in range(3):
        try:
            with transaction.atomic():
                if done:
                    _update_outcomes(done)
                if ledger_rows:
                    SentPaper.objects.bulk_create(ledger_rows, ignore_conflicts=True)
                if bounced_ids:
                    _note_bounces(bounced_ids)
            return
        except (OperationalError, InterfaceError):
            if attempt == 2:
                raise
            logger.warning("lost the database while recording a batch; retrying", exc_info=True)
            connection.close()
            time.sleep(1 + attempt)


OUTCOME_FIELDS = ["status", "error", "sent_at", "message_id", "papers", "attempts"]


def _update_outcomes(done: Sequence[Delivery]) -> None:
    """One UPDATE for the whole batch. Django's bulk_update writes a CASE per column with a
    branch per row, which PostgreSQL evaluates in quadratic time; there, the rows go in as
    arrays joined by id instead."""
    if connection.vendor != "postgresql":
        Delivery.objects.bulk_update(done, OUTCOME_FIELDS)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE digest_delivery AS d
               SET status = v.status, error = v.error, sent_at = v.sent_at,
                   message_id = v.message_id, papers = v.papers::jsonb, attempts = v.attempts
              FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[],
                          %s::int[])
                   AS v(id, status, error, sent_at, message_id, papers, attempts)
             WHERE d.id = v.id
            """,
            [
                [d.pk for d in done],
                [d.status for d in done],
                [d.error for d in done],
                [d.sent_at for d in done],
                [d.message_id for d in done],
                [json.dumps(d.papers) for d in done],
                [d.attempts for d in done],
            ],
        )


def _note_bounces(subscriber_ids: list[int]) -> None:
    Subscriber.objects.filter(pk__in=subscriber_ids).update(bounce_count=F("bounce_count") + 1)
    over = list(
        Subscriber.objects.filter(pk__in=subscriber_ids, bounce_count__gte=settings.DIGEST_BOUNCE_LIMIT).values_list(
            "pk", "email"
        )
    )
    if not over:
        return
    Suppression.objects.bulk_create(
        [Suppression(email_hash=email_hash(addr), reason=Suppression.Reason.BOUNCED) for _, addr in over],
        ignore_conflicts=True,
    )
    now = timezone.now()
    Subscriber.objects.filter(pk__in=[pk for pk, _ in over]).update(
        status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now
    )
    Delivery.objects.filter(
        subscriber_id__in=[pk for pk, _ in over], status__in=[Delivery.Status.PENDING, Delivery.Status.WAITING]
    ).update(status=Delivery.Status.SKIPPED, error="address suppressed after repeated hard bounces")
    logger.warning("suppressed %s addresses after repeated hard bounces", len(over))


# --------------------------------------------------------------------------- curators


def send_preview(*, subscriber: Subscriber, day: date, to: str) -> Preview:
    """Send ``subscriber``'s digest of ``day`` to ``to`` as it would go out, outside the
    ledger: the subscriber's own delivery is not affected."""
    preview = preview_digest(subscriber=subscriber, day=day)
    builder = MessageBuilder()
    _, data = builder.build(
        to=to,
        subject=preview.subject,
        text=preview.text,
        html=preview.html,
        unsubscribe_url=tokens.unsubscribe_url(subscriber),
        feedback_id="preview",
    )
    with Mailer() as mailer:
        try:
            mailer.send(builder.envelope_from, to, data)
        except (TemporaryError, PermanentError) as exc:
            raise NothingToSend(f"the relay did not take the preview: {exc}") from exc
    return preview


def deliveries_retry(ids: Sequence[int]) -> int:
    """Failed, bounced or stuck deliveries back to pending and out to the workers.

    Only rows not sent: the conditional update leaves sent (or sending) ones alone, so a
    retry can never make a second email for the same subscriber and date.
    """
    retried = list(
        Delivery.objects.filter(
            pk__in=list(ids),
            status__in=[Delivery.Status.FAILED, Delivery.Status.BOUNCED, Delivery.Status.STUCK],
            subscriber__status=Subscriber.Status.ACTIVE,
        ).values_list("pk", flat=True)
    )
    count = Delivery.objects.filter(
        pk__in=retried, status__in=[Delivery.Status.FAILED, Delivery.Status.BOUNCED, Delivery.Status.STUCK]
    ).update(status=Delivery.Status.PENDING, error="", attempts=0)
    if count:
        from digest.tasks import send_digest_batch

        def enqueue() -> None:
            for start in range(0, len(retried), settings.DIGEST_BATCH_SIZE):
                send_digest_batch.delay(retried[start : start + settings.DIGEST_BATCH_SIZE])

        transaction.on_commit(enqueue)
    return count


def sent_digest_html(*, subscriber: Subscriber, day: date) -> str | None:
    """The HTML of the digest sent to ``subscriber`` for ``day``, from the papers recorded
    with its delivery (so the web view shows what was sent, not today's ranking)."""
    delivery = Delivery.objects.filter(subscriber=subscriber, digest_date=day, status=Delivery.Status.SENT).first()
    if delivery is None or not delivery.papers:
        return None
    entries = [e for e in delivery.papers if isinstance(e, dict) and e.get("arxiv_id")]
    papers = {p.arxiv_id: p for p in Paper.objects.filter(arxiv_id__in=[e["arxiv_id"] for e in entries])}
    picks = [
        RankedItem(paper_id=papers[e["arxiv_id"]].pk, score=0.0, reason=str(e.get("reason", "")))
        for e in entries
        if e["arxiv_id"] in papers
    ]
    if not picks:
        return None
    weekly = subscriber.frequency == Subscriber.Frequency.WEEKLY
    shown = [papers[e["arxiv_id"]] for e in entries if e["arxiv_id"] in papers]
    renderer = DayRenderer(day=day, papers=shown, weekly=weekly)
    return renderer.render(reader_for(subscriber, day), picks).html
