"""What happened to each delivery: the journal of SMTP attempts, recorded outcomes, bounces, stuck rows.

Each message is noted in the shared cache twice: a "try" mark just before its SMTP
conversation and a "sent" mark with its outcome just after. The database row is written
later, once per batch. When a worker dies in between, :func:`mark_stuck` reads the
journal: sent messages are recorded as sent, rows never tried go back to pending, and
only a row caught mid-conversation is truly unknown and marked stuck (never resent
blindly: exactly once beats at least once for email).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from digest.models import Delivery, DeliveryEvent, SentPaper, Subscriber, Suppression, email_hash
from digest.sending import reasons
from papers.services import alert_curators

logger = logging.getLogger(__name__)

JOURNAL_KEY = "digest:sent:{}"
TRY_KEY = "digest:try:{}"
JOURNAL_SECONDS = 3 * 86_400
OUTCOME_FIELDS = ["status", "error", "sent_at", "message_id", "papers", "attempts", "outcome", "outcome_line"]


def _journal(key: str, value: object) -> None:
    try:
        cache.set(key, value, timeout=JOURNAL_SECONDS)
    except Exception:  # the journal only narrows what a crash leaves stuck; never fail a send over it
        logger.warning("could not write %s to the journal", key, exc_info=True)


def note_try(delivery_id: int) -> None:
    """Just before the SMTP conversation: from here on, a crash leaves the outcome unknown."""
    _journal(TRY_KEY.format(delivery_id), 1)


def note_sent(delivery_id: int, outcome: dict) -> None:
    """Just after the relay took the message: a crash now still records it as sent."""
    _journal(JOURNAL_KEY.format(delivery_id), outcome)


def apply_sent(delivery: Delivery, outcome: dict) -> None:
    delivery.status, delivery.error = Delivery.Status.SENT, ""
    delivery.sent_at = datetime.fromisoformat(outcome["sent_at"])
    delivery.message_id = outcome["message_id"]
    delivery.papers = outcome["papers"]


def ledger_rows(delivery: Delivery, paper_ids: Sequence[int]) -> Iterator[SentPaper]:
    for paper_id in paper_ids:
        yield SentPaper(
            subscriber_id=delivery.subscriber_id, paper_id=paper_id, delivery=delivery, sent_on=delivery.digest_date
        )


def record(
    done: Sequence[Delivery], ledger: list[SentPaper], bounced_ids: list[int], *, refused: Sequence[Delivery] = ()
) -> None:
    """Write a batch's outcomes: a fixed number of queries whatever the batch's size.

    ``refused`` are the deliveries whose address the receiving server refused outright
    (5.1.1 "no such user"): those addresses are suppressed at once as hard bounces.

    A dropped database connection is retried on a fresh one: the messages have left,
    and a row left "sending" would be reported stuck.
    """
    for attempt in range(3):
        try:
            with transaction.atomic():
                if done:
                    _update_outcomes(done)
                if ledger:
                    SentPaper.objects.bulk_create(ledger, ignore_conflicts=True)
                if bounced_ids:
                    _note_bounces(bounced_ids)
                if refused:
                    _suppress_refused(refused)
            return
        except (OperationalError, InterfaceError):
            if attempt == 2:
                raise
            logger.warning("lost the database while recording a batch; retrying", exc_info=True)
            connection.close()
            time.sleep(1 + attempt)


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
                   message_id = v.message_id, papers = v.papers::jsonb, attempts = v.attempts,
                   outcome = v.outcome, outcome_line = v.outcome_line
              FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[],
                          %s::int[], %s::text[], %s::text[])
                   AS v(id, status, error, sent_at, message_id, papers, attempts, outcome, outcome_line)
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
                [d.outcome for d in done],
                [d.outcome_line for d in done],
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
    ).update(
        status=Delivery.Status.SKIPPED,
        error="address suppressed after repeated hard bounces",
        outcome=Delivery.Outcome.SUPPRESSED,
        outcome_line=reasons.inactive_line(None, suppressed=True)[1],
    )
    logger.warning("suppressed %s addresses after repeated hard bounces", len(over))


def _suppress_refused(refused: Sequence[Delivery]) -> None:
    """What a later hard-bounce DSN does (digest/events.py), for addresses refused during the send:
    a hard-bounce event in the subscriber's record, a bounce suppression, the subscriber
    unsubscribed and their queued digests skipped. The event names no delivery: the
    dashboard already counts a bounced row that never left as a hard bounce."""
    DeliveryEvent.objects.bulk_create(
        [
            DeliveryEvent(
                source="smtp",
                event_id=f"refused:{d.pk}",
                kind=DeliveryEvent.Kind.HARD_BOUNCE,
                subscriber_id=d.subscriber_id,
                detail=d.error[:500],
            )
            for d in refused
        ],
        ignore_conflicts=True,
    )
    Suppression.objects.bulk_create(
        [Suppression(email_hash=email_hash(d.subscriber.email), reason=Suppression.Reason.BOUNCED) for d in refused],
        ignore_conflicts=True,
    )
    ids = [d.subscriber_id for d in refused]
    now = timezone.now()
    Subscriber.objects.filter(pk__in=ids).exclude(status=Subscriber.Status.UNSUBSCRIBED).update(
        status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now
    )
    Delivery.objects.filter(
        subscriber_id__in=ids, status__in=[Delivery.Status.PENDING, Delivery.Status.WAITING]
    ).update(
        status=Delivery.Status.SKIPPED,
        error="address suppressed: refused by its mail server",
        outcome=Delivery.Outcome.SUPPRESSED,
        outcome_line=reasons.inactive_line(None, suppressed=True)[1],
    )
    logger.warning("suppressed %s addresses their mail servers refused as unknown", len(refused))


def alert_stuck(count: int, *, why: str) -> None:
    """Tell curators that ``count`` digests may or may not have left, and what to do."""
    alert_curators(
        subject=f"{count} digests stuck",
        body=(
            f"{why} They may have been delivered, so they are not resent automatically. Check the SMTP"
            " relay's log for their Message-IDs (<digest.<delivery id>.<key>.<date>@...>) and retry them from"
            " the console's Deliveries page if they never left."
        ),
    )


def alert_failed(count: int, *, last: str) -> None:
    """Tell curators that ``count`` digests gave up after their last try (the manage page says so)."""
    alert_curators(
        subject=f"{count} digests failed",
        body=(
            f"{count} digests were not sent after {settings.DIGEST_MAX_ATTEMPTS} tries; the last error: {last}."
            " Retry them from the console's Deliveries page once the relay is fine."
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
    candidates = list(
        Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_at__lt=cutoff).select_related("subscriber")
    )
    if not candidates:
        return 0
    journal = cache.get_many([JOURNAL_KEY.format(d.pk) for d in candidates])
    recovered, ledger = [], []
    for delivery in candidates:
        outcome = journal.get(JOURNAL_KEY.format(delivery.pk))
        if outcome:
            apply_sent(delivery, outcome)
            recovered.append(delivery)
            ledger.extend(ledger_rows(delivery, outcome["paper_ids"]))
    with transaction.atomic():
        for delivery in recovered:
            Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
                status=delivery.status,
                error="",
                sent_at=delivery.sent_at,
                message_id=delivery.message_id,
                papers=delivery.papers,
                outcome=Delivery.Outcome.SENT,
                outcome_line=reasons.sent_line(delivery.subscriber, delivery.sent_at, len(delivery.papers), late=False),
            )
        SentPaper.objects.bulk_create(ledger, ignore_conflicts=True)
    unknown = [d.pk for d in candidates if d not in recovered]
    tried = cache.get_many([TRY_KEY.format(pk) for pk in unknown])
    untried = [pk for pk in unknown if TRY_KEY.format(pk) not in tried]
    Delivery.objects.filter(pk__in=untried, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.PENDING,
        error="its worker died before trying to send it",
        outcome=Delivery.Outcome.RETRYING,
        outcome_line=reasons.retrying_line(relay_down=True),
    )
    stuck_ids = [pk for pk in unknown if TRY_KEY.format(pk) in tried]
    count = Delivery.objects.filter(pk__in=stuck_ids, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.STUCK,
        error="the worker sending it stopped before recording the outcome; it may or may not have been sent",
        outcome=Delivery.Outcome.STUCK,
        outcome_line=reasons.FAILED_LINE,
    )
    if recovered:
        logger.warning("recorded %s digests a dead worker had sent (from the journal)", len(recovered))
    if count:
        alert_stuck(
            count,
            why=(
                f"{count} deliveries were claimed by a worker that never recorded their outcome (killed or"
                " lost its database)."
            ),
        )
    return count
