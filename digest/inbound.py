"""The bounce and unsubscribe mailbox: read it over IMAP, turn each message into an event, move what was handled.

Each new message is parsed (digest/mail/reports.py). A bounce or complaint is matched to
its delivery by the signed VERP return path it was sent back to, else by the original
Message-ID it quotes (and then its recipient must be that delivery's subscriber); a
message to UNSUBSCRIBE_MAILTO names its subscriber by the signed token in its subject.
What was applied, or was already applied (the event service is idempotent), moves to the
processed folder; anything else stays where it is, flagged so it is not read again, and
is counted on the console's dashboard for a person to look at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from digest import events
from digest.mail import imap, reports, verp
from digest.models import DeliveryEvent

logger = logging.getLogger(__name__)

UNRECOGNIZED_KEY = "digest:inbound:unrecognized"
ERROR_KEY = "digest:inbound:error"
SOURCE = "imap"
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
    """The event a parsed report stands for, or None when it names nothing of ours."""
    kind = KINDS.get(report.kind)
    if kind is None:
        return None
    if kind == DeliveryEvent.Kind.UNSUBSCRIBE:
        return events.Event(source=source, event_id=report.report_id, kind=kind, token=report.token,
                            detail="mailto unsubscribe")  # fmt: skip
    delivery_id = None
    if settings.RETURN_PATH:
        delivery_id = next(
            (d for d in (verp.delivery_id(a, settings.RETURN_PATH) for a in report.delivered_to) if d is not None),
            None,
        )
    if delivery_id is None and not report.message_ids:
        return None
    # Only one recipient can be checked against the delivery: a report naming several is
    # trusted for a VERP match only (the signature already names the delivery).
    recipient = report.recipients[0] if len(report.recipients) == 1 else ""
    if delivery_id is None and not recipient:
        return None
    detail = " ".join(part for part in (report.status, report.detail) if part)
    return events.Event(
        source=source,
        event_id=report.report_id,
        kind=kind,
        delivery_id=delivery_id,
        message_id=report.message_ids[0] if delivery_id is None else "",
        # A signed return path is proof enough; the final recipient may be a forwarding target.
        recipient=recipient if delivery_id is None else "",
        detail=detail,
    )


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
            if report.kind == reports.IGNORE:
                result.ignored += 1
                box.move(uid)
                continue
            event = report_event(report)
            outcome = events.event_record(event) if event is not None else "unmatched"
            if outcome == "unmatched":
                result.left += 1
                box.flag_unrecognized(uid)
                continue
            result.applied += outcome == "applied"
            result.duplicate += outcome == "duplicate"
            box.move(uid)
        result.waiting = box.count_unrecognized()
    cache.set(UNRECOGNIZED_KEY, result.waiting, timeout=None)
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
