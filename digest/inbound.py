"""The bounce and unsubscribe mailbox: read it over IMAP, turn each message into an event, move what was handled.

Each new message is parsed (digest/mail/reports.py). Anyone can send mail to the mailbox,
so a report acts only when it proves it is about mail we sent:

- a bounce or complaint arrived at a VERP return path whose signature verifies (it names
  its delivery), or it quotes the keyed Message-ID of a digest we sent, and names as its
  recipient that digest's subscriber (digest/mail/verp.py: neither can be guessed);
- a message to UNSUBSCRIBE_MAILTO carries the signed unsubscribe token of a subscriber in
  its subject (only the mail sent to them held it).

What was applied, or was already applied (the event service is idempotent), moves to the
processed folder. Anything else stays where it is, flagged so it is not read again, and is
counted on the console's dashboard; a report that claimed a bounce, complaint or
unsubscribe but proved nothing is logged and listed in the console's "Rejected reports".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from digest import events
from digest.mail import imap, reports, verp
from digest.models import DeliveryEvent, RejectedReport

logger = logging.getLogger(__name__)

UNRECOGNIZED_KEY = "digest:inbound:unrecognized"
ERROR_KEY = "digest:inbound:error"
REJECTED_DAY_KEY = "digest:inbound:rejected:{}"
SOURCE = "imap"
# Days a rejected report stays listed in the console: long enough to notice a pattern.
REJECTED_KEEP_DAYS = 30
KINDS = {
    reports.HARD_BOUNCE: DeliveryEvent.Kind.HARD_BOUNCE,
    reports.SOFT_BOUNCE: DeliveryEvent.Kind.SOFT_BOUNCE,
    reports.COMPLAINT: DeliveryEvent.Kind.COMPLAINT,
    reports.UNSUBSCRIBE: DeliveryEvent.Kind.UNSUBSCRIBE,
}


@dataclass
class InboundReport:
    read: int = 0
    applied: int = 0
    duplicate: int = 0
    ignored: int = 0  # well-formed reports that ask nothing (delays, DMARC reports): moved
    left: int = 0  # unrecognized or unmatched: flagged and left for a person
    waiting: int = 0  # all flagged messages in the mailbox now


def report_event(report: reports.Report, *, source: str = SOURCE) -> events.Event | None:
    """The event a parsed report stands for, or None when it proves nothing (see the module)."""
    event, _ = _event_or_reason(report, source=source)
    return event


def _event_or_reason(report: reports.Report, *, source: str) -> tuple[events.Event | None, str]:
    kind = KINDS.get(report.kind)
    if kind is None:
        return None, "not a bounce, complaint or unsubscribe"
    if kind == DeliveryEvent.Kind.UNSUBSCRIBE:
        event = events.Event(source=source, event_id=report.report_id, kind=kind, token=report.token,
                             detail="mailto unsubscribe")  # fmt: skip
        return event, ""
    detail = " ".join(part for part in (report.status, report.detail) if part)
    if settings.RETURN_PATH:
        signed = (verp.delivery_id(a, settings.RETURN_PATH) for a in report.delivered_to)
        delivery_id = next((d for d in signed if d is not None), None)
        if delivery_id is not None:
            # A signed return path is proof enough; the final recipient may be a forwarding target.
            return events.Event(source=source, event_id=report.report_id, kind=kind, delivery_id=delivery_id,
                                detail=detail), ""  # fmt: skip
    keyed = [(mid, verp.message_id_delivery(mid)) for mid in report.message_ids]
    keyed = [(mid, pk) for mid, pk in keyed if pk is not None]
    if not keyed:
        return None, "no valid VERP return path and no Message-ID of ours"
    # Only one recipient can be checked against the delivery the Message-ID names.
    if len(report.recipients) != 1:
        return None, "a Message-ID of ours, but not exactly one recipient named"
    message_id, delivery_id = keyed[0]
    event = events.Event(source=source, event_id=report.report_id, kind=kind, delivery_id=delivery_id,
                         message_id=message_id, recipient=report.recipients[0], detail=detail)  # fmt: skip
    return event, ""


def report_handle(report: reports.Report, *, source: str = SOURCE) -> events.Outcome | None:
    """Apply what ``report`` proves, or record why it changes nothing; None for a report that asks nothing."""
    if report.kind == reports.IGNORE:
        return None
    event, reason = _event_or_reason(report, source=source)
    outcome = events.event_record(event) if event is not None else "unmatched"
    if outcome == "unmatched":
        if event is not None:
            reason = (
                "its unsubscribe token does not verify"
                if event.token
                else "the delivery it names was not sent to the recipient it names"
            )
        level = logging.WARNING if report.kind in KINDS else logging.INFO
        logger.log(level, "%s report %s from %s changed nothing: %s", report.kind, report.report_id[:100], source,
                   reason)  # fmt: skip
        if report.kind in KINDS:
            _remember(
                source=source,
                report_id=report.report_id,
                kind=KINDS[report.kind],
                recipient=", ".join(report.recipients)[:254],
                message_id=(report.message_ids[0] if report.message_ids else "")[:255],
                reason=reason,
            )
    return outcome


def note_rejected(event: events.Event, *, reason: str) -> None:
    """An authenticated provider event that still named no delivery of ours to its recipient."""
    logger.warning("%s event %s from %s changed nothing: %s", event.kind, event.event_id[:100], event.source, reason)
    _remember(source=event.source, report_id=event.event_id, kind=event.kind, recipient=event.recipient[:254],
              message_id=event.message_id[:255], reason=reason)  # fmt: skip


def _remember(**fields: str) -> None:
    try:
        with transaction.atomic():
            RejectedReport.objects.create(**{**fields, "reason": fields["reason"][:200]})
    except IntegrityError:
        return  # the same report again (a mailbox read twice, a webhook retried)
    # Counted per day in the cache too: the dashboard reads it without a query.
    key = REJECTED_DAY_KEY.format(timezone.localdate())
    cache.add(key, 0, timeout=8 * 86_400)
    try:
        cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.add(key, 1, timeout=8 * 86_400)


def rejected_prune(*, now: datetime | None = None) -> int:
    """Forget rejected reports older than REJECTED_KEEP_DAYS (they may name an address)."""
    cutoff = (now or timezone.now()) - timedelta(days=REJECTED_KEEP_DAYS)
    return RejectedReport.objects.filter(received_at__lt=cutoff).delete()[0]


def rejected_recent(*, today: date, days: int = 7) -> int:
    """Reports of the last ``days`` days that proved nothing and changed nothing (from the cache)."""
    keys = [REJECTED_DAY_KEY.format(today - timedelta(days=back)) for back in range(days)]
    return sum(int(n) for n in cache.get_many(keys).values())


def inbound_read(*, limit: int = 500) -> InboundReport:
    """Handle up to ``limit`` new messages of INBOUND_IMAP_URL's folder."""
    try:
        result = _read(limit)
    except imap.MailboxError as exc:
        # Unanswered bounces and unsubscribes pile up unseen: the dashboard says so.
        cache.set(ERROR_KEY, str(exc)[:300], timeout=None)
        raise
    cache.delete(ERROR_KEY)
    return result


def _read(limit: int) -> InboundReport:
    result = InboundReport()
    with imap.Mailbox(settings.INBOUND_IMAP_URL) as box:
        for uid, data in box.new(limit=limit):
            result.read += 1
            report = reports.parse(data, unsubscribe_address=settings.UNSUBSCRIBE_MAILTO)
            outcome = report_handle(report)
            if outcome is None:
                result.ignored += 1
                box.move(uid)
                continue
            if outcome == "unmatched":
                result.left += 1
                box.flag_unrecognized(uid)
                continue
            result.applied += outcome == "applied"
            result.duplicate += outcome == "duplicate"
            box.move(uid)
        result.waiting = box.count_unrecognized()
    cache.set(UNRECOGNIZED_KEY, result.waiting, timeout=None)
    rejected_prune()
    if result.read:
        logger.info(
            "bounce mailbox: %s read, %s applied, %s already applied, %s ignored, %s left for a person",
            result.read, result.applied, result.duplicate, result.ignored, result.left,
        )  # fmt: skip
    return result


def unrecognized_waiting() -> int | None:
    """Messages the last read left for a person, or None when no mailbox is read."""
    if not settings.INBOUND_IMAP_URL:
        return None
    return cache.get(UNRECOGNIZED_KEY)


def last_error() -> str:
    """Why the last read of the mailbox failed, or "" when it worked (or none is read)."""
    return (cache.get(ERROR_KEY) or "") if settings.INBOUND_IMAP_URL else ""
