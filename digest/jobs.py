"""Hand work to the Celery workers by task name, so services never import the task modules.

The task modules are doors that call services; a service importing them back would be an
import loop. Tasks are looked up in the app's registry (every process registers them
when Django starts, see apps.py), so eager mode in tests and a test's patched ``delay``
behave as with a direct call.
"""

import logging

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

SEND_CONFIRMATION = "digest.tasks.send_confirmation"
SEND_MANAGE_LINK = "digest.tasks.send_manage_link"
SEND_DIGEST_BATCH = "digest.tasks.send_digest_batch"
FETCH_LIKED_PAPERS = "digest.tasks.fetch_liked_papers"


def enqueue(name: str, *args: object) -> None:
    """Send the task now; raises when the broker is down."""
    current_app.tasks[name].delay(*args)


def enqueue_on_commit(name: str, *args: object) -> None:
    """Send the task once the transaction commits; a broker outage is logged, not raised,
    because whatever was written stays written and a sweep finds it again."""

    def send() -> None:
        try:
            enqueue(name, *args)
        except Exception:
            logger.exception("could not enqueue %s with %r", name.rpartition(".")[2], args)

    transaction.on_commit(send)
