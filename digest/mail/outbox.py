"""The ``.eml`` outbox: where every email goes when no relay is configured.

Any mail program opens an .eml file, so a person running the service locally sees
exactly what a subscriber would receive, headers included. Django's emails (the
:class:`OutboxBackend`) and the digests (``transport.OutboxTransport``) share one writer.
"""

import uuid
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


def write_eml(outbox: Path, data: bytes) -> Path:
    """Write one message (CRLF or LF line ends) as ``<time>-<random>.eml`` in ``outbox``.

    Write then rename, so a reader never opens half a message. Lines end in LF, as mail
    programs expect of a file on disk.
    """
    outbox.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    final = outbox / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
    partial = final.with_suffix(".part")
    partial.write_bytes(data.replace(b"\r\n", b"\n"))
    partial.rename(final)
    return final


class OutboxBackend(BaseEmailBackend):
    """Django's email backend when EMAIL_HOST is unset: one .eml file per message."""

    def __init__(self, *, outbox: Path | str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.outbox = Path(outbox or settings.OUTBOX_DIR)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            write_eml(self.outbox, message.message().as_bytes(linesep="\n"))
            sent += 1
        return sent
