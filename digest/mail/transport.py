"""How message bytes leave: the Transport protocol, SMTP and the outbox behind it, and the Mailer.

A transport sends one message or raises one of four errors, which is all the sending
engine needs to decide what happens to a delivery: sent, retry later (temporary), hard
bounce (permanent), or maybe-sent (unknown: never resent blindly).
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, Protocol

import requests
from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from digest.mail.outbox import write_eml


class TemporaryError(Exception):
    """Try again later: SMTP 4xx, a dropped connection, a relay that does not answer."""


class RelayDown(TemporaryError):
    """The relay cannot be reached at all: no point trying the rest of the batch."""


class UnknownOutcome(Exception):
    """The relay went away after the whole message and before its answer: it may have
    taken it. Never retried (that could send it twice); the row is marked stuck."""


class PermanentError(Exception):
    """SMTP 5xx for this recipient or message: a hard bounce.

    ``address`` is true when the refusal is a verdict on the recipient's address itself (RFC
    3463 status 5.1.x such as 5.1.1 "no such user", or 5.2.1 "mailbox disabled"): the address
    is then suppressed at once, as a later DSN saying so would. Other 5xx (a policy or content
    block, a message too large) only count toward DIGEST_BOUNCE_LIMIT, and a refusal of our
    sender is never the recipient's fault."""

    def __init__(self, message: str, *, address: bool = False) -> None:
        super().__init__(message)
        self.address = address


# RFC 3463 enhanced status codes that say the recipient's address is bad. 5.1.7 and 5.1.8
# are about the sender's address, that is about us.
_ADDRESS_STATUS = re.compile(r"^\s*5\.(1\.(?!7\b|8\b)\d{1,3}|2\.1)\b")


def address_refused(reply: str) -> bool:
    """Whether an SMTP 5xx reply's text ("5.1.1 No such user") refuses the address itself."""
    return bool(_ADDRESS_STATUS.match(reply))


class Transport(Protocol):
    #: Whether what it sends must carry the service's own DKIM signature (an email
    #: provider's API signs with the keys set up there instead).
    dkim: bool

    def send(self, sender: str, to: str, data: bytes) -> str | None:
        """Hand over one message, or raise TemporaryError, PermanentError or UnknownOutcome.

        Returns the provider's own id for the message when it assigns one (webhooks name
        the message by it), else None (the Message-ID header is the id)."""

    def close(self) -> None:
        """Release the connection, if any; a later send opens a new one."""


class SmtpTransport:
    """One reused SMTP connection to EMAIL_HOST, reopened when the relay drops it."""

    dkim = True

    def __init__(self) -> None:
        self.connection: smtplib.SMTP | None = None

    def open(self) -> smtplib.SMTP:
        if self.connection is None:
            try:
                connection = smtplib.SMTP(settings.EMAIL_HOST, settings.EMAIL_PORT, timeout=settings.EMAIL_TIMEOUT)
                if settings.EMAIL_USE_TLS:
                    connection.starttls(context=ssl.create_default_context())
                if settings.EMAIL_HOST_USER:
                    connection.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
            except (OSError, smtplib.SMTPException) as exc:
                raise RelayDown(f"cannot connect to {settings.EMAIL_HOST}:{settings.EMAIL_PORT}: {exc}") from exc
            self.connection = connection
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                self.connection.close()
            self.connection = None

    def send(self, sender: str, to: str, data: bytes) -> None:
        smtp = self.open()
        try:
            self._sendmail(smtp, sender, to, data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients.get(to, (450, b"refused"))
            self._raise(code, reply, recipient=True)
        except smtplib.SMTPDataError as exc:
            # Some servers refuse unknown recipients only after the message (at DATA).
            self._raise(exc.smtp_code, exc.smtp_error, recipient=True)
        except smtplib.SMTPSenderRefused as exc:
            self._raise(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPResponseException as exc:
            self._drop()
            self._raise(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise TemporaryError(f"connection lost: {exc}") from exc

    def _sendmail(self, smtp: smtplib.SMTP, sender: str, to: str, data: bytes) -> None:
        """smtplib's sendmail for one recipient, without its regex passes over the body:
        MessageBuilder's bytes already end lines in CRLF, so only dot-stuffing is left (a C
        replace). Every refusal raises, so there is no refused-recipients dict to check."""
        smtp.ehlo_or_helo_if_needed()
        code, reply = smtp.mail(sender)
        if code != 250:
            smtp.rset()
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = smtp.rcpt(to)
        if code not in (250, 251):
            smtp.rset()
            raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
        code, reply = smtp.docmd("data")
        if code != 354:
            smtp.rset()
            raise smtplib.SMTPDataError(code, reply)
        body = data.replace(b"\r\n.", b"\r\n..")
        if body.startswith(b"."):
            body = b"." + body
        smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        try:
            code, reply = smtp.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise UnknownOutcome(f"the relay hung up after the whole message, before answering: {exc}") from exc
        if code != 250:
            smtp.rset()
            raise smtplib.SMTPDataError(code, reply)

    def _drop(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def _raise(self, code: int, reply: bytes | str, *, recipient: bool = False) -> NoReturn:
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        message = f"{code} {text}".strip()
        if 500 <= code < 600:
            # After a 5xx the relay may have reset the transaction; RSET keeps the session usable.
            try:
                if self.connection is not None:
                    self.connection.rset()
            except (OSError, smtplib.SMTPException):
                self._drop()
            raise PermanentError(message, address=recipient and address_refused(text))
        raise TemporaryError(message)


class OutboxTransport:
    """No EMAIL_HOST: each digest becomes an .eml file in OUTBOX_DIR, like every other email."""

    dkim = False

    def __init__(self, outbox: Path | None = None) -> None:
        self.outbox = Path(outbox or settings.OUTBOX_DIR)

    def send(self, sender: str, to: str, data: bytes) -> None:
        write_eml(self.outbox, data)

    def close(self) -> None:
        pass


class ProviderTransport:
    """An email provider's API through django-anymail (EMAIL_PROVIDER): one API call is the
    "conversation". The assembled message is handed over as its parts and headers (most
    APIs take fields, not MIME); the provider signs it with the DKIM keys set up there."""

    dkim = False

    def __init__(self) -> None:
        self.backend = get_connection(f"anymail.backends.{settings.EMAIL_PROVIDER}.EmailBackend", fail_silently=False)

    def send(self, sender: str, to: str, data: bytes) -> str | None:
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        text = parsed.get_body(("plain",))
        html = parsed.get_body(("html",))
        message = EmailMultiAlternatives(
            subject=str(parsed["Subject"]),
            body=text.get_content() if text is not None else "",
            from_email=str(parsed["From"]),
            to=[to],
            headers={name: str(parsed[name]) for name in PROVIDER_HEADERS if parsed[name] is not None},
            connection=self.backend,
        )
        if html is not None:
            message.attach_alternative(html.get_content(), "text/html")
        try:
            message.send()
        except AnymailError as exc:
            raise provider_error(exc) from exc
        status = message.anymail_status
        return status.message_id if isinstance(status.message_id, str) else None

    def close(self) -> None:
        self.backend.close()


# What the provider is given besides subject, body and addresses (it sets Date itself).
PROVIDER_HEADERS = ("Message-ID", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID")


def _network_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """The read-timeout and connection errors of the HTTP clients anymail uses: requests, and
    botocore when the optional amazon-ses extra is installed (nothing else raises its errors)."""
    timeouts: tuple[type[BaseException], ...] = (requests.ReadTimeout,)
    connection: tuple[type[BaseException], ...] = (requests.ConnectionError,)
    try:
        import botocore.exceptions
    except ImportError:
        return timeouts, connection
    return (*timeouts, botocore.exceptions.ReadTimeoutError), (*connection, botocore.exceptions.ConnectionError)


def provider_error(exc: AnymailError) -> Exception:
    """An API error as the outcome the sending engine knows.

    Rate limits and the provider's own trouble (429, 5xx, unreachable) are temporary;
    refused credentials or account (401, 403) stop the batch like a relay that is down
    (every message would fail the same way); a refused recipient or message (other 4xx,
    SES's MessageRejected) is a hard bounce; a request that left but whose answer never
    came may have been sent, so it is unknown, never retried blindly.
    """
    cause = exc.__cause__
    text = str(exc).splitlines()[0][:500] if str(exc) else exc.__class__.__name__
    if isinstance(exc, AnymailRecipientsRefused):
        return PermanentError(f"the provider refused the recipient: {text}")
    read_timeouts, connection_errors = _network_errors()
    if isinstance(cause, read_timeouts):
        return UnknownOutcome(f"the provider did not answer in time: {text}")
    if isinstance(cause, connection_errors):
        return RelayDown(f"cannot reach the provider: {text}")
    status = exc.status_code
    response = getattr(exc, "response", None)
    code = ""
    if isinstance(response, dict):  # boto3's parsed error (Amazon SES)
        status = status or response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(response.get("Error", {}).get("Code", ""))
    if status is None:
        return TemporaryError(f"provider error: {text}")
    if status == 429 or status >= 500 or code in ("Throttling", "TooManyRequestsException"):
        return TemporaryError(f"provider answered {status}: {text}")
    if status in (401, 403):
        return RelayDown(f"the provider refused our credentials ({status}): {text}")
    return PermanentError(f"provider answered {status}{f' {code}' if code else ''}: {text}")


def transport() -> Transport:
    """The configured transport: the provider's API, else SMTP to EMAIL_HOST, else the outbox."""
    if settings.EMAIL_PROVIDER != "smtp":
        return ProviderTransport()
    return SmtpTransport() if settings.EMAIL_HOST else OutboxTransport()


class Mailer:
    """Sends messages one by one over one transport: rate limit and 4xx retries with backoff."""

    def __init__(self, via: Transport | None = None, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.via = via or transport()
        self.sleep = sleep
        self.rate = settings.DIGEST_SEND_RATE
        self._next_at = 0.0

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.via.close()

    def _pace(self) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        if self._next_at > now:
            self.sleep(self._next_at - now)
        self._next_at = max(now, self._next_at) + 1.0 / self.rate

    def send(self, sender: str, to: str, data: bytes, *, before: Callable[[], None] | None = None) -> str | None:
        """Deliver (returning the provider's message id, if any) or raise PermanentError /
        TemporaryError (the last one, after the retries) / UnknownOutcome.

        ``before`` runs just before each SMTP conversation, after any pacing wait.
        """
        tries = settings.DIGEST_SMTP_RETRIES
        for attempt in range(tries):
            self._pace()
            if before:
                before()
            try:
                return self.via.send(sender, to, data)
            except TemporaryError:
                if attempt + 1 >= tries:
                    raise
                self.sleep(settings.DIGEST_RETRY_BACKOFF * (2**attempt))
