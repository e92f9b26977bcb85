"""What the receiving server says during the send, and the Message-ID a digest leaves with."""

from __future__ import annotations

import re
from datetime import date

import pytest

from digest import events, sending
from digest.mail import verp
from digest.models import Delivery, DeliveryEvent, Subscriber, Suppression
from tests.digest.conftest import DIGEST_DAY
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def one(subscriber: Subscriber, day: date = DIGEST_DAY) -> int:
    return Delivery.objects.create(subscriber=subscriber, digest_date=day).pk


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_it_suppresses_an_address_refused_as_unknown_at_once(smtp_server, ready_day, settings, stage):
    settings.DIGEST_BOUNCE_LIMIT = 3
    ann = SubscriberFactory(email="ann@example.org", topics=[])
    smtp_server.reply("ann@example.org", "550 5.1.1 <ann@example.org>: No such user", stage=stage)
    delivery_id = one(ann)
    queued = Delivery.objects.create(subscriber=ann, digest_date=date(2025, 11, 9), status=Delivery.Status.WAITING)

    report = sending.send_batch([delivery_id])

    assert report.bounced == 1
    ann.refresh_from_db()
    assert ann.status == Subscriber.Status.UNSUBSCRIBED
    assert Suppression.objects.get().reason == Suppression.Reason.BOUNCED
    assert Delivery.objects.get(pk=delivery_id).status == Delivery.Status.BOUNCED
    queued.refresh_from_db()
    assert queued.status == Delivery.Status.SKIPPED
    assert DeliveryEvent.objects.get().kind == DeliveryEvent.Kind.HARD_BOUNCE


def test_a_later_dsn_for_a_refused_address_changes_nothing_more(smtp_server, ready_day):
    ann = SubscriberFactory(email="ann@example.org", topics=[])
    smtp_server.reply("ann@example.org", "550 5.1.1 No such user")
    delivery_id = one(ann)
    sending.send_batch([delivery_id])

    outcome = events.event_record(
        events.Event(source="imap", event_id="<dsn@relay>", kind="hard_bounce", delivery_id=delivery_id,
                     recipient="ann@example.org")
    )  # fmt: skip

    assert outcome == "applied"  # stored, and nothing applied twice
    assert Suppression.objects.count() == 1
    assert Subscriber.objects.get(pk=ann.pk).bounce_count == 1


@pytest.mark.parametrize(
    "reply",
    ["550 5.7.1 Rejected by policy", "552 5.3.4 Message too big", "554 Transaction failed", "550 5.1.8 Bad sender"],
)
def test_a_5xx_that_is_no_verdict_on_the_address_only_counts(smtp_server, ready_day, settings, reply):
    settings.DIGEST_BOUNCE_LIMIT = 3
    ann = SubscriberFactory(email="ann@example.org", topics=[])
    smtp_server.reply("ann@example.org", reply)

    sending.send_batch([one(ann)])

    ann.refresh_from_db()
    assert (ann.status, ann.bounce_count, Suppression.objects.count()) == ("active", 1, 0)


def test_a_4xx_refusal_neither_suppresses_nor_bounces(smtp_server, ready_day, settings):
    settings.DIGEST_MAX_ATTEMPTS = 1
    ann = SubscriberFactory(email="ann@example.org", topics=[])
    smtp_server.reply("ann@example.org", "450 4.1.1 Mailbox unavailable, try later")
    delivery_id = one(ann)

    sending.send_batch([delivery_id])

    ann.refresh_from_db()
    assert (ann.status, Suppression.objects.count()) == ("active", 0)
    assert Delivery.objects.get(pk=delivery_id).status == Delivery.Status.FAILED


def test_it_gives_each_digest_a_message_id_nobody_can_derive_from_its_delivery_and_date(smtp_server, ready_day):
    ann = SubscriberFactory(email="ann@example.org", topics=[])
    delivery_id = one(ann)

    sending.send_batch([delivery_id])

    sent = str(smtp_server.to("ann@example.org")[0].message()["Message-ID"])
    assert sent != f"<digest.{delivery_id}.{DIGEST_DAY:%Y%m%d}@{sent.rsplit('@', 1)[1]}"
    assert re.fullmatch(rf"<digest\.{delivery_id}\.[0-9a-f]{{20}}\.{DIGEST_DAY:%Y%m%d}@[^<>@]+>", sent)
    assert verp.message_id_delivery(sent) == delivery_id
    assert Delivery.objects.get(pk=delivery_id).message_id == sent


def test_a_message_id_with_a_wrong_key_names_no_delivery(settings):
    genuine = verp.message_id(42, DIGEST_DAY, "digest.example.org")
    settings.SECRET_KEY = "another-install-" * 4

    assert verp.message_id_delivery(genuine) is None
    assert verp.message_id_delivery(genuine.replace(".42.", ".43.")) is None
