"""The default email backend: every message becomes one .eml file in the outbox.

Any mail program opens an .eml file, so a person running the service locally
sees exactly what a subscriber would receive, headers included.
"""

import uuid
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


class OutboxBackend(BaseEmailBackend):
    def __init__(self, *, outbox: Path | str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.outbox = Path(outbox or settings.OUTBOX_DIR)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        self.outbox.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
            final = self.outbox / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
            partial = final.with_suffix(".part")
            # Write then rename, so a reader never opens half a message.
            partial.write_bytes(message.message().as_bytes(linesep="\n"))
            partial.rename(final)
            sent += 1
        return sent
