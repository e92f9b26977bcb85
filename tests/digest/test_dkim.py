"""DKIM: real digests and confirmations over SMTP to 127.0.0.1, verified by dkimpy against the public key."""

from __future__ import annotations

import re

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from dkim import canonicalization
from hypothesis import given
from hypothesis import strategies as st

from digest import sending
from digest.mail import dkim as digest_dkim
from digest.models import Delivery
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def signing(settings, private_pem):
    settings.DKIM_SELECTOR = "pd2026"
    settings.DKIM_DOMAIN = "digest.example.org"
    settings.DKIM_PRIVATE_KEY = private_pem
    settings.DIGEST_FROM_EMAIL = "Paper Digest <digest@digest.example.org>"
    settings.DEFAULT_FROM_EMAIL = "Paper Digest <hello@digest.example.org>"
    return settings


def dns_for(private_pem: str):
    """What a resolver would answer for the selector's TXT record, as checkdns prints it."""
    name, value = digest_dkim.Signer(
        selector="pd2026", domain="digest.example.org", private_key=private_pem
    ).dns_record()

    def lookup(qname: bytes, timeout: int = 5) -> bytes:
        return value.encode() if qname.decode().rstrip(".") == name else b""

    return lookup


def signed_tags(data: bytes) -> dict[str, str]:
    header = dkim.rfc822_parse(data)[0][0]
    assert header[0].lower() == b"dkim-signature"
    value = re.sub(rb"\s+", b"", header[1]).decode()
    return dict(part.split("=", 1) for part in value.split(";") if part)


def test_it_signs_a_sent_digest_so_that_dkimpy_verifies_it(signing, smtp_server, ready_day, private_pem):
    ann = SubscriberFactory(topics=["video generation"])
    delivery = Delivery.objects.create(subscriber=ann, digest_date=ready_day)

    report = sending.send_batch([delivery.pk])

    assert report.sent == 1
    data = smtp_server.messages[0].data
    assert dkim.verify(data, dnsfunc=dns_for(private_pem))
    tags = signed_tags(data)
    assert tags["c"] == "relaxed/relaxed"
    assert tags["d"] == "digest.example.org"
    assert tags["s"] == "pd2026"
    assert tags["h"].split(":") == [
        "from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post", "list-id",
    ]  # fmt: skip
    # The reader's own unsubscribe token is what the signature covers.
    assert smtp_server.messages[0].message()["List-Unsubscribe"] in data.decode()


def test_it_fails_verification_once_a_signed_header_is_changed(signing, smtp_server, ready_day, private_pem):
    ann = SubscriberFactory(topics=["video generation"])
    sending.send_batch([Delivery.objects.create(subscriber=ann, digest_date=ready_day).pk])
    data = smtp_server.messages[0].data

    forged = re.sub(rb"List-Unsubscribe: <[^>]+>", b"List-Unsubscribe: <https://evil.example/u>", data, count=1)

    assert forged != data
    assert not dkim.verify(forged, dnsfunc=dns_for(private_pem))


def test_it_does_not_verify_against_another_key(signing, smtp_server, ready_day):
    ann = SubscriberFactory(topics=["video generation"])
    sending.send_batch([Delivery.objects.create(subscriber=ann, digest_date=ready_day).pk])
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()

    assert not dkim.verify(smtp_server.messages[0].data, dnsfunc=dns_for(other_pem))


def test_it_signs_the_confirmation_email_sent_over_smtp(signing, smtp_server, signup, private_pem):
    # What settings.py picks with EMAIL_HOST set (pytest-django swaps in its memory backend).
    signing.EMAIL_BACKEND = "digest.mail.dkim.DkimSmtpBackend"
    signup(email="bea@example.org")

    assert len(smtp_server.messages) == 1
    data = smtp_server.messages[0].data
    assert b"DKIM-Signature:" in data.split(b"\r\n\r\n", 1)[0]
    assert dkim.verify(data, dnsfunc=dns_for(private_pem))


def test_it_sends_unsigned_without_dkim_settings(smtp_server, ready_day):
    ann = SubscriberFactory(topics=["video generation"])
    sending.send_batch([Delivery.objects.create(subscriber=ann, digest_date=ready_day).pk])

    assert b"DKIM-Signature" not in smtp_server.messages[0].data


def test_checkdns_prints_the_dkim_key_spf_and_dmarc_records(signing, private_pem, capsys):
    call_command("checkdns")

    out = capsys.readouterr().out
    _, value = digest_dkim.Signer(selector="pd2026", domain="digest.example.org", private_key=private_pem).dns_record()
    line = next(line for line in out.splitlines() if line.startswith("pd2026._domainkey.digest.example.org.  TXT"))
    # Quoted strings of at most 255 characters, which a resolver joins back into the record.
    chunks = re.findall(r'"([^"]*)"', line)
    assert all(len(chunk) <= 255 for chunk in chunks)
    assert "".join(chunks) == value
    assert 'digest.example.org.  TXT  "v=spf1 ' in out
    assert '_dmarc.digest.example.org.  TXT  "v=DMARC1; p=none;' in out


def test_checkdns_warns_when_the_signing_domain_is_not_aligned_with_from(signing, capsys):
    signing.DKIM_DOMAIN = "other.example.net"

    call_command("checkdns")

    assert "not digest.example.org or a parent of it" in capsys.readouterr().err


@given(st.lists(st.sampled_from([b"a", b"<td>", b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n", b"=\r\n"]), max_size=60))
def test_the_fast_relaxed_body_canonicalization_equals_dkimpys(parts: list[bytes]) -> None:
    body = b"".join(parts)

    assert digest_dkim.relaxed_body(body) == canonicalization.Relaxed.canonicalize_body(body)


def test_a_curators_preview_is_signed_as_the_digest_would_be(signing, smtp_server, ready_day, private_pem):
    ann = SubscriberFactory(topics=["video generation"])

    sending.send_preview(subscriber=ann, day=ready_day, to="curator@example.org")

    assert dkim.verify(smtp_server.messages[0].data, dnsfunc=dns_for(private_pem))
