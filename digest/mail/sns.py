"""Amazon SNS message signatures: what proves an Amazon SES event really comes from Amazon.

django-anymail's SES webhook checks the basic auth and that the SNS headers match the body,
but not the message's signature ("Future: Verify SNS message signature" in its source). This
does what Amazon's documentation asks: the signing certificate must come over HTTPS from an
``sns.<region>.amazonaws.com`` host, and its key must verify the signature (version 1,
SHA1withRSA, or version 2, SHA256withRSA) of the message's canonical fields.

Certificates are kept in the shared cache for a day: one download per certificate, not per
event. A certificate is only ever downloaded from Amazon's SNS hosts, with TLS verified and
no redirects followed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.core.cache import cache

CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
CERT_PATH = re.compile(r"^/SimpleNotificationService-[A-Za-z0-9]+\.pem$")
CACHE_KEY = "digest:sns-cert:{}"
CACHE_SECONDS = 86_400
DOWNLOAD_TIMEOUT = 10
# The fields each message type signs, in the order Amazon joins them.
SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


class BadSignature(Exception):
    """The message is not signed by Amazon SNS (or the signature cannot be checked)."""


def string_to_sign(message: dict) -> bytes:
    kind = message.get("Type")
    if kind not in SIGNED:
        raise BadSignature(f"unknown SNS message type {kind!r}")
    parts = []
    for name in SIGNED[kind]:
        value = message.get(name)
        if value is None:
            if name == "Subject":  # the only optional one
                continue
            raise BadSignature(f"SNS message lacks {name}")
        if not isinstance(value, str):
            raise BadSignature(f"SNS message field {name} is not text")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


def certificate_url_allowed(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.port is None
        and not parts.username
        and not parts.query
        and bool(CERT_HOST.match(parts.hostname or ""))
        and bool(CERT_PATH.match(parts.path))
    )


def _cache_key(url: str) -> str:
    return CACHE_KEY.format(hashlib.sha256(url.encode()).hexdigest())


def remember_certificate(url: str, pem: str) -> None:
    """Keep ``url``'s certificate (what a download does; tests also seed it this way)."""
    cache.set(_cache_key(url), pem, timeout=CACHE_SECONDS)


def _download(url: str) -> str:
    try:
        response = requests.get(url, timeout=DOWNLOAD_TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        raise BadSignature(f"cannot download the SNS signing certificate: {exc}") from None
    if response.status_code != 200:
        raise BadSignature(f"the SNS signing certificate answered {response.status_code}")
    return response.text


def certificate(url: str) -> x509.Certificate:
    if not certificate_url_allowed(url):
        raise BadSignature(f"SigningCertURL {url[:200]!r} is not an Amazon SNS certificate")
    pem = cache.get(_cache_key(url))
    if pem is None:
        pem = _download(url)
        remember_certificate(url, pem)
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise BadSignature("the SNS signing certificate does not parse") from None


def verify(message: object) -> None:
    """Return if ``message`` (an SNS envelope, parsed JSON) is signed by Amazon SNS, else raise BadSignature."""
    if not isinstance(message, dict):
        raise BadSignature("an SNS message is a JSON object")
    algorithm = HASHES.get(str(message.get("SignatureVersion", "")))
    if algorithm is None:
        raise BadSignature(f"unknown SNS SignatureVersion {message.get('SignatureVersion')!r}")
    signature = message.get("Signature")
    url = message.get("SigningCertURL")
    if not isinstance(signature, str) or not isinstance(url, str):
        raise BadSignature("SNS message lacks Signature or SigningCertURL")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise BadSignature("SNS Signature is not base64") from None
    key = certificate(url).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadSignature("the SNS signing certificate's key is not RSA")
    try:
        key.verify(raw, string_to_sign(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise BadSignature("SNS signature does not match the message") from None
