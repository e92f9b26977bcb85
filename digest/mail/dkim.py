"""DKIM signatures (RFC 6376, relaxed/relaxed) on the messages the service sends over SMTP.

dkimpy canonicalizes, hashes and writes the DKIM-Signature header; only the RSA step is
handed to OpenSSL (through ``cryptography``): dkimpy's own pure-Python RSA costs about
10 ms per signature on a 2048-bit key, several times a whole digest's assembly.
"""

from __future__ import annotations

import base64
import smtplib
from functools import cache

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from django.conf import settings
from django.core.mail.backends.smtp import EmailBackend
from django.core.mail.message import sanitize_address

# RFC 8058 wants List-Unsubscribe and List-Unsubscribe-Post covered; a header listed but
# absent (a confirmation has no List-Id) is signed as absent, so nobody can add it later.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
)


class DkimKeyError(ValueError):
    """The configured private key cannot sign."""


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimKeyError("the key is not an RSA key (DKIM here signs rsa-sha256)")
    if key.key_size < 1024:
        raise DkimKeyError(f"the RSA key has {key.key_size} bits; receivers ignore DKIM keys under 1024 (use 2048)")
    return key


class _OpenSslDKIM(dkim.DKIM):
    """dkimpy's signer with the RSA operation done by OpenSSL; everything else is dkimpy's."""

    def __init__(self, message: bytes, key: rsa.RSAPrivateKey) -> None:
        super().__init__(message, linesep=b"\r\n")
        self.openssl_key = key

    def gen_header(self, fields, include_headers, canon_policy, header_name, pk, standardize=False):
        # dkimpy's gen_header (1.1), less its ed25519 branch, with the signature from OpenSSL.
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        hashed = dkim.HashThrough(self.hasher(), self.debug_content)
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(hashed, canon_policy, headers, include_headers, header, dict(fields))
        signature = self.openssl_key.sign(hashed.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        idx = next(i for i, (tag, _) in enumerate(fields) if tag == b"b")
        fields[idx] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep)


class Signer:
    """Signs whole messages (bytes, CRLF line ends) for one selector and domain."""

    def __init__(self, *, selector: str, domain: str, private_key: str | bytes) -> None:
        self.selector = selector.encode()
        self.domain = domain.encode()
        self.key = load_private_key(private_key)
        # dkimpy parses the PEM itself (for the key's length); hand it the canonical form.
        self.pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )

    def sign(self, data: bytes) -> bytes:
        """``data`` with a DKIM-Signature header in front."""
        try:
            header = _OpenSslDKIM(data, self.key).sign(
                self.selector,
                self.domain,
                self.pem,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=list(SIGNED_HEADERS),
            )
        except dkim.DKIMException as exc:
            raise DkimKeyError(f"cannot sign the message: {exc}") from exc
        return header + data

    def dns_record(self) -> tuple[str, str]:
        """(name, TXT value) of the public key receivers look up."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        name = f"{self.selector.decode()}._domainkey.{self.domain.decode()}"
        return name, f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


@cache
def _signer(selector: str, domain: str, private_key: str) -> Signer:
    return Signer(selector=selector, domain=domain, private_key=private_key)


def signer() -> Signer | None:
    """The configured signer (one per process and configuration), or None without DKIM settings."""
    if not (settings.DKIM_SELECTOR and settings.DKIM_DOMAIN and settings.DKIM_PRIVATE_KEY):
        return None
    return _signer(settings.DKIM_SELECTOR, settings.DKIM_DOMAIN, settings.DKIM_PRIVATE_KEY)


class DkimSmtpBackend(EmailBackend):
    """Django's SMTP backend, signing each message when DKIM is configured (confirmations,
    manage links, alerts): the same signature as the digests."""

    def _send(self, email_message) -> bool:
        if not email_message.recipients():
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        from_email = sanitize_address(email_message.from_email, encoding)
        recipients = [sanitize_address(addr, encoding) for addr in email_message.recipients()]
        data = email_message.message().as_bytes(linesep="\r\n")
        dkim_signer = signer()
        if dkim_signer is not None:
            data = dkim_signer.sign(data)
        try:
            self.connection.sendmail(from_email, recipients, data)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True
