"""EMAIL_PROVIDER: digests and confirmations through django-anymail to providers' APIs served on 127.0.0.1.

One JSON API (Postmark) and Amazon SES (v2, SigV4 over JSON): success records the
provider's message id, 429 / 5xx are retried, a refused recipient is a hard bounce,
refused credentials stop the batch, and a request whose answer never came is stuck.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator

import pytest

from digest import sending
from digest.models import Delivery, Subscriber
from tests.factories import SubscriberFactory
from tests.providers import PostmarkServer, SesServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def postmark(settings, fast_sending) -> Iterator[PostmarkServer]:
    server = PostmarkServer().start()
    settings.EMAIL_PROVIDER = "postmark"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token-1", "POSTMARK_API_URL": server.url + "/"}
    settings.DIGEST_FROM_EMAIL = "Paper Digest <digest@digest.example.org>"
    yield server
    server.stop()


@pytest.fixture
def ses(settings, fast_sending) -> Iterator[SesServer]:
    server = SesServer().start()
    settings.EMAIL_PROVIDER = "amazon_ses"
    settings.ANYMAIL = {
        "AMAZON_SES_CLIENT_PARAMS": {
            "endpoint_url": server.url,
            "region_name": "eu-west-1",
            "aws_access_key_id": "AKIDEXAMPLE",
            "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            # The Mailer retries (DIGEST_SMTP_RETRIES), as over SMTP; boto3's own retries would multiply them.
            "config": {"retries": {"mode": "standard", "max_attempts": 1}},
        }
    }
    settings.DIGEST_FROM_EMAIL = "Paper Digest <digest@digest.example.org>"
    yield server
    server.stop()


def one_digest(day) -> Delivery:
    ann = SubscriberFactory(email="ann@example.org", topics=["video generation"])
    delivery = Delivery.objects.create(subscriber=ann, digest_date=day)
    return delivery


# --------------------------------------------------------------------------- Postmark (JSON API)


def test_postmark_takes_the_digest_and_its_message_id_is_recorded(postmark, ready_day):
    delivery = one_digest(ready_day)

    report = sending.send_batch([delivery.pk])

    assert report.sent == 1
    [payload] = postmark.sent()
    assert postmark.requests[0].headers["x-postmark-server-token"] == "server-token-1"
    assert payload["To"] == "ann@example.org"
    assert "Thinking with Video" in payload["Subject"]
    assert "Thinking with Video" in payload["HtmlBody"] and "Thinking with Video" in payload["TextBody"]
    headers = {h["Name"]: h["Value"] for h in payload["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<http")
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.message_id and "@" not in delivery.message_id  # Postmark's uuid, what its webhooks name


def test_postmark_429_and_500_are_retried(postmark, ready_day, settings):
    settings.DIGEST_SMTP_RETRIES = 3
    postmark.reply(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"})
    postmark.reply(500, {"ErrorCode": 500, "Message": "Internal server error"})
    delivery = one_digest(ready_day)

    report = sending.send_batch([delivery.pk])

    assert report.sent == 1
    assert len(postmark.sent()) == 3
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SENT, 1)


def test_postmark_failing_every_retry_leaves_the_row_pending_for_the_next_run(postmark, ready_day, settings):
    settings.DIGEST_SMTP_RETRIES = 2
    postmark.reply(503, {"ErrorCode": 503, "Message": "Service unavailable"}, times=2)
    delivery = one_digest(ready_day)

    sending.send_batch([delivery.pk])

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING
    assert "503" in delivery.error


def test_postmark_inactive_recipient_is_a_hard_bounce(postmark, ready_day):
    postmark.reply(
        422,
        {
            "ErrorCode": 406,
            "Message": "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
            "addresses: ann@example.org. Inactive recipients are ones that have generated a hard bounce, "
            "a spam complaint, or a manual suppression.",
        },
    )
    delivery = one_digest(ready_day)

    report = sending.send_batch([delivery.pk])

    assert report.bounced == 1
    assert len(postmark.sent()) == 1  # a permanent refusal is not retried
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED
    assert Subscriber.objects.get(pk=delivery.subscriber_id).bounce_count == 1


def test_postmark_refusing_our_token_stops_the_batch_without_bouncing_anyone(postmark, ready_day):
    postmark.reply(401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."}, times=10)
    delivery = one_digest(ready_day)

    report = sending.send_batch([delivery.pk])

    assert report.bounced == 0 and report.stopped
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING
    assert Subscriber.objects.get(pk=delivery.subscriber_id).bounce_count == 0


def test_a_provider_that_never_answers_leaves_the_row_stuck_not_resent(postmark, ready_day, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": 0.5}
    postmark.reply(200, {"MessageID": "late", "ErrorCode": 0, "Message": "OK"}, delay=2)
    delivery = one_digest(ready_day)

    report = sending.send_batch([delivery.pk])

    assert report.stuck == 1
    assert len(postmark.sent()) == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.STUCK


def test_confirmations_go_through_the_provider_too(postmark, settings, signup):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"  # what settings.py picks for it

    signup(email="bea@example.org")

    [payload] = postmark.sent()
    assert payload["To"] == "bea@example.org"
    assert "/confirm/" in payload["TextBody"]


# --------------------------------------------------------------------------- Amazon SES (v2)


def test_ses_takes_the_raw_digest_and_its_message_id_is_recorded(ses, ready_day):
    delivery = one_digest(ready_day)

    report = sending.send_batch([delivery.pk])

    assert report.sent == 1
    assert ses.requests[0].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    [raw] = ses.raw_messages()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(message["To"]) == "ann@example.org"
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert "Thinking with Video" in message.get_body(("html",)).get_content()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.message_id.startswith("0100019a")


def test_ses_throttling_and_5xx_are_retried(ses, ready_day, settings):
    settings.DIGEST_SMTP_RETRIES = 3
    ses.error(429, "TooManyRequestsException", "Maximum sending rate exceeded.")
    ses.error(500, "InternalFailure", "The request processing has failed because of an unknown error.")
    delivery = one_digest(ready_day)

    report = sending.send_batch([delivery.pk])

    assert report.sent == 1
    assert len(ses.raw_messages()) == 3


def test_ses_message_rejected_is_a_hard_bounce(ses, ready_day):
    ses.error(400, "MessageRejected", "Email address is not verified. The following identities failed the check")
    delivery = one_digest(ready_day)

    report = sending.send_batch([delivery.pk])

    assert report.bounced == 1
    assert len(ses.raw_messages()) == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED
    assert "MessageRejected" in delivery.error
