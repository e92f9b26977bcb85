"""Amazon SNS signatures for tests: a signing certificate of our own, and envelopes signed with it.

Amazon signs each SNS message with the key of a certificate at an https://sns.<region>.
amazonaws.com/SimpleNotificationService-<id>.pem URL. Tests sign with their own key under
such a URL and put the certificate where a download would (the shared cache), so the
service's verification runs exactly as in production, with no network.
"""

from __future__ import annotations

import base64
import functools
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000000000test.pem"


@functools.cache
def _key_and_pem() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def certificate_pem() -> str:
    return _key_and_pem()[1]


def trust() -> None:
    """Make the test certificate known, as its first download would (in this process's cache)."""
    from digest.mail import sns

    sns.remember_certificate(CERT_URL, certificate_pem())


def sign(envelope: dict, *, version: str = "1") -> dict:
    """``envelope`` signed with the test key, as Amazon SNS signs what it posts."""
    from digest.mail import sns

    signed = {**envelope, "SignatureVersion": version, "SigningCertURL": CERT_URL}
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS version 1 is SHA1withRSA
    raw = _key_and_pem()[0].sign(sns.string_to_sign(signed), padding.PKCS1v15(), algorithm)
    signed["Signature"] = base64.b64encode(raw).decode()
    return signed
