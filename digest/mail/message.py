"""The bytes of a bulk message, and the List-Unsubscribe headers every email carries."""

from __future__ import annotations

import binascii
import uuid
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, parseaddr

from django.conf import settings


def list_unsubscribe(*, url: str, token: str) -> dict[str, str]:
    """RFC 2369 + RFC 8058 headers: the one-click HTTPS URL and, when a mailbox reads them,
    a mailto whose subject names the subscriber by the same ``token``."""
    value = f"<{url}>"
    if settings.UNSUBSCRIBE_MAILTO:
        value += f", <mailto:{settings.UNSUBSCRIBE_MAILTO}?subject=unsubscribe-{token}>"
    return {"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def sender_domain() -> str:
    """The domain of DIGEST_FROM_EMAIL: Message-IDs, List-Id and Feedback-ID are under it."""
    return parseaddr(settings.DIGEST_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"


def _encode_header(value: str) -> str:
    if value.isascii():
        return value
    # Header folds long values; its default line end is a bare LF, which SMTP forbids.
    return Header(value, "utf-8").encode(linesep="\r\n")


def _from_header(address: str) -> str:
    name, addr = parseaddr(address)
    if name and not name.isascii():
        encoded = Header(name, "utf-8").encode(linesep="\r\n")
        return f"{encoded} <{addr}>"
    return address


def _qp(text: str) -> bytes:
    # Quoted-printable keeps lines under 76 characters (SMTP's limit is 998) and the text
    # readable in the raw message; binascii does it in C.
    return binascii.b2a_qp(text.replace("\r\n", "\n").encode(), istext=True).replace(b"\n", b"\r\n")


class MessageBuilder:
    """Build a digest's bytes directly: multipart/alternative, text then HTML, QP-encoded.

    About ten times faster than the email package, and the tests parse what it makes.
    """

    def __init__(self) -> None:
        self.from_header = _from_header(settings.DIGEST_FROM_EMAIL)
        self.envelope_from = parseaddr(settings.DIGEST_FROM_EMAIL)[1]
        self.domain = sender_domain()
        site = settings.SITE_NAME.replace('"', "")
        self.list_id = f'"{site}" <daily.{self.domain}>'

    def build(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        html: str,
        unsubscribe: dict[str, str],
        message_id: str | None = None,
        feedback_id: str = "digest",
    ) -> tuple[str, bytes]:
        """``unsubscribe`` is :func:`list_unsubscribe`'s headers for the reader."""
        message_id = message_id or f"<{uuid.uuid4().hex}@{self.domain}>"
        boundary = f"=_pd{uuid.uuid4().hex}"
        headers = (
            f"From: {self.from_header}\r\n"
            f"To: {to}\r\n"
            f"Subject: {_encode_header(subject)}\r\n"
            f"Date: {format_datetime(datetime.now(UTC))}\r\n"
            f"Message-ID: {message_id}\r\n"
            f"List-Id: {self.list_id}\r\n"
            f"List-Unsubscribe: {unsubscribe['List-Unsubscribe']}\r\n"
            f"List-Unsubscribe-Post: {unsubscribe['List-Unsubscribe-Post']}\r\n"
            f"Feedback-ID: {feedback_id}:{self.domain}\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
            "\r\n"
        )
        part = "Content-Type: text/{kind}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        data = b"".join(
            (
                headers.encode(),
                f"--{boundary}\r\n{part.format(kind='plain')}".encode(),
                _qp(text),
                f"\r\n--{boundary}\r\n{part.format(kind='html')}".encode(),
                _qp(html),
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        return message_id, data
