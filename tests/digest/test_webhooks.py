"""Providers' tracking webhooks (/webhooks/<provider>/tracking/) replaying their documented sample payloads."""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path

import pytest
from django.test import Client, override_settings

from digest.models import Delivery, DeliveryEvent, Subscriber, Suppression, email_hash
from tests import sns
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
AUTH = "hook-user:long-random-secret"
POSTMARK_ID = "883953f4-6105-42a2-a16a-77a8eac79483"
POSTMARK_COMPLAINT_ID = "00000000-0000-0000-0000-000000000000"
SES_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    # The webhooks answer only for the configured provider, and only with its secret set.
    settings.EMAIL_PROVIDER = "postmark"
    settings.ANYMAIL = {"WEBHOOK_SECRET": AUTH}
    sns.trust()


def post(provider: str, sample: str, *, auth: str = AUTH, client: Client | None = None, signed: bool = True):
    body = (SAMPLES / sample).read_text()
    headers = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    if provider == "amazon_ses":  # the headers SNS sends with every HTTP(S) notification
        envelope = json.loads(body)
        headers["HTTP_X_AMZ_SNS_MESSAGE_TYPE"] = envelope["Type"]
        headers["HTTP_X_AMZ_SNS_MESSAGE_ID"] = envelope["MessageId"]
        headers["HTTP_X_AMZ_SNS_TOPIC_ARN"] = envelope["TopicArn"]
        if signed:  # as Amazon SNS signs it (the documented samples carry placeholder signatures)
            body = json.dumps(sns.sign(envelope))
    with override_settings(EMAIL_PROVIDER=provider):
        return (client or Client()).post(
            f"/webhooks/{provider}/tracking/", body, content_type="application/json", **headers
        )


def sent_to(address: str, message_id: str) -> Delivery:
    subscriber = SubscriberFactory(email=address)
    return Delivery.objects.create(
        subscriber=subscriber, digest_date=date(2025, 11, 8), status=Delivery.Status.SENT, message_id=message_id
    )


def reason(address: str) -> str | None:
    row = Suppression.objects.filter(email_hash=email_hash(address)).first()
    return row.reason if row else None


def status(delivery: Delivery) -> str:
    return Subscriber.objects.get(pk=delivery.subscriber_id).status


def test_a_postmark_hard_bounce_suppresses_the_address(settings):
    delivery = sent_to("john@example.com", POSTMARK_ID)

    response = post("postmark", "postmark-bounce.json")

    assert response.status_code == 200
    assert reason("john@example.com") == "bounced"
    assert status(delivery) == Subscriber.Status.UNSUBSCRIBED
    assert DeliveryEvent.objects.get().source == "postmark"


def test_a_postmark_spam_complaint_suppresses_with_its_reason():
    delivery = sent_to("john@example.com", POSTMARK_COMPLAINT_ID)

    assert post("postmark", "postmark-spam-complaint.json").status_code == 200

    assert reason("john@example.com") == "complaint"
    assert status(delivery) == Subscriber.Status.UNSUBSCRIBED


def test_a_postmark_soft_bounce_only_counts(settings):
    settings.DIGEST_BOUNCE_LIMIT = 3
    delivery = sent_to("john@example.com", POSTMARK_ID)

    post("postmark", "postmark-soft-bounce.json")

    subscriber = Subscriber.objects.get(pk=delivery.subscriber_id)
    assert (subscriber.bounce_count, subscriber.status, reason("john@example.com")) == (1, "active", None)


def test_a_retried_webhook_is_applied_once(settings):
    settings.DIGEST_BOUNCE_LIMIT = 3
    delivery = sent_to("john@example.com", POSTMARK_ID)

    for _ in range(3):
        assert post("postmark", "postmark-soft-bounce.json").status_code == 200

    assert Subscriber.objects.get(pk=delivery.subscriber_id).bounce_count == 1
    assert DeliveryEvent.objects.count() == 1


def test_a_webhook_without_the_secret_is_refused_and_changes_nothing():
    delivery = sent_to("john@example.com", POSTMARK_ID)

    assert post("postmark", "postmark-bounce.json", auth="").status_code in (400, 401, 403)
    assert post("postmark", "postmark-bounce.json", auth="hook-user:guess").status_code in (400, 401, 403)

    assert reason("john@example.com") is None
    assert status(delivery) == Subscriber.Status.ACTIVE
    assert DeliveryEvent.objects.count() == 0


def test_an_event_for_a_message_we_never_sent_changes_nothing():
    other = sent_to("john@example.com", "some-other-message-id")

    assert post("postmark", "postmark-bounce.json").status_code == 200

    assert reason("john@example.com") is None
    assert status(other) == Subscriber.Status.ACTIVE


def test_an_ses_bounce_via_sns_suppresses_the_address():
    delivery = sent_to("recipient@example.com", SES_ID)

    response = post("amazon_ses", "ses-sns-bounce.json")

    assert response.status_code == 200
    assert reason("recipient@example.com") == "bounced"
    assert status(delivery) == Subscriber.Status.UNSUBSCRIBED
    assert "5.1.1 user unknown" in DeliveryEvent.objects.get().detail


def test_an_ses_complaint_via_sns_suppresses_with_its_reason():
    sent_to("recipient@example.com", SES_ID)

    post("amazon_ses", "ses-sns-complaint.json")

    assert reason("recipient@example.com") == "complaint"


def test_an_ses_transient_bounce_only_counts(settings):
    settings.DIGEST_BOUNCE_LIMIT = 3
    delivery = sent_to("recipient@example.com", SES_ID)

    post("amazon_ses", "ses-sns-transient-bounce.json")

    subscriber = Subscriber.objects.get(pk=delivery.subscriber_id)
    assert (subscriber.bounce_count, reason("recipient@example.com")) == (1, None)


def postmark_inbound(subject: str) -> str:
    """Postmark's documented inbound webhook shape, to the unsubscribe address."""
    return json.dumps(
        {
            "FromName": "Ann",
            "MessageStream": "inbound",
            "From": "ann@example.org",
            "FromFull": {"Email": "ann@example.org", "Name": "Ann", "MailboxHash": ""},
            "To": "unsubscribe@digest.example.org",
            "ToFull": [{"Email": "unsubscribe@digest.example.org", "Name": "", "MailboxHash": ""}],
            "Cc": "",
            "CcFull": [],
            "Bcc": "",
            "BccFull": [],
            "OriginalRecipient": "unsubscribe@digest.example.org",
            "Subject": subject,
            "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b",
            "ReplyTo": "",
            "MailboxHash": "",
            "Date": "Sat, 8 Nov 2025 08:01:02 +0000",
            "TextBody": "",
            "HtmlBody": "",
            "StrippedTextReply": "",
            "Tag": "",
            "Headers": [
                {"Name": "X-Spam-Status", "Value": "No"},
                {"Name": "Message-ID", "Value": "<CAE1mWw8f@mail.example.org>"},
            ],
            "Attachments": [],
        }
    )


@pytest.mark.parametrize("read", [True, False])
def test_a_mailto_unsubscribe_through_the_providers_inbound_webhook(settings, read):
    from digest import tokens

    settings.INBOUND_WEBHOOK = read
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@digest.example.org"
    ann = SubscriberFactory(email="ann@example.org")
    subject = tokens.list_unsubscribe(ann)["List-Unsubscribe"].split("subject=", 1)[1].rstrip(">")

    response = Client().post(
        "/webhooks/postmark/inbound/",
        postmark_inbound(subject),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(AUTH.encode()).decode(),
    )

    assert response.status_code == 200
    expected = Subscriber.Status.UNSUBSCRIBED if read else Subscriber.Status.ACTIVE
    assert Subscriber.objects.get(pk=ann.pk).status == expected


def test_a_bounce_blocked_by_policy_only_counts_as_soft(settings):
    """Postmark's "Blocked" type (the receiver refused on reputation or content) is no verdict on the address."""
    settings.DIGEST_BOUNCE_LIMIT = 3
    delivery = sent_to("john@example.com", POSTMARK_ID)
    sample = json.loads((SAMPLES / "postmark-bounce.json").read_text())
    sample.update(Type="Blocked", TypeCode=100001, Name="ISP block")
    body = json.dumps(sample)

    response = Client().post(
        "/webhooks/postmark/tracking/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(AUTH.encode()).decode(),
    )

    assert response.status_code == 200
    subscriber = Subscriber.objects.get(pk=delivery.subscriber_id)
    assert (subscriber.bounce_count, subscriber.status, reason("john@example.com")) == (1, "active", None)
