"""The bounce / unsubscribe mailbox, read from a real dovecot IMAP server on 127.0.0.1 over TLS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from django.utils import timezone

from digest import inbound, selectors, sending, tokens
from digest.mail import imap, verp
from digest.models import Delivery, DeliveryEvent, Subscriber, Suppression, email_hash
from tests.dovecot import Dovecot, available
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"
DAY = date(2025, 11, 8)
# The samples' recipients and the deliveries their Message-IDs name (see the fixtures' README).
PEOPLE = {
    "ann@example.org": 1201,
    "bob@gmail.example.net": 1202,
    "cem@outlook.example.net": 1203,
    "dee@example.org": 1204,
    "eve@yahoo.example.net": 1205,
    "fay@example.org": 1206,
}


@pytest.fixture
def dovecot(settings) -> Iterator[Dovecot]:
    missing = available()
    if missing:
        # CI installs dovecot-imapd and sets DOVECOT_REQUIRED: there, a missing server is a failure.
        (pytest.fail if os.environ.get("DOVECOT_REQUIRED") else pytest.skip)(
            f"no IMAP server to test against: {missing}"
        )
    server = Dovecot().start()
    settings.INBOUND_IMAP_URL = server.url()
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@digest.example.org"
    settings.RETURN_PATH = "bounces@digest.example.org"
    yield server
    server.stop()


# The samples quote the Message-ID form digests had before it was keyed; what a digest
# leaves with now (digest/mail/verp.py) is put in their place by sent_ids().
SAMPLE_ID = "<digest.{}.20251108@digest.example.org>"


def people() -> dict[str, Subscriber]:
    out = {}
    for address in PEOPLE:
        subscriber = SubscriberFactory(email=address)
        Delivery.objects.create(subscriber=subscriber, digest_date=DAY, status=Delivery.Status.SENT)
        out[address] = subscriber
    return out


def sent_ids(data: bytes) -> bytes:
    """A sample as it comes back for the deliveries people() made: quoting the keyed
    Message-ID each was sent with (recorded on its row, as the batch records it)."""
    for address, sample_id in PEOPLE.items():
        delivery = Delivery.objects.filter(subscriber__email=address, digest_date=DAY).first()
        if delivery is None:
            continue
        keyed = verp.message_id(delivery.pk, DAY, "digest.example.org")
        Delivery.objects.filter(pk=delivery.pk).update(message_id=keyed)
        data = data.replace(SAMPLE_ID.format(sample_id).encode(), keyed.encode())
    return data


def reason(subscriber: Subscriber) -> str | None:
    row = Suppression.objects.filter(email_hash=email_hash(subscriber.email)).first()
    return row.reason if row else None


def test_it_applies_each_report_once_moves_it_and_leaves_the_rest(dovecot, settings):
    settings.DIGEST_BOUNCE_LIMIT = 3
    who = people()
    for sample in sorted(SAMPLES.glob("*.eml")):
        if sample.name != "postfix-verp-5.7.1.eml":
            dovecot.deliver(sent_ids(sample.read_bytes()))

    report = inbound.inbound_read()

    assert (report.read, report.applied, report.ignored, report.left) == (10, 6, 2, 2)
    for address in ("ann@example.org", "bob@gmail.example.net", "cem@outlook.example.net"):
        assert reason(who[address]) == "bounced", address
    for address in ("eve@yahoo.example.net", "fay@example.org"):
        assert reason(who[address]) == "complaint", address
    dee = Subscriber.objects.get(email="dee@example.org")
    assert (dee.bounce_count, dee.status, reason(dee)) == (1, "active", None)
    # The forged report named ann's delivery for another recipient: nothing of it was applied.
    assert DeliveryEvent.objects.count() == 6
    # Handled messages moved; the auto-reply and the forged report stay for a person.
    assert dovecot.count("Processed") == 8
    assert dovecot.count("INBOX") == 2
    assert report.waiting == 2
    assert inbound.unrecognized_waiting() == 2

    again = inbound.inbound_read()

    assert (again.read, again.applied, again.waiting) == (0, 0, 2)
    assert DeliveryEvent.objects.count() == 6
    assert Subscriber.objects.get(email="dee@example.org").bounce_count == 1


def test_a_report_read_twice_is_applied_once(dovecot, settings):
    """A crash after applying and before the move leaves the message; the next read only moves it."""
    settings.DIGEST_BOUNCE_LIMIT = 5
    people()
    data = sent_ids((SAMPLES / "postfix-4.4.1-expired.eml").read_bytes())
    dovecot.deliver(data)
    dovecot.deliver(data)

    report = inbound.inbound_read()

    assert (report.applied, report.duplicate) == (1, 1)
    assert Subscriber.objects.get(email="dee@example.org").bounce_count == 1
    assert dovecot.count("Processed") == 2


def test_a_bounce_to_the_verp_return_path_of_a_sent_digest_suppresses_its_reader(
    dovecot, smtp_server, ready_day, settings
):
    hal = SubscriberFactory(email="hal@example.org", topics=["video generation"])
    delivery = Delivery.objects.create(subscriber=hal, digest_date=ready_day)
    sending.send_batch([delivery.pk])
    return_path = smtp_server.messages[0].mail_from
    assert return_path.startswith(f"bounces+d{delivery.pk}-")
    dovecot.deliver((SAMPLES / "postfix-verp-5.7.1.eml").read_bytes().replace(b"%RETURN_PATH%", return_path.encode()))

    report = inbound.inbound_read()

    assert report.applied == 1
    hal.refresh_from_db()
    assert (hal.status, reason(hal)) == ("unsubscribed", "bounced")
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED


def test_a_bounce_to_a_tampered_verp_address_is_left(dovecot):
    hal = SubscriberFactory(email="hal@example.org")
    delivery = Delivery.objects.create(subscriber=hal, digest_date=DAY, status=Delivery.Status.SENT)
    forged = f"bounces+d{delivery.pk}-0000000000@digest.example.org"
    dovecot.deliver((SAMPLES / "postfix-verp-5.7.1.eml").read_bytes().replace(b"%RETURN_PATH%", forged.encode()))

    report = inbound.inbound_read()

    assert (report.applied, report.left) == (0, 1)
    assert Subscriber.objects.get(pk=hal.pk).status == Subscriber.Status.ACTIVE


def test_a_mail_to_the_unsubscribe_address_with_the_list_unsubscribe_subject_unsubscribes(dovecot):
    ann = SubscriberFactory(email="ann@example.org")
    mailto = tokens.list_unsubscribe(ann)["List-Unsubscribe"].split(", ")[1]
    assert mailto.startswith("<mailto:unsubscribe@digest.example.org?subject=unsubscribe-")
    subject = mailto.split("subject=", 1)[1].rstrip(">")
    dovecot.deliver(
        f"From: Ann <ann@example.org>\r\nTo: unsubscribe@digest.example.org\r\nSubject: {subject}\r\n"
        "Message-ID: <mailto-1@example.org>\r\nDate: Sat, 08 Nov 2025 08:00:00 +0000\r\n\r\n\r\n".encode()
    )
    dovecot.deliver(
        b"From: Mallory <m@example.net>\r\nTo: unsubscribe@digest.example.org\r\n"
        b"Subject: unsubscribe-eyJzIjoxfQ:forged:token\r\nMessage-ID: <mailto-2@example.net>\r\n\r\n\r\n"
    )

    report = inbound.inbound_read()

    assert (report.applied, report.left) == (1, 1)
    assert Subscriber.objects.get(pk=ann.pk).status == Subscriber.Status.UNSUBSCRIBED


def test_the_dashboard_counts_what_was_left_for_a_person(dovecot, rf):
    dovecot.deliver((SAMPLES / "out-of-office.eml").read_bytes())
    inbound.inbound_read()

    board = selectors.dashboard(today=timezone.localdate(), now=timezone.now())

    assert any("1 message(s) in the bounce mailbox" in problem for problem in board.problems)


def test_a_wrong_password_is_one_clear_error(dovecot, settings):
    settings.INBOUND_IMAP_URL = dovecot.url().replace("s3cret-imap", "wrong")

    with pytest.raises(imap.MailboxError, match=r"IMAP 127\.0\.0\.1"):
        inbound.inbound_read()

    board = selectors.dashboard(today=timezone.localdate(), now=timezone.now())
    assert any(problem.startswith("The bounce mailbox cannot be read: IMAP") for problem in board.problems)
    settings.INBOUND_IMAP_URL = dovecot.url()
    inbound.inbound_read()
    board = selectors.dashboard(today=timezone.localdate(), now=timezone.now())
    assert not any("cannot be read" in problem for problem in board.problems)


def test_it_refuses_a_server_whose_certificate_it_cannot_verify(dovecot, settings):
    settings.INBOUND_IMAP_URL = dovecot.url().split("&cafile=")[0]

    with pytest.raises(imap.MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        inbound.inbound_read()
