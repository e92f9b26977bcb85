"""Forged mail in the bounce mailbox changes nobody: a report acts only with a verified VERP
return path or the keyed Message-ID sent to the very recipient it names (real dovecot)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import date
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from digest import inbound, selectors, tokens
from digest.models import Delivery, DeliveryEvent, Subscriber, Suppression
from tests.digest.test_inbound import PEOPLE, SAMPLES, dovecot, people  # noqa: F401 - the fixture
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

DAY = date(2025, 11, 8)
DEV_KEY = "dev-only-insecure-key-do-not-use-in-production"
CLAIMS = ("postfix-5.1.1-user-unknown.eml", "gmail-5.1.1-no-such-account.eml", "m365-5.2.2-mailbox-full.eml",
          "postfix-4.4.1-expired.eml", "yahoo-arf-abuse.eml", "rfc5965-arf-abuse.eml", "forged-dsn.eml")  # fmt: skip


def nothing_changed() -> bool:
    return (
        not Suppression.objects.exists()
        and not DeliveryEvent.objects.exists()
        and not Subscriber.objects.exclude(status=Subscriber.Status.ACTIVE).exists()
        and not Subscriber.objects.exclude(bounce_count=0).exists()
    )


def test_reports_quoting_guessable_message_ids_change_nothing_and_are_listed(dovecot):  # noqa: F811
    """The samples quote <digest.<id>.<date>@...> as digests were once sent: anyone could write that."""
    who = people()
    for address, old_id in PEOPLE.items():  # as if sent before Message-IDs were keyed
        Delivery.objects.filter(subscriber=who[address]).update(
            message_id=f"<digest.{old_id}.20251108@digest.example.org>"
        )
    for name in CLAIMS:
        dovecot.deliver((SAMPLES / name).read_bytes())

    report = inbound.inbound_read()

    assert (report.read, report.applied, report.left) == (len(CLAIMS), 0, len(CLAIMS))
    assert nothing_changed()
    from digest.models import RejectedReport

    assert RejectedReport.objects.count() == len(CLAIMS)
    assert set(RejectedReport.objects.values_list("kind", flat=True)) == {"hard_bounce", "soft_bounce", "complaint"}
    board = selectors.dashboard(today=timezone.localdate(), now=timezone.now())
    assert any(p.startswith(f"{len(CLAIMS)} bounce, complaint or unsubscribe report(s)") for p in board.problems)
    # Read again: nothing new, nothing listed twice.
    inbound.inbound_read()
    assert RejectedReport.objects.count() == len(CLAIMS)


def dev_signed_return_path(delivery_id: int) -> str:
    """What the published DEBUG key signs (and what the service accepted before)."""
    signature = hmac.new(DEV_KEY.encode(), f"verp:{delivery_id}".encode(), hashlib.sha256).hexdigest()[:10]
    return f"bounces+d{delivery_id}-{signature}@digest.example.org"


def test_a_return_path_signed_with_the_published_debug_key_is_left(dovecot, settings):  # noqa: F811
    settings.SECRET_KEY = DEV_KEY  # a DEBUG install without SECRET_KEY
    hal = SubscriberFactory(email="hal@example.org")
    delivery = Delivery.objects.create(subscriber=hal, digest_date=DAY, status=Delivery.Status.SENT)
    forged = dev_signed_return_path(delivery.pk)
    dovecot.deliver((SAMPLES / "postfix-verp-5.7.1.eml").read_bytes().replace(b"%RETURN_PATH%", forged.encode()))

    report = inbound.inbound_read()

    assert (report.applied, report.left) == (0, 1)
    assert nothing_changed()


def test_a_debug_install_signs_with_a_key_of_its_own_kept_in_var(settings, tmp_path: Path):
    from digest.mail import verp

    settings.SECRET_KEY = DEV_KEY
    settings.VAR_DIR = tmp_path / "one"
    first = verp.return_path("bounces@digest.example.org", 7)
    assert verp.delivery_id(first, "bounces@digest.example.org") == 7
    assert first != dev_signed_return_path(7)
    assert (tmp_path / "one" / "mail-signing.key").stat().st_mode & 0o077 == 0

    settings.VAR_DIR = tmp_path / "two"  # another install
    assert verp.delivery_id(first, "bounces@digest.example.org") is None


def mailto(sender: str, subject: str, message_id: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: unsubscribe@digest.example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\nDate: Sat, 08 Nov 2025 08:00:00 +0000\r\n\r\n\r\n"
    ).encode()


def test_a_mailto_unsubscribe_needs_the_token_sent_to_that_subscriber(dovecot):  # noqa: F811
    ann = SubscriberFactory(email="ann@example.org")
    bob = SubscriberFactory(email="bob@example.org")
    token = tokens.list_unsubscribe(ann)["List-Unsubscribe"].split("subject=", 1)[1].rstrip(">")
    # Bob's id with ann's signature, ann's token altered, and a token of another purpose.
    signature = token.removeprefix("unsubscribe-").partition(":")[2]
    bobs_id = base64.urlsafe_b64encode(json.dumps({"s": bob.pk}).encode()).decode().rstrip("=")
    forged = [f"unsubscribe-{bobs_id}:{signature}", token[:-2] + "xx",
              f"unsubscribe-{tokens.make_token(bob, 'manage')}"]  # fmt: skip
    for n, subject in enumerate(forged):
        dovecot.deliver(mailto("Mallory <m@example.net>", subject, f"forged-{n}@example.net"))

    report = inbound.inbound_read()

    assert (report.applied, report.left) == (0, 3)
    assert nothing_changed()

    dovecot.deliver(mailto("Ann <ann@example.org>", token, "ann-1@example.org"))
    assert inbound.inbound_read().applied == 1
    assert Subscriber.objects.get(pk=ann.pk).status == Subscriber.Status.UNSUBSCRIBED
    assert Subscriber.objects.get(pk=bob.pk).status == Subscriber.Status.ACTIVE


def test_a_forged_dsn_posted_to_the_providers_inbound_webhook_changes_nothing(settings):
    settings.EMAIL_PROVIDER = "postmark"
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:secret"}
    settings.INBOUND_WEBHOOK = True
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@digest.example.org"
    ann = SubscriberFactory(email="ann@example.org")
    Delivery.objects.create(subscriber=ann, digest_date=DAY, status=Delivery.Status.SENT,
                            message_id="<digest.1201.20251108@digest.example.org>")  # fmt: skip
    raw = (SAMPLES / "postfix-5.1.1-user-unknown.eml").read_text()
    payload = {
        "From": "MAILER-DAEMON@relay.example.net",
        "FromFull": {"Email": "MAILER-DAEMON@relay.example.net", "Name": ""},
        "To": "unsubscribe@digest.example.org",
        "ToFull": [{"Email": "unsubscribe@digest.example.org", "Name": ""}],
        "Subject": "Undelivered Mail Returned to Sender",
        "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019c",
        "RawEmail": raw,
        "Headers": [],
        "Attachments": [],
    }

    response = Client().post(
        "/webhooks/postmark/inbound/", json.dumps(payload), content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"hook:secret").decode(),
    )  # fmt: skip

    assert response.status_code == 200
    assert nothing_changed()
