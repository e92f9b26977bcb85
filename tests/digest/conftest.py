from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from django.test import Client

from tests.factories import signup_data
from tests.feedserver import FeedServer
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


# --------------------------------------------------------------------------- papers readers name

PAPER_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Hugging Face knows these (tests/fixtures/hf/api/papers/), arXiv these two (tests/fixtures/arxiv/);
# NOWHERE is on neither.
HF_ONLY = ("2511.14993", "2511.08892", "2510.25616")
ARXIV_ONLY = ("1706.03762", "2404.14469")
NOWHERE = "2511.99999"


@pytest.fixture
def paper_sources(settings, feed_server: FeedServer) -> FeedServer:
    """Local stand-ins for the Hugging Face paper API and arXiv's export API, as settings point them."""
    for arxiv_id in HF_ONLY:
        body = (PAPER_FIXTURES / "hf" / "api" / "papers" / f"{arxiv_id}.json").read_bytes()
        feed_server.route(f"/api/papers/{arxiv_id}", [(200, {"Content-Type": "application/json"}, body)])
    atom = (PAPER_FIXTURES / "arxiv" / "query_id_list.atom").read_bytes()
    feed_server.route("/api/query", [(200, {"Content-Type": "application/atom+xml"}, atom)])
    settings.HF_BASE_URL = feed_server.url
    settings.ARXIV_API_URL = f"{feed_server.url}/api/query"
    return feed_server
