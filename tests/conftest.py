from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from django.core.cache import cache

from papers import services as paper_services
from tests.browser import browser, page, screenshot  # noqa: F401 - fixtures for tests/e2e and tests/system
from tests.feedserver import FeedServer

FIXTURES = Path(__file__).parent / "fixtures"
# The saved list's papers were featured on this day.
HF_DAY = date(2025, 11, 7)


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own outbox and var/ and an empty cache; admins to alert."""
    settings.VAR_DIR = tmp_path / "var"
    settings.OUTBOX_DIR = tmp_path / "outbox"
    settings.ADMINS = [("Curators", "curators@example.org")]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A real HTTP server on 127.0.0.1 that answers like Hugging Face, as each test scripts it."""
    server = FeedServer()
    yield server
    server.stop()


@pytest.fixture
def hf_fixtures() -> Path:
    """Directory of the saved Hugging Face data (see its README.md)."""
    return FIXTURES / "hf"


@pytest.fixture
def hf_papers(fixtures_dir: Path) -> None:
    """The 15 real papers of the saved 2025-11-07 list (the signup preview's window is the
    latest days that have papers, so no date shifting is needed)."""
    run = paper_services.scrape_file(path=fixtures_dir / "hf/api/daily_papers_2025-11-07.subset.json", day=HF_DAY)
    assert run.status != "failed", run.error
