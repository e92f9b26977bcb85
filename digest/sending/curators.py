"""The console's tools on digests: preview any subscriber's digest, send it to yourself, retry deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.conf import settings

from digest import jobs, tokens
from digest.mail import Mailer, MessageBuilder, PermanentError, TemporaryError, dkim
from digest.models import Delivery, Subscriber
from digest.sending.editions import compose, digest_ready, editions, papers_days, rank


class NothingToSend(Exception):
    """No digest for this subscriber and date: papers not ready, or nothing new for them."""


@dataclass(frozen=True)
class Preview:
    """A digest as it would be sent now: the subject, both parts, and the papers with their reasons."""

    subject: str
    text: str
    html: str
    paper_ids: tuple[int, ...]
    reasons: tuple[str, ...] = ()


def preview_digest(*, subscriber: Subscriber, day: date) -> Preview:
    """The digest ``subscriber`` would get for ``day``, exactly as it would be sent now."""
    weekly = subscriber.frequency == Subscriber.Frequency.WEEKLY
    if not digest_ready(day, weekly=weekly):
        last = papers_days(day, weekly=weekly)[-1]
        raise NothingToSend(f"the papers of {last} are not ready: no good scrape of that day yet")
    ed = editions.get(day, weekly=weekly)
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
        unsubscribe=tokens.list_unsubscribe(subscriber),
        feedback_id="preview",
    )
    with Mailer() as mailer:
        signer = dkim.signer() if mailer.via.dkim else None
        if signer is not None:
            data = signer.sign(data)  # as it would go out, signature included
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
            pk__in=list(ids), status__in=Delivery.RETRYABLE, subscriber__status=Subscriber.Status.ACTIVE
        ).values_list("pk", flat=True)
    )
    count = Delivery.objects.filter(pk__in=retried, status__in=Delivery.RETRYABLE).update(
        status=Delivery.Status.PENDING, error="", attempts=0
    )
    if count:
        size = settings.DIGEST_BATCH_SIZE
        for start in range(0, len(retried), size):
            jobs.enqueue_on_commit(jobs.SEND_DIGEST_BATCH, retried[start : start + size])
    return count
