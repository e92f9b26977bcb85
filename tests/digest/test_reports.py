"""The bounce mailbox's parser on real-world samples (tests/fixtures/bounces/, see its README)."""

from pathlib import Path

import pytest

from digest.mail import reports

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"


def mid(delivery_id: int) -> str:
    return f"<digest.{delivery_id}.20251108@digest.example.org>"


def parse(name: str, **kwargs: str) -> reports.Report:
    return reports.parse((SAMPLES / name).read_bytes(), **kwargs)


@pytest.mark.parametrize(
    ("name", "kind", "recipient", "message_id", "status"),
    [
        ("postfix-5.1.1-user-unknown.eml", "hard_bounce", "ann@example.org", mid(1201), "5.1.1"),
        ("gmail-5.1.1-no-such-account.eml", "hard_bounce", "bob@gmail.example.net", mid(1202), "5.1.1"),
        ("m365-5.2.2-mailbox-full.eml", "hard_bounce", "cem@outlook.example.net", mid(1203), "5.2.2"),
        ("postfix-4.4.1-expired.eml", "soft_bounce", "dee@example.org", mid(1204), "4.4.1"),
        ("postfix-delayed.eml", "ignore", "dee@example.org", mid(1204), "4.4.1"),
    ],
)  # fmt: skip
def test_it_reads_delivery_status_notifications(name, kind, recipient, message_id, status):
    report = parse(name)

    assert report.kind == kind
    assert report.recipients == [recipient]
    assert report.message_ids == [message_id]
    assert report.status == status


def test_it_keeps_the_diagnostic_of_a_bounce():
    assert "User unknown" in parse("postfix-5.1.1-user-unknown.eml").detail


@pytest.mark.parametrize(
    ("name", "recipient", "message_id"),
    [
        ("yahoo-arf-abuse.eml", "eve@yahoo.example.net", mid(1205)),
        ("rfc5965-arf-abuse.eml", "fay@example.org", mid(1206)),
    ],
)
def test_it_reads_arf_complaints(name, recipient, message_id):
    report = parse(name)

    assert report.kind == "complaint"
    assert report.recipients == [recipient]
    assert report.message_ids == [message_id]


def test_a_dmarc_failure_report_is_no_complaint():
    assert parse("dmarc-auth-failure.eml").kind == "ignore"


def test_an_auto_reply_is_unrecognized():
    assert parse("out-of-office.eml").kind == "unrecognized"


def test_the_delivered_to_address_is_kept_for_verp_matching():
    data = (SAMPLES / "postfix-verp-5.7.1.eml").read_bytes().replace(b"%RETURN_PATH%", b"bounces+d7-abc@x.example")

    report = reports.parse(data)

    assert report.kind == "hard_bounce"
    assert "bounces+d7-abc@x.example" in report.delivered_to
    assert report.message_ids == []


def test_it_reads_the_token_of_a_mailto_unsubscribe():
    data = (
        b"From: Ann <ann@example.org>\r\nTo: unsubscribe@digest.example.org\r\n"
        b"Subject: unsubscribe-eyJzIjoxfQ:1tXyZ:abc-DEF_123\r\nMessage-ID: <u1@example.org>\r\n\r\n\r\n"
    )

    report = reports.parse(data, unsubscribe_address="unsubscribe@digest.example.org")

    assert (report.kind, report.token, report.report_id) == (
        "unsubscribe",
        "eyJzIjoxfQ:1tXyZ:abc-DEF_123",
        "<u1@example.org>",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff garbage",
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\r\n\r\n--x\r\n',
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="x"\r\n\r\n--x\r\n'
        b"Content-Type: message/feedback-report\r\n\r\n--x--\r\n",
    ],
)
def test_broken_input_is_unrecognized_never_an_error(data):
    report = reports.parse(data)

    assert report.kind == "unrecognized"
    assert report.report_id.startswith("sha256:")


def test_it_reads_the_token_of_a_folded_or_encoded_subject():
    data = (
        b"From: ann@example.org\r\nTo: <unsubscribe@digest.example.org>\r\nMessage-ID: <u2@example.org>\r\n"
        b"Subject: =?utf-8?q?unsubscribe-eyJzIjoxfQ:1tXyZ:abc?=\r\n =?utf-8?q?-DEF=5F123?=\r\n\r\n\r\n"
    )

    report = reports.parse(data, unsubscribe_address="unsubscribe@digest.example.org")

    assert (report.kind, report.token) == ("unsubscribe", "eyJzIjoxfQ:1tXyZ:abc-DEF_123")
