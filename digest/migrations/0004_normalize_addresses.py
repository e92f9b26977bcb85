"""Store every subscriber's address in its normalized spelling (quoted and look-alike spellings of one mailbox).

Unlike 0003's frozen list, this uses the live digest.addresses.normalize_email: an
install migrating later wants the spelling the code compares against then, and there
must be one normalization, not a second copy that drifts.

Rows that were look-alike spellings of one mailbox are merged into one: the one that
best reflects what the mailbox asked for last (active, then paused, pending,
unsubscribed; then the earliest confirmed, then the oldest) keeps the address; the
others' consent records, delivery history, ledger of papers received and feedback move
to it where it has none of its own for that day or paper, and the rest goes with them.
A suppression of any old spelling is carried over to the normalized one, and a mailbox
a curator or a complaint suppressed under any spelling ends up unsubscribed.
"""

import hashlib
import hmac
import logging
from collections import defaultdict

from django.conf import settings
from django.db import migrations
from django.utils import timezone

from digest.addresses import normalize_email

logger = logging.getLogger("digest.migrations")

STATUS_RANK = {"active": 0, "paused": 1, "pending": 2, "unsubscribed": 3}
# Suppression reasons a signup cannot lift (services.LIFTABLE_SUPPRESSIONS is the complement).
BLOCKING = ("complaint", "curator")


def keyed_hash(address: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), address.encode(), hashlib.sha256).hexdigest()


def merge_order(subscriber) -> tuple:
    confirmed = subscriber.confirmed_at
    return (
        STATUS_RANK.get(subscriber.status, 9),
        confirmed is None,
        confirmed or subscriber.created_at,
        subscriber.created_at,
        subscriber.pk,
    )


def normalize_addresses(apps, schema_editor, merge=None) -> None:
    """``merge(apps, keeper=, other=)`` moves a merged row's data; later migrations that
    run this again pass one that knows their models too (0011)."""
    merge = merge or merge_into
    Subscriber = apps.get_model("digest", "Subscriber")
    Suppression = apps.get_model("digest", "Suppression")
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for pk, email in Subscriber.objects.values_list("pk", "email").iterator(chunk_size=5000):
        groups[normalize_email(email)].append((pk, email))
    merged = renamed = 0
    for normalized, rows in groups.items():
        if len(rows) == 1 and rows[0][1] == normalized:
            continue
        subscribers = sorted(Subscriber.objects.filter(pk__in=[pk for pk, _ in rows]), key=merge_order)
        keeper, others = subscribers[0], subscribers[1:]
        reasons = set(
            Suppression.objects.filter(email_hash__in=[keyed_hash(s.email) for s in subscribers]).values_list(
                "reason", flat=True
            )
        )
        for other in others:
            merge(apps, keeper=keeper, other=other)
            other.delete()
            merged += 1
        keeper.email = normalized
        blocked = [r for r in BLOCKING if r in reasons]
        if blocked and keeper.status != "unsubscribed":
            keeper.status = "unsubscribed"
            keeper.unsubscribed_at = timezone.now()
        keeper.save()
        renamed += 1
        reason = blocked[0] if blocked else next(iter(sorted(reasons)), None)
        if reason is not None:
            Suppression.objects.update_or_create(email_hash=keyed_hash(normalized), defaults={"reason": reason})
    if renamed:
        logger.warning("normalized %s subscriber addresses, merging %s look-alike rows into them", renamed, merged)


def merge_into(apps, *, keeper, other) -> None:
    ConsentRecord = apps.get_model("digest", "ConsentRecord")
    Delivery = apps.get_model("digest", "Delivery")
    SentPaper = apps.get_model("digest", "SentPaper")
    Feedback = apps.get_model("digest", "Feedback")
    ConsentRecord.objects.filter(subscriber=other).update(subscriber=keeper)
    keeper_days = dict(Delivery.objects.filter(subscriber=keeper).values_list("digest_date", "pk"))
    for delivery in Delivery.objects.filter(subscriber=other):
        if delivery.digest_date in keeper_days:
            SentPaper.objects.filter(delivery=delivery).update(delivery_id=keeper_days[delivery.digest_date])
        else:
            delivery.subscriber = keeper
            delivery.save(update_fields=["subscriber"])
    received = set(SentPaper.objects.filter(subscriber=keeper).values_list("paper_id", flat=True))
    SentPaper.objects.filter(subscriber=other, paper_id__in=received).delete()
    SentPaper.objects.filter(subscriber=other).update(subscriber=keeper)
    rated = set(Feedback.objects.filter(subscriber=keeper).values_list("paper_id", flat=True))
    Feedback.objects.filter(subscriber=other).exclude(paper_id__in=rated).update(subscriber=keeper)


class Migration(migrations.Migration):
    dependencies = [("digest", "0003_curator_group")]

    operations = [migrations.RunPython(normalize_addresses, migrations.RunPython.noop, elidable=False)]
