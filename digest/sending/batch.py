"""Send one batch: claim its rows, rank, render, send over one connection, record every outcome."""

from __future__ import annotations

import itertools
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from digest import liked, tokens
from digest.mail import Mailer, MessageBuilder, PermanentError, RelayDown, TemporaryError, UnknownOutcome, dkim, verp
from digest.models import Delivery, SentPaper, Subscriber, Suppression, email_hash
from digest.ranking import RankedItem
from digest.sending import reasons
from digest.sending.editions import Edition, Editions, compose, editions, named_papers, rank, top_overall
from digest.sending.outcomes import alert_failed, alert_stuck, apply_sent, ledger_rows, note_sent, note_try, record
from digest.sending.pause import pause_sending, sending_paused

Outcome = Delivery.Outcome


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
    cache: Editions = editions,
) -> BatchReport:
    """Claim, rank, render, send and record one batch; see the package's docstring.

    ``timings``, when given, accumulates seconds per stage (benchdigest reads them);
    ``cache`` is where the batch finds its editions (the process's own by default).
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
    with timer("rank"):
        # A digest is never ranked from a half-fetched list of liked papers: what a reader named
        # and the background has not fetched yet is fetched now, within a form's budget (one
        # query when nothing is pending, as is usual).
        liked.liked_papers_fetch(
            subscriber_ids=[d.subscriber_id for d in deliveries], budget=liked.SUBMIT_FETCH_SECONDS
        )
    batch = _Batch(deliveries, report, mailer=mailer, progress=progress, timer=timer, cache=cache)
    try:
        batch.run()
    finally:
        batch.close()
        # Rows never tried (an error stopped the loop) were not sent: back to pending.
        for delivery in deliveries:
            if delivery.status == Delivery.Status.SENDING:
                delivery.status, delivery.error = Delivery.Status.PENDING, report.stopped or "batch interrupted"
                reasons.set_outcome(delivery, Outcome.RETRYING, reasons.retrying_line(relay_down=True))
                report.retry += 1
        with timer("record"):
            record(deliveries, batch.ledger, batch.bounced_ids, refused=batch.refused)
    if report.stuck:
        alert_stuck(
            report.stuck,
            why=f"The SMTP relay hung up after {report.stuck} whole messages without answering.",
        )
    if report.failed:
        alert_failed(report.failed, last=batch.last_error)
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
        cache: Editions,
    ) -> None:
        self.timer = timer
        self.cache = cache
        self.deliveries = deliveries
        self.report = report
        self.own_mailer = mailer is None
        self.mailer = mailer or Mailer()
        self.progress = progress
        self.builder = MessageBuilder()
        # Signed here, after the reader's message is assembled, so "sign" is a stage of its own.
        self.signer = dkim.signer() if self.mailer.via.dkim else None
        self.ledger: list[SentPaper] = []
        self.named: dict[int, set[int]] = {}  # the current group's named papers per subscriber
        self.bounced_ids: list[int] = []
        self.refused: list[Delivery] = []  # their address was refused outright (5.1.1): suppressed
        self.consecutive = 0
        self.last_error = ""
        self.suppressed = set(
            Suppression.objects.filter(email_hash__in=[email_hash(d.subscriber.email) for d in deliveries]).values_list(
                "email_hash", flat=True
            )
        )

    def close(self) -> None:
        if self.own_mailer:
            self.mailer.close()

    def run(self) -> None:
        groups = itertools.groupby(
            self.deliveries, key=lambda d: (d.digest_date, d.subscriber.frequency == Subscriber.Frequency.WEEKLY)
        )
        for (digest_date, weekly), group in groups:
            group = list(group)
            with self.timer("rank"):
                ed = self.cache.get(digest_date, weekly=weekly)
                # Read once for the ranking and for the line of a day that brings nothing.
                self.named = named_papers([d.subscriber_id for d in group], ed.paper_ids)
                ranked = rank(ed, [d.subscriber for d in group], named=self.named)
                # A quiet day's note: the day's top papers, for those who asked for one.
                quiet = [
                    d.subscriber
                    for d in group
                    if not ranked.get(d.subscriber_id) and d.subscriber.quiet_day == Subscriber.QuietDay.NOTE
                ]
                notes = top_overall(ed, quiet, count=reasons.NOTE_PAPERS) if quiet and ed.has_list else {}
            for delivery in group:
                if self.report.stopped:
                    return
                picks = ranked.get(delivery.subscriber_id, [])
                note = not picks and bool(notes.get(delivery.subscriber_id))
                self.one(ed, delivery, picks or notes.get(delivery.subscriber_id, []), note=note)
                if self.progress:
                    self.progress(1)

    def one(self, ed: Edition, delivery: Delivery, picks: list[RankedItem], *, note: bool = False) -> None:
        subscriber, report = delivery.subscriber, self.report
        suppressed = email_hash(subscriber.email) in self.suppressed
        if suppressed or not subscriber.is_active:
            delivery.status, delivery.error = Delivery.Status.SKIPPED, "address suppressed or inactive"
            reasons.set_outcome(delivery, *reasons.inactive_line(subscriber, suppressed=suppressed))
            report.skipped += 1
            return
        if not picks:
            delivery.status, delivery.error = Delivery.Status.SKIPPED, "nothing new to send"
            named = self.named.get(subscriber.pk, set())
            reasons.set_outcome(delivery, *reasons.nothing_new(ed, subscriber, named=named))
            report.skipped += 1
            return
        reasons_of = {p.paper_id: p.reason for p in picks}
        late = delivery.outcome == Outcome.HELD
        if not subscriber.wants_email:
            self.feed_only(ed, delivery, picks, note=note)
            return
        with self.timer("render"):
            digest = compose(ed, subscriber, picks, note=note)
            # What the digest holds, kept even if it never leaves: the feed shows it.
            delivery.papers = [
                {"arxiv_id": ed.papers[pid].arxiv_id, "reason": reasons_of[pid]} for pid in digest.paper_ids
            ]
            message_id, data = self.builder.build(
                to=subscriber.email,
                subject=digest.subject,
                text=digest.text,
                html=digest.html,
                unsubscribe=tokens.list_unsubscribe(subscriber),
                # Keyed, so a report quoting it proves it saw this digest (digest/inbound.py).
                message_id=verp.message_id(delivery.pk, ed.digest_date, self.builder.domain),
                feedback_id=f"digest-{ed.digest_date:%Y%m%d}",
            )
        if self.signer is not None:
            with self.timer("sign"):
                data = self.signer.sign(data)
        delivery.attempts += 1  # counted only when the relay is really asked
        try:
            with self.timer("send"):
                provider_id = self.mailer.send(
                    self.return_path(delivery), subscriber.email, data, before=lambda: note_try(delivery.pk)
                )
        except UnknownOutcome as exc:
            delivery.status, delivery.error = Delivery.Status.STUCK, str(exc)[:1000]
            reasons.set_outcome(delivery, Outcome.STUCK, reasons.FAILED_LINE)
            report.stuck += 1
            self._error(delivery, stop=False)
        except PermanentError as exc:
            delivery.status, delivery.error = Delivery.Status.BOUNCED, str(exc)[:1000]
            reasons.set_outcome(delivery, Outcome.BOUNCED, reasons.bounced_line(exc))
            self.bounced_ids.append(subscriber.pk)
            if exc.address:
                self.refused.append(delivery)
            report.bounced += 1
            self._error(delivery, stop=False)
        except TemporaryError as exc:
            final = delivery.attempts >= settings.DIGEST_MAX_ATTEMPTS
            delivery.status = Delivery.Status.FAILED if final else Delivery.Status.PENDING
            delivery.error = str(exc)[:1000]
            if final:
                reasons.set_outcome(delivery, Outcome.FAILED, reasons.FAILED_LINE)
                self.last_error = delivery.error
            else:
                line = reasons.retrying_line(exc, relay_down=isinstance(exc, RelayDown))
                # A late list stays "held" so that its eventual send still says so.
                if not late:
                    reasons.set_outcome(delivery, Outcome.RETRYING, line)
            report.failed += final
            report.retry += not final
            self._error(delivery, stop=isinstance(exc, RelayDown))
        else:
            outcome = {
                "sent_at": timezone.now().isoformat(),
                # An email provider's own id, when it has one: its webhooks name the message by it.
                "message_id": provider_id or message_id,
                "papers": delivery.papers,
                "paper_ids": list(digest.paper_ids),
            }
            with self.timer("send"):
                note_sent(delivery.pk, outcome)
            apply_sent(delivery, outcome)
            count = len(digest.paper_ids)
            if note:
                reasons.set_outcome(delivery, Outcome.NOTE, reasons.note_line(subscriber, delivery.sent_at, count))
            else:
                line = reasons.sent_line(subscriber, delivery.sent_at, count, late=late)
                reasons.set_outcome(delivery, Outcome.SENT_LATE if late else Outcome.SENT, line)
            self.ledger.extend(ledger_rows(delivery, outcome["paper_ids"]))
            report.sent += 1
            self.consecutive = 0

    def feed_only(self, ed: Edition, delivery: Delivery, picks: list[RankedItem], *, note: bool) -> None:
        """A feed-only subscriber's day: recorded like a sent digest (ledger, exactly once), no email."""
        outcome = {
            "sent_at": timezone.now().isoformat(),
            "message_id": "",
            "papers": [{"arxiv_id": ed.papers[p.paper_id].arxiv_id, "reason": p.reason} for p in picks],
            "paper_ids": [p.paper_id for p in picks],
        }
        apply_sent(delivery, outcome)
        reasons.set_outcome(delivery, Outcome.FEED, reasons.feed_line(len(picks), note=note))
        self.ledger.extend(ledger_rows(delivery, outcome["paper_ids"]))
        self.report.sent += 1

    def return_path(self, delivery: Delivery) -> str:
        """The envelope sender: a signed VERP address when RETURN_PATH is set, so a later bounce
        names this delivery; else the From address."""
        if settings.RETURN_PATH:
            return verp.return_path(settings.RETURN_PATH, delivery.pk)
        return self.builder.envelope_from

    def _error(self, delivery: Delivery, *, stop: bool) -> None:
        self.consecutive += 1
        if stop or self.consecutive >= settings.DIGEST_MAX_CONSECUTIVE_ERRORS:
            self.report.stopped = f"{self.consecutive} errors in a row, the last: {delivery.error}"
            pause_sending(self.report.stopped)
