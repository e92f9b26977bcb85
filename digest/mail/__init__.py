"""Email plumbing with no subscriber logic: how a message is built, written and sent.

- :mod:`~digest.mail.message`: the bytes of a bulk message (:class:`MessageBuilder`) and the
  one :func:`list_unsubscribe` every email the service sends carries.
- :mod:`~digest.mail.templated`: a message from three templates (subject, text, HTML) with
  its CSS inlined, for the one-off emails (confirmation, manage link).
- :mod:`~digest.mail.transport`: the :class:`Transport` protocol with SMTP and the outbox
  behind it, and the :class:`Mailer` that paces and retries over one of them.
- :mod:`~digest.mail.outbox`: the ``.eml`` outbox, shared by the Django backend and the
  digest transport.
- :mod:`~digest.mail.dkim`: DKIM signatures on what goes out over SMTP, and Django's SMTP
  backend that adds them; :mod:`~digest.mail.dns` the DNS records to publish for them.
- :mod:`~digest.mail.reports`, :mod:`~digest.mail.imap`, :mod:`~digest.mail.verp`: what
  comes back (delivery-status notifications, complaint reports, mailto unsubscribes), the
  mailbox it arrives in, and the signed return paths that name a delivery.
"""

from digest.mail import dkim
from digest.mail.message import MessageBuilder, list_unsubscribe
from digest.mail.outbox import OutboxBackend, write_eml
from digest.mail.templated import inline_css, make_message
from digest.mail.transport import (
    Mailer,
    OutboxTransport,
    PermanentError,
    RelayDown,
    SmtpTransport,
    TemporaryError,
    Transport,
    UnknownOutcome,
    transport,
)

__all__ = [
    "Mailer",
    "MessageBuilder",
    "OutboxBackend",
    "OutboxTransport",
    "PermanentError",
    "RelayDown",
    "SmtpTransport",
    "TemporaryError",
    "Transport",
    "UnknownOutcome",
    "dkim",
    "inline_css",
    "list_unsubscribe",
    "make_message",
    "transport",
    "write_eml",
]
