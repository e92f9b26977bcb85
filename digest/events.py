"""Bounces, complaints and unsubscribes that arrive after the send: one service whatever brought them.

Webhooks (digest/webhooks.py) and the bounce mailbox (digest/inbound.py) hand every event
to :func:`event_record`. It is idempotent (an event is stored once per source and id, and
a delivery's second event of the same kind, from another source, changes nothing more).
An event changes a subscriber only when it names the recipient and a delivery of ours to
that recipient (by the Message-ID recorded for it, or a keyed Message-ID or VERP return
path that names it), or carries a signed unsubscribe token; anything else changes nothing
at all. Only a verified VERP return path may leave the recipient out (a bounce may come
from a forwarding target).

- hard bounce: the address is suppressed at once;
- complaint: suppressed at once, the reason kept; a complaint suppression is never lifted
  by a new signup, so no email of any kind (not even a confirmation) goes there again;
- soft bounce: counts toward DIGEST_BOUNCE_LIMIT, like a policy 5xx during the send;
- unsubscribe: the subscriber is unsubscribed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from digest import services, tokens
from digest.models import Delivery, DeliveryEvent, Subscriber, Suppression, email_hash

logger = logging.getLogger(__name__)

Kind = DeliveryEvent.Kind
# Deliveries that left: only their mail can bounce or be reported (a stuck one may have left).
SENT_STATUSES = (Delivery.Status.SENT, Delivery.Status.BOUNCED, Delivery.Status.STUCK)
Outcome = Literal["applied", "duplicate", "unmatched"]


@dataclass(frozen=True)
class Event:
    source: str  # "imap" or the provider, e.g. "postmark"
    event_id: str  # unique within the source
    kind: str  # a DeliveryEvent.Kind
    message_id: str = ""  # as recorded on Delivery.message_id
    delivery_id: int | None = None  # from a signed VERP return path or keyed Message-ID
    recipient: str = ""  # the address the event is about; must be the delivery's subscriber's
    # (only a VERP return path, which the mailbox has already verified, may go without one)
    token: str = ""  # an unsubscribe token (mailto requests): names the subscriber itself
    detail: str = ""


# Provider events whose normalized type is "bounced" but whose own record says temporary.
def _soft(esp_event: object) -> bool:
    if not isinstance(esp_event, dict):
        return False
    bounce = esp_event.get("bounce")
    return (
        esp_event.get("Type") == "SoftBounce"  # Postmark
        or (isinstance(bounce, dict) and bounce.get("bounceType") in ("Transient", "Undetermined"))  # Amazon SES
        or esp_event.get("severity") == "temporary"  # Mailgun
    )


def from_tracking(tracking: Any, *, esp_name: str) -> Event | None:
    """A django-anymail tracking event (already authenticated by its webhook view) as ours,
    or None for the kinds that change nothing here (sent, delivered, opened, deferred, ...).

    A bounce counts as hard when it is about the address (anymail's reject reason
    "bounced" or "invalid", or none) and the provider's own record does not call it
    temporary; one blocked by policy or content (a virus notice, a DMARC rejection)
    counts as soft. "rejected" is the provider refusing to send at all: because the
    address is bad (hard), because it complained or unsubscribed before (so it did), or
    for another reason (soft)."""
    address_reasons = (None, "bounced", "invalid")
    reason = tracking.reject_reason
    if tracking.event_type == "bounced":
        hard = reason in address_reasons and not _soft(tracking.esp_event)
        kind = Kind.HARD_BOUNCE if hard else Kind.SOFT_BOUNCE
    elif tracking.event_type == "rejected":
        kind = {"spam": Kind.COMPLAINT, "unsubscribed": Kind.UNSUBSCRIBE}.get(
            reason, Kind.HARD_BOUNCE if reason in address_reasons else Kind.SOFT_BOUNCE
        )
    elif tracking.event_type == "complained":
        kind = Kind.COMPLAINT
    elif tracking.event_type == "unsubscribed":
        kind = Kind.UNSUBSCRIBE
    else:
        return None
    if not tracking.message_id or not tracking.recipient:
        return None  # names no delivery to a recipient: nothing to check it against
    source = esp_name.lower().replace(" ", "_")[:32]
    event_id = (
        tracking.event_id
        or hashlib.sha256(
            f"{tracking.message_id}|{tracking.event_type}|{tracking.recipient}|{tracking.timestamp}".encode()
        ).hexdigest()
    )
    detail = " ".join(str(part) for part in (tracking.description, tracking.mta_response) if part)
    return Event(
        source=source,
        event_id=f"{kind}:{event_id}:{tracking.recipient or ''}"[:255],
        kind=kind,
        message_id=str(tracking.message_id),
        recipient=tracking.recipient or "",
        detail=detail,
    )


def _target(event: Event) -> tuple[Subscriber | None, Delivery | None]:
    if event.token:
        try:
            subscriber, _ = tokens.read_token(event.token, "unsubscribe")
        except tokens.BadToken:
            return None, None
        return subscriber, None
    delivery = None
    if event.delivery_id is not None:
        delivery = Delivery.objects.select_related("subscriber").filter(pk=event.delivery_id).first()
    elif event.message_id and event.recipient:
        delivery = Delivery.objects.select_related("subscriber").filter(message_id=event.message_id).first()
    if delivery is None or delivery.status not in SENT_STATUSES:
        return None, None
    if event.recipient and email_hash(event.recipient) != email_hash(delivery.subscriber.email):
        # A report about someone else's mail quoting our Message-ID: forged or confused.
        return None, None
    return delivery.subscriber, delivery


def event_record(event: Event) -> Outcome:
    """Store ``event`` once and apply it; see the module's docstring."""
    subscriber, delivery = _target(event)
    if subscriber is None:
        logger.info("%s event %s from %s matches no delivery: ignored", event.kind, event.event_id, event.source)
        return "unmatched"
    with transaction.atomic():
        repeated = delivery is not None and DeliveryEvent.objects.filter(delivery=delivery, kind=event.kind).exists()
        try:
            with transaction.atomic():
                DeliveryEvent.objects.create(
                    source=event.source,
                    event_id=event.event_id[:255],
                    kind=event.kind,
                    subscriber=subscriber,
                    delivery=delivery,
                    detail=event.detail[:500],
                )
        except IntegrityError:
            return "duplicate"
        if not repeated:
            _apply(event, subscriber, delivery)
    return "applied"


def _apply(event: Event, subscriber: Subscriber, delivery: Delivery | None) -> None:
    if event.kind == Kind.UNSUBSCRIBE:
        services.subscriber_unsubscribe(subscriber=subscriber)
        return
    if delivery is not None and event.kind == Kind.HARD_BOUNCE:
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENT).update(
            status=Delivery.Status.BOUNCED, error=f"bounced later: {event.detail}"[:1000]
        )
    if event.kind == Kind.COMPLAINT:
        # The strongest reason: replaces a bounce or deletion record, never a curator's block.
        Suppression.objects.filter(email_hash=email_hash(subscriber.email)).exclude(
            reason=Suppression.Reason.CURATOR
        ).update(reason=Suppression.Reason.COMPLAINT)
        _suppress(subscriber, Suppression.Reason.COMPLAINT, why="spam complaint")
        logger.warning("spam complaint from subscriber %s (%s): suppressed", subscriber.pk, event.source)
    elif event.kind == Kind.HARD_BOUNCE:
        _suppress(subscriber, Suppression.Reason.BOUNCED, why="hard bounce")
    elif event.kind == Kind.SOFT_BOUNCE:
        Subscriber.objects.filter(pk=subscriber.pk).update(bounce_count=F("bounce_count") + 1)
        subscriber.refresh_from_db(fields=["bounce_count"])
        if subscriber.bounce_count >= settings.DIGEST_BOUNCE_LIMIT:
            _suppress(subscriber, Suppression.Reason.BOUNCED, why="repeated soft bounces")


def _suppress(subscriber: Subscriber, reason: str, *, why: str) -> None:
    Suppression.objects.get_or_create(email_hash=email_hash(subscriber.email), defaults={"reason": reason})
    now = timezone.now()
    Subscriber.objects.filter(pk=subscriber.pk).exclude(status=Subscriber.Status.UNSUBSCRIBED).update(
        status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now
    )
    Delivery.objects.filter(
        subscriber=subscriber, status__in=[Delivery.Status.PENDING, Delivery.Status.WAITING]
    ).update(status=Delivery.Status.SKIPPED, error=f"address suppressed: {why}")
