"""Forged provider webhooks change nobody: only the configured provider's routes answer, only
with their secret, only for events that name a recipient and the delivery sent to them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from django.test import Client

from digest import webhooks
from digest.models import Delivery, DeliveryEvent, Subscriber, Suppression
from tests import sns
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "fixtures" / "webhooks"
AUTH = "hook-user:long-random-secret"
BASIC = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(AUTH.encode()).decode()}
POSTMARK_ID = "883953f4-6105-42a2-a16a-77a8eac79483"
POSTMARK_COMPLAINT_ID = "00000000-0000-0000-0000-000000000000"
SES_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"


def sent_to(address: str, message_id: str) -> Delivery:
    return Delivery.objects.create(
        subscriber=SubscriberFactory(email=address),
        digest_date=date(2025, 11, 8),
        status=Delivery.Status.SENT,
        message_id=message_id,
    )


def nothing_changed() -> bool:
    return (
        not Suppression.objects.exists()
        and not DeliveryEvent.objects.exists()
        and not Subscriber.objects.exclude(status=Subscriber.Status.ACTIVE).exists()
        and not Subscriber.objects.exclude(bounce_count=0).exists()
    )


def post(path: str, body: str | bytes, **headers: str):
    return Client().post(path, body, content_type="application/json", **headers)


def ses_headers(envelope: dict) -> dict[str, str]:
    return {
        "HTTP_X_AMZ_SNS_MESSAGE_TYPE": envelope["Type"],
        "HTTP_X_AMZ_SNS_MESSAGE_ID": envelope["MessageId"],
        "HTTP_X_AMZ_SNS_TOPIC_ARN": envelope["TopicArn"],
    }


# --------------------------------------------------------------------------- mounting


def test_it_answers_404_for_every_provider_with_the_default_settings(settings):
    """EMAIL_PROVIDER=smtp, no secret: none of anymail's routes answer."""
    sent_to("john@example.com", POSTMARK_COMPLAINT_ID)
    body = (SAMPLES / "postmark-spam-complaint.json").read_text()

    for provider in ("postmark", "sendgrid", "amazon_ses", "mailgun", "postal"):
        path = f"/webhooks/{provider}/tracking/"
        assert post(path, body).status_code == 404, path
    for path in ("/webhooks/postmark/inbound/", "/webhooks/mandrill/", "/webhooks/mailgun/inbound_mime/"):
        assert post(path, body).status_code == 404, path
    assert nothing_changed()


def test_it_answers_404_for_a_provider_other_than_the_configured_one(settings):
    settings.EMAIL_PROVIDER = "amazon_ses"
    settings.ANYMAIL = {"WEBHOOK_SECRET": AUTH}
    sent_to("john@example.com", POSTMARK_COMPLAINT_ID)

    response = post("/webhooks/postmark/tracking/", (SAMPLES / "postmark-spam-complaint.json").read_text(), **BASIC)

    assert response.status_code == 404
    assert nothing_changed()


def test_it_answers_404_when_the_configured_providers_secret_is_missing(settings):
    settings.EMAIL_PROVIDER = "postmark"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "token"}
    sent_to("john@example.com", POSTMARK_ID)

    assert post("/webhooks/postmark/tracking/", (SAMPLES / "postmark-bounce.json").read_text()).status_code == 404
    assert nothing_changed()


@pytest.mark.parametrize(
    ("provider", "anymail", "missing"),
    [
        ("postmark", {}, "ANYMAIL_WEBHOOK_SECRET"),
        ("amazon_ses", {}, "ANYMAIL_WEBHOOK_SECRET"),
        ("mailgun", {"MAILGUN_API_KEY": "k"}, "ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY"),
        ("postal", {}, "ANYMAIL_POSTAL_WEBHOOK_KEY"),
        ("sendgrid", {}, "ANYMAIL_SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY or ANYMAIL_WEBHOOK_SECRET"),
    ],
)
def test_it_names_the_missing_setting_in_one_line(settings, provider, anymail, missing):
    settings.EMAIL_PROVIDER = provider
    settings.ANYMAIL = anymail

    line = webhooks.missing_credential()

    assert missing in line and "\n" not in line
    assert f"/webhooks/{provider}/tracking/" in line


def test_it_names_the_inbound_secret_when_the_inbound_webhook_is_read(settings):
    settings.EMAIL_PROVIDER = "mailersend"
    settings.ANYMAIL = {"MAILERSEND_SIGNING_SECRET": "s"}
    assert webhooks.missing_credential() == ""

    settings.INBOUND_WEBHOOK = True

    assert "ANYMAIL_MAILERSEND_INBOUND_SECRET is not set" in webhooks.missing_credential()
    settings.EMAIL_PROVIDER = "smtp"
    assert webhooks.missing_credential().startswith("INBOUND_WEBHOOK=true but EMAIL_PROVIDER=smtp")


def test_gunicorns_app_says_in_one_line_which_setting_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import digest.wsgi"],
        env=production_env(tmp_path, EMAIL_PROVIDER="amazon_ses"), cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "configuration warning" in line] == [
        "configuration warning: EMAIL_PROVIDER=amazon_ses but ANYMAIL_WEBHOOK_SECRET is not set: its bounce and"
        " complaint webhooks (/webhooks/amazon_ses/tracking/) answer 404 and act on nothing"
    ]


def test_it_names_nothing_when_the_provider_is_smtp_or_its_secret_is_set(settings):
    assert webhooks.missing_credential() == ""
    settings.EMAIL_PROVIDER = "postmark"
    settings.ANYMAIL = {"WEBHOOK_SECRET": AUTH}
    assert webhooks.missing_credential() == ""


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    from tests.digest.test_settings import READ_VARS

    clean = {k: v for k, v in os.environ.items() if k not in READ_VARS and not k.startswith(("DJANGO_", "ANYMAIL_"))}
    return {
        **clean,
        "DIGEST_NO_BOOTSTRAP": "1",
        "VAR_DIR": str(tmp_path),
        "DEBUG": "false",
        "SECRET_KEY": "k" * 20 + "-production-secret-with-enough-entropy-0123456789",
        "SITE_URL": "https://digest.example.org",
        "DATABASE_URL": "postgres://digest:digest@127.0.0.1:5432/digest",
        "DJANGO_SETTINGS_MODULE": "digest.settings",
        **extra,
    }


def test_the_deploy_check_says_in_one_line_which_setting_is_missing(tmp_path: Path) -> None:
    env = production_env(tmp_path, EMAIL_PROVIDER="postmark", ANYMAIL_POSTMARK_SERVER_TOKEN="token")
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    lines = [line for line in (result.stdout + result.stderr).splitlines() if "digest.W001" in line]
    assert len(lines) == 1, result.stdout + result.stderr
    assert "ANYMAIL_WEBHOOK_SECRET is not set" in lines[0]


# --------------------------------------------------------------------------- what an event must name


@pytest.fixture
def postmark(settings):
    settings.EMAIL_PROVIDER = "postmark"
    settings.ANYMAIL = {"WEBHOOK_SECRET": AUTH}


def test_a_complaint_carrying_only_a_message_id_changes_nothing(postmark):
    """The review's first attack, with the secret known: no recipient, nothing to check against."""
    sent_to("john@example.com", POSTMARK_COMPLAINT_ID)
    sample = json.loads((SAMPLES / "postmark-spam-complaint.json").read_text())
    del sample["Email"]

    assert post("/webhooks/postmark/tracking/", json.dumps(sample), **BASIC).status_code == 200

    assert nothing_changed()


def test_an_event_naming_another_recipient_changes_nothing_and_is_listed(postmark):
    sent_to("john@example.com", POSTMARK_ID)
    sample = json.loads((SAMPLES / "postmark-bounce.json").read_text())
    sample["Email"] = "mallory@example.net"

    assert post("/webhooks/postmark/tracking/", json.dumps(sample), **BASIC).status_code == 200

    assert nothing_changed()
    from digest.models import RejectedReport

    rejected = RejectedReport.objects.get()
    assert (rejected.source, rejected.kind, rejected.recipient) == ("postmark", "hard_bounce", "mallory@example.net")


@pytest.fixture
def ses(settings):
    settings.EMAIL_PROVIDER = "amazon_ses"
    settings.ANYMAIL = {"WEBHOOK_SECRET": AUTH}
    sns.trust()


def test_an_ses_complaint_without_a_valid_sns_signature_is_refused(ses):
    sent_to("recipient@example.com", SES_ID)
    envelope = json.loads((SAMPLES / "ses-sns-complaint.json").read_text())  # Amazon's placeholder signature

    response = post("/webhooks/amazon_ses/tracking/", json.dumps(envelope), **BASIC, **ses_headers(envelope))

    assert response.status_code == 400
    assert nothing_changed()


def test_an_ses_complaint_altered_after_signing_is_refused(ses):
    sent_to("recipient@example.com", SES_ID)
    envelope = sns.sign(json.loads((SAMPLES / "ses-sns-complaint.json").read_text()))
    envelope["Message"] = envelope["Message"].replace("abuse", "fraud")

    response = post("/webhooks/amazon_ses/tracking/", json.dumps(envelope), **BASIC, **ses_headers(envelope))

    assert response.status_code == 400
    assert nothing_changed()


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://s3.amazonaws.com/bucket/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com/elsewhere/cert.pem",
    ],
)
def test_a_signing_certificate_from_anywhere_but_amazon_sns_is_refused(ses, url, monkeypatch):
    from digest.mail import sns as service

    fetched = []
    monkeypatch.setattr(service, "_download", lambda u: fetched.append(u) or sns.certificate_pem())
    sent_to("recipient@example.com", SES_ID)
    envelope = {**sns.sign(json.loads((SAMPLES / "ses-sns-complaint.json").read_text())), "SigningCertURL": url}

    response = post("/webhooks/amazon_ses/tracking/", json.dumps(envelope), **BASIC, **ses_headers(envelope))

    assert response.status_code == 400
    assert fetched == []
    assert nothing_changed()


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_ses_complaint_suppresses_exactly_its_recipient(ses, version):
    delivery = sent_to("recipient@example.com", SES_ID)
    bystander = sent_to("other@example.com", "other-ses-id")
    envelope = sns.sign(json.loads((SAMPLES / "ses-sns-complaint.json").read_text()), version=version)

    response = post("/webhooks/amazon_ses/tracking/", json.dumps(envelope), **BASIC, **ses_headers(envelope))

    assert response.status_code == 200
    assert Subscriber.objects.get(pk=delivery.subscriber_id).status == Subscriber.Status.UNSUBSCRIBED
    assert Subscriber.objects.get(pk=bystander.subscriber_id).status == Subscriber.Status.ACTIVE
    assert Suppression.objects.get().reason == Suppression.Reason.COMPLAINT


def test_a_certificate_is_downloaded_once_and_then_read_from_the_cache(ses, monkeypatch):
    from django.core.cache import cache

    from digest.mail import sns as service

    cache.clear()
    fetched = []
    monkeypatch.setattr(service, "_download", lambda u: fetched.append(u) or sns.certificate_pem())
    envelope = sns.sign(json.loads((SAMPLES / "ses-sns-transient-bounce.json").read_text()))

    for _ in range(2):
        response = post("/webhooks/amazon_ses/tracking/", json.dumps(envelope), **BASIC, **ses_headers(envelope))
        assert response.status_code == 200

    assert fetched == [sns.CERT_URL]


# --------------------------------------------------------------------------- bodies that do not parse

MALFORMED = {"bad json": b"{not json", "a list": b'["x", 1]', "invalid utf-8": b'{"Type": "\xff\xfe"}'}
MOUNTED = {
    "postmark tracking": ("postmark", "/webhooks/postmark/tracking/", {"WEBHOOK_SECRET": AUTH}),
    "postmark inbound": ("postmark", "/webhooks/postmark/inbound/", {"WEBHOOK_SECRET": AUTH}),
    "sendgrid tracking": ("sendgrid", "/webhooks/sendgrid/tracking/", {"WEBHOOK_SECRET": AUTH}),
    "ses tracking": ("amazon_ses", "/webhooks/amazon_ses/tracking/", {"WEBHOOK_SECRET": AUTH}),
    "mailgun tracking": ("mailgun", "/webhooks/mailgun/tracking/", {"MAILGUN_WEBHOOK_SIGNING_KEY": "k" * 32}),
    "postal tracking": ("postal", "/webhooks/postal/tracking/", {"POSTAL_WEBHOOK_KEY": "a2V5"}),
    "brevo tracking": ("brevo", "/webhooks/brevo/tracking/", {"WEBHOOK_SECRET": AUTH}),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("route", MOUNTED.values(), ids=MOUNTED.keys())
def test_a_body_that_does_not_parse_answers_400_on_every_mounted_route(settings, route, body):
    provider, path, anymail = route
    settings.EMAIL_PROVIDER = provider
    settings.ANYMAIL = anymail
    settings.INBOUND_WEBHOOK = True
    headers = {**BASIC, "HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification", "HTTP_X_AMZ_SNS_MESSAGE_ID": "x"}

    response = Client(raise_request_exception=False).post(path, body, content_type="application/json", **headers)

    assert response.status_code == 400


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("provider", ["mailgun", "postal"])
def test_a_body_that_does_not_parse_answers_404_where_nothing_is_mounted(settings, provider, body):
    settings.EMAIL_PROVIDER = provider
    settings.ANYMAIL = {}

    response = Client(raise_request_exception=False).post(
        f"/webhooks/{provider}/tracking/", body, content_type="application/json"
    )

    assert response.status_code == 404
