from collections.abc import Callable, Iterator
from datetime import date

import pytest
from django.test import Client

from tests.factories import signup_data
from tests.smtp import SmtpServer

# The saved list of 2025-11-07 (the ``hf_papers`` fixture) makes this digest date ready.
DIGEST_DAY = date(2025, 11, 8)


@pytest.fixture
def signup(client: Client, django_capture_on_commit_callbacks: Callable) -> Iterator[Callable]:
    """POST the signup form like a browser and run what is enqueued on commit."""

    def post(**overrides: str):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/", signup_data(**overrides), HTTP_USER_AGENT="Mozilla/5.0 (test)")

    yield post


# --------------------------------------------------------------------------- sending


@pytest.fixture
def fast_sending(settings):
    """No sleeping between SMTP retries, no send-rate pacing."""
    settings.DIGEST_RETRY_BACKOFF = 0
    settings.DIGEST_SEND_RATE = 0
    return settings


@pytest.fixture
def smtp_server(settings, fast_sending) -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that the digests go to; its replies are scriptable."""
    server = SmtpServer().start()
    for name, value in server.settings().items():
        setattr(settings, name, value)
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.stop()


@pytest.fixture
def ready_day(hf_papers) -> date:
    """The saved 2025-11-07 list is scraped ok, so the digest dated 2025-11-08 is ready."""
    return DIGEST_DAY
