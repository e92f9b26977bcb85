"""One service for bounces, complaints and unsubscribes that arrive after the send."""

from datetime import date

import pytest

from digest import events, services, tokens
from digest.models import Delivery, DeliveryEvent, Subscriber, Suppression, email_hash
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

DAY = date(2025, 11, 8)


def sent(subscriber: Subscriber, message_id: str = "") -> Delivery:
    return Delivery.objects.create(
        subscriber=subscriber,
        digest_date=DAY,
        status=Delivery.Status.SENT,
        message_id=message_id or f"<digest.{subscriber.pk}.20251108@digest.example.org>",
    )


def event(delivery: Delivery, kind: str, *, event_id: str = "e1", source: str = "postmark", **extra) -> events.Event:
    return events.Event(
        source=source,
        event_id=event_id,
        kind=kind,
        message_id=delivery.message_id,
        recipient=delivery.subscriber.email,
        **extra,
    )


def suppression(subscriber: Subscriber) -> str | None:
    row = Suppression.objects.filter(email_hash=email_hash(subscriber.email)).first()
    return row.reason if row else None


def test_it_suppresses_a_hard_bounce_at_once_and_skips_queued_digests():
    ann = SubscriberFactory()
    delivery = sent(ann)
    queued = Delivery.objects.create(subscriber=ann, digest_date=date(2025, 11, 9))

    assert events.event_record(event(delivery, "hard_bounce", detail="5.1.1 user unknown")) == "applied"

    ann.refresh_from_db()
    delivery.refresh_from_db()
    queued.refresh_from_db()
    assert ann.status == Subscriber.Status.UNSUBSCRIBED
    assert suppression(ann) == Suppression.Reason.BOUNCED
    assert delivery.status == Delivery.Status.BOUNCED
    assert "5.1.1 user unknown" in delivery.error
    assert queued.status == Delivery.Status.SKIPPED


def test_a_complaint_stops_every_future_email_including_confirmations(signup, mailoutbox):
    ann = SubscriberFactory(email="ann@example.org")
    delivery = sent(ann)

    assert events.event_record(event(delivery, "complaint")) == "applied"

    assert suppression(ann) == Suppression.Reason.COMPLAINT
    assert DeliveryEvent.objects.get().kind == "complaint"
    mailoutbox.clear()
    signup(email="ann@example.org")  # a new signup of the address, by anyone
    assert mailoutbox == []
    assert Subscriber.objects.get(pk=ann.pk).status == Subscriber.Status.UNSUBSCRIBED


def test_a_complaint_replaces_an_earlier_bounce_suppression_but_not_a_curators_block():
    ann, bob = SubscriberFactory(), SubscriberFactory()
    Suppression.objects.create(email_hash=email_hash(ann.email), reason=Suppression.Reason.BOUNCED)
    Suppression.objects.create(email_hash=email_hash(bob.email), reason=Suppression.Reason.CURATOR)

    events.event_record(event(sent(ann), "complaint"))
    events.event_record(event(sent(bob), "complaint", event_id="e2"))

    assert (suppression(ann), suppression(bob)) == ("complaint", "curator")


def test_soft_bounces_count_toward_the_bounce_limit(settings):
    settings.DIGEST_BOUNCE_LIMIT = 2
    ann = SubscriberFactory()
    first = sent(ann)
    second = Delivery.objects.create(
        subscriber=ann, digest_date=date(2025, 11, 9), status=Delivery.Status.SENT, message_id="<second@x>"
    )

    events.event_record(event(first, "soft_bounce", event_id="s1"))
    ann.refresh_from_db()
    assert (ann.bounce_count, ann.status, suppression(ann)) == (1, "active", None)

    events.event_record(event(second, "soft_bounce", event_id="s2"))
    ann.refresh_from_db()
    assert (ann.bounce_count, ann.status, suppression(ann)) == (2, "unsubscribed", "bounced")


def test_a_retried_webhook_changes_nothing_the_second_time(settings):
    settings.DIGEST_BOUNCE_LIMIT = 5
    ann = SubscriberFactory()
    delivery = sent(ann)

    assert events.event_record(event(delivery, "soft_bounce", event_id="same")) == "applied"
    assert events.event_record(event(delivery, "soft_bounce", event_id="same")) == "duplicate"

    ann.refresh_from_db()
    assert ann.bounce_count == 1
    assert DeliveryEvent.objects.count() == 1


def test_the_same_bounce_from_two_sources_counts_once(settings):
    settings.DIGEST_BOUNCE_LIMIT = 5
    ann = SubscriberFactory()
    delivery = sent(ann)

    events.event_record(event(delivery, "soft_bounce", source="postmark", event_id="p1"))
    events.event_record(event(delivery, "soft_bounce", source="imap", event_id="<dsn@relay>"))

    ann.refresh_from_db()
    assert ann.bounce_count == 1


def test_an_unknown_message_id_changes_nothing():
    ann = SubscriberFactory()
    sent(ann)

    outcome = events.event_record(
        events.Event(source="postmark", event_id="x", kind="complaint", message_id="<nobody@x>", recipient=ann.email)
    )

    assert outcome == "unmatched"
    assert DeliveryEvent.objects.count() == 0
    assert Subscriber.objects.get(pk=ann.pk).status == Subscriber.Status.ACTIVE
    assert suppression(ann) is None


def test_a_report_for_another_recipient_quoting_our_message_id_changes_nothing():
    ann = SubscriberFactory()
    delivery = sent(ann)

    outcome = events.event_record(
        events.Event(
            source="imap",
            event_id="f",
            kind="hard_bounce",
            message_id=delivery.message_id,
            recipient="mallory@x.example",
        )
    )

    assert outcome == "unmatched"
    assert Subscriber.objects.get(pk=ann.pk).status == Subscriber.Status.ACTIVE


def test_an_unsubscribe_event_unsubscribes():
    ann = SubscriberFactory()

    events.event_record(event(sent(ann), "unsubscribe"))

    assert Subscriber.objects.get(pk=ann.pk).status == Subscriber.Status.UNSUBSCRIBED
    assert suppression(ann) is None  # an unsubscribe is not a block: they may sign up again


def test_a_mailto_unsubscribe_names_its_subscriber_by_token():
    ann = SubscriberFactory()
    token = tokens.make_token(ann, "unsubscribe")

    outcome = events.event_record(events.Event(source="imap", event_id="<u@x>", kind="unsubscribe", token=token))

    assert outcome == "applied"
    assert Subscriber.objects.get(pk=ann.pk).status == Subscriber.Status.UNSUBSCRIBED


def test_a_forged_unsubscribe_token_changes_nothing():
    ann = SubscriberFactory()
    token = tokens.make_token(ann, "unsubscribe")[:-2] + "xx"

    outcome = events.event_record(events.Event(source="imap", event_id="<u@x>", kind="unsubscribe", token=token))

    assert outcome == "unmatched"
    assert Subscriber.objects.get(pk=ann.pk).status == Subscriber.Status.ACTIVE


def test_a_hard_bounce_suppression_may_be_lifted_by_a_new_confirmed_signup():
    """Unlike a complaint: the person proves the mailbox works again (services.LIFTABLE_SUPPRESSIONS)."""
    ann = SubscriberFactory()
    events.event_record(event(sent(ann), "hard_bounce"))

    assert (
        services.subscriber_subscribe(email=ann.email, preferences={}, ip=None, user_agent="", form_version="t")
        == "confirmation"
    )
