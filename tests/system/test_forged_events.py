"""Forged bounces, complaints and unsubscribes change nobody, on the deployed set-up.

gunicorn on PostgreSQL and Redis, configured for Amazon SES with its webhook secret, and a
real dovecot bounce mailbox read by the service's own reader. Every forged event of the
security review goes in through the real routes and the real mailbox: afterwards not one
row of subscription state has changed. Then a correctly signed SES complaint, and a DSN
quoting the keyed Message-ID sent to its recipient, each suppress exactly their recipient.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import sns
from tests.dovecot import Dovecot, available
from tests.system.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
WEBHOOKS = ROOT / "tests" / "fixtures" / "webhooks"
BOUNCES = ROOT / "tests" / "fixtures" / "bounces"
AUTH = "hook-user:system-test-webhook-secret"
BASIC = {"Authorization": "Basic " + base64.b64encode(AUTH.encode()).decode()}
SES_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
DEV_KEY = "dev-only-insecure-key-do-not-use-in-production"
PEOPLE = {  # address -> the delivery id the bounce samples quote
    "ann@example.org": 1201,
    "bob@gmail.example.net": 1202,
    "cem@outlook.example.net": 1203,
    "dee@example.org": 1204,
    "eve@yahoo.example.net": 1205,
    "fay@example.org": 1206,
}
# Bounce and complaint samples quoting the guessable Message-IDs digests once had.
CLAIMS = ("postfix-5.1.1-user-unknown.eml", "gmail-5.1.1-no-such-account.eml", "m365-5.2.2-mailbox-full.eml",
          "postfix-4.4.1-expired.eml", "yahoo-arf-abuse.eml", "rfc5965-arf-abuse.eml", "forged-dsn.eml")  # fmt: skip
VICTIM = "recipient@example.com"  # the address of the SES samples


@pytest.fixture
def mailbox() -> Iterator[Dovecot]:
    missing = available()
    if missing:
        (pytest.fail if os.environ.get("DOVECOT_REQUIRED") else pytest.skip)(f"no IMAP server: {missing}")
    server = Dovecot().start()
    yield server
    server.stop()


def state(stack: Stack) -> dict[str, object]:
    """Everything a forged event could change."""
    return {
        "subscribers": stack.rows("SELECT email, status, bounce_count FROM digest_subscriber ORDER BY email"),
        "suppressions": stack.scalar("SELECT count(*) FROM digest_suppression"),
        "events": stack.scalar("SELECT count(*) FROM digest_deliveryevent"),
        "deliveries": stack.rows("SELECT id, status FROM digest_delivery ORDER BY id"),
    }


def ses_post(stack: Stack, envelope: dict, *, auth: bool = True) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "x-amz-sns-message-type": envelope["Type"],
        "x-amz-sns-message-id": envelope["MessageId"],
        "x-amz-sns-topic-arn": envelope["TopicArn"],
        **(BASIC if auth else {}),
    }
    return httpx.post(f"{stack.url}/webhooks/amazon_ses/tracking/", content=json.dumps(envelope), headers=headers)


def test_forged_events_of_every_kind_change_nobody_and_a_signed_one_exactly_its_recipient(stack, mailbox):
    stack.env.update(
        {
            "EMAIL_PROVIDER": "amazon_ses",
            "ANYMAIL_WEBHOOK_SECRET": AUTH,
            "ANYMAIL_AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": "false",
            "INBOUND_IMAP_URL": mailbox.url(),
            "UNSUBSCRIBE_MAILTO": "unsubscribe@digest.example.org",
            "RETURN_PATH": "bounces@digest.example.org",
            "DIGEST_FROM_EMAIL": "Paper Digest <digest@digest.example.org>",
        }
    )
    # The subscribers of the samples, each sent one digest; the SES sample's recipient too.
    made = json.loads(
        stack.python(
            "import json, datetime\n"
            "from digest.models import Delivery, Subscriber\n"
            "from digest.mail import verp\n"
            "from digest import tokens\n"
            "day = datetime.date(2025, 11, 8)\n"
            "out = {}\n"
            f"for address in {[*PEOPLE, VICTIM, 'bystander@example.com']!r}:\n"
            "    s = Subscriber.objects.create(email=address, status='active', topics=[], send_hour=0,"
            " time_zone='UTC')\n"
            "    d = Delivery.objects.create(subscriber=s, digest_date=day, status='sent')\n"
            f"    mid = {SES_ID!r} if address == {VICTIM!r} else verp.message_id(d.pk, day, 'digest.example.org')\n"
            "    Delivery.objects.filter(pk=d.pk).update(message_id=mid)\n"
            "    out[address] = {'delivery': d.pk, 'message_id': mid,"
            " 'unsubscribe': tokens.list_unsubscribe(s)['List-Unsubscribe']}\n"
            "print(json.dumps(out))\n"
        )
        .strip()
        .splitlines()[-1]
    )
    # The signing certificate where the first download would put it (the shared Redis cache).
    stack.python(
        f"from digest.mail import sns\nsns.remember_certificate({sns.CERT_URL!r}, {sns.certificate_pem()!r})\n"
    )
    stack.start("web")
    before = state(stack)

    # --- webhooks: routes of providers that are not configured answer 404
    postmark_complaint = json.loads((WEBHOOKS / "postmark-spam-complaint.json").read_text())
    del postmark_complaint["Email"]  # only a guessed Message-ID
    postmark_bounce = {**json.loads((WEBHOOKS / "postmark-bounce.json").read_text()), "Email": "ann@example.org"}
    sendgrid_unsubscribe = [{"email": "ann@example.org", "event": "unsubscribe", "sg_message_id": "x",
                             "timestamp": 1700000000, "sg_event_id": "e1"}]  # fmt: skip
    for path, body in (
        ("/webhooks/postmark/tracking/", postmark_complaint),
        ("/webhooks/postmark/tracking/", postmark_bounce),
        ("/webhooks/sendgrid/tracking/", sendgrid_unsubscribe),
        ("/webhooks/postmark/inbound/", {"RawEmail": (BOUNCES / "postfix-5.1.1-user-unknown.eml").read_text()}),
        ("/webhooks/mailgun/tracking/", {"event-data": {"event": "failed", "severity": "permanent"}}),
    ):
        assert httpx.post(f"{stack.url}{path}", json=body, headers=BASIC).status_code == 404, path

    # --- the configured provider's route: no signature, a tampered one, no secret, garbage
    complaint = json.loads((WEBHOOKS / "ses-sns-complaint.json").read_text())
    assert ses_post(stack, complaint).status_code == 400  # Amazon's placeholder signature
    tampered = sns.sign(json.loads((WEBHOOKS / "ses-sns-bounce.json").read_text()))
    tampered["Message"] = tampered["Message"].replace("recipient@example.com", "bystander@example.com")
    assert ses_post(stack, tampered).status_code == 400
    assert ses_post(stack, sns.sign(complaint), auth=False).status_code == 401
    for garbage in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        response = httpx.post(f"{stack.url}/webhooks/amazon_ses/tracking/", content=garbage, headers=BASIC)
        assert response.status_code == 400, garbage
    # Signed by "Amazon", but about a Message-ID we sent to someone else.
    elsewhere = json.loads(complaint["Message"])
    elsewhere["mail"]["messageId"] = made["bystander@example.com"]["message_id"]
    signed_elsewhere = sns.sign({**complaint, "MessageId": "m-2", "Message": json.dumps(elsewhere)})
    assert ses_post(stack, signed_elsewhere).status_code == 200

    # --- the mailbox: guessable Message-IDs, a DEBUG-key VERP address, forged mailto tokens
    for name in CLAIMS:
        mailbox.deliver((BOUNCES / name).read_bytes())
    hal = made["ann@example.org"]["delivery"]
    dev = hmac.new(DEV_KEY.encode(), f"verp:{hal}".encode(), hashlib.sha256).hexdigest()[:10]
    verp_sample = (BOUNCES / "postfix-verp-5.7.1.eml").read_bytes()
    mailbox.deliver(verp_sample.replace(b"%RETURN_PATH%", f"bounces+d{hal}-{dev}@digest.example.org".encode()))
    token = made["ann@example.org"]["unsubscribe"].split("subject=", 1)[1].rstrip(">")
    for n, subject in enumerate((token[:-3] + "abc", "unsubscribe-eyJzIjoxfQ:forged:token")):
        mailbox.deliver(
            f"From: m@example.net\r\nTo: unsubscribe@digest.example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <forged-{n}@example.net>\r\n\r\n\r\n".encode()
        )
    read = stack.python("from digest import inbound\nr = inbound.inbound_read()\nprint(r.read, r.applied, r.left)\n")
    assert read.split()[-3:] == ["10", "0", "10"]

    assert state(stack) == before
    assert stack.scalar("SELECT count(*) FROM digest_rejectedreport") >= 10

    # --- correctly signed: exactly its recipient
    assert ses_post(stack, sns.sign(complaint)).status_code == 200
    keyed = (
        (BOUNCES / "postfix-5.1.1-user-unknown.eml")
        .read_bytes()
        .replace(b"<digest.1201.20251108@digest.example.org>", made["ann@example.org"]["message_id"].encode())
    )
    mailbox.deliver(keyed)
    read = stack.python("from digest import inbound\nr = inbound.inbound_read()\nprint(r.read, r.applied, r.left)\n")
    assert read.split()[-3:] == ["1", "1", "0"]

    after = {email: (status, bounces) for email, status, bounces in state(stack)["subscribers"]}
    changed = {email for email, value in after.items() if value != ("active", 0)}
    assert changed == {VICTIM, "ann@example.org"}
    assert stack.rows("SELECT reason FROM digest_suppression ORDER BY reason") == [("bounced",), ("complaint",)]
