"""Every console page at the issue's size: 100,000 subscribers, 50,000 papers, a day of deliveries."""

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from digest.models import Delivery, Subscriber
from papers.models import Paper, Pin
from tests.console.conftest import console

pytestmark = pytest.mark.django_db

SUBSCRIBERS = 100_000
PAPERS = 50_000


@pytest.fixture
def big_data() -> None:
    now = timezone.now()
    Subscriber.objects.bulk_create(
        (
            Subscriber(
                email=f"reader{n}@example.org",
                status="active" if n % 10 else "paused",
                topics=["diffusion", f"topic {n % 500}"],
                confirmed_at=now - timedelta(days=n % 40),
            )
            for n in range(SUBSCRIBERS)
        ),
        batch_size=5000,
    )
    published = datetime(2025, 1, 1, tzinfo=UTC)
    Paper.objects.bulk_create(
        (
            Paper(
                arxiv_id=f"25{n:08d}",
                title=f"Paper {n} on diffusion",
                authors=["Ada Lovelace", f"Author {n}"],
                published_at=published,
                featured_on=date(2025, 1, 1) + timedelta(days=n // 50),
                upvotes=n % 300,
                ai_keywords=["diffusion", "video"],
            )
            for n in range(PAPERS)
        ),
        batch_size=5000,
    )
    Pin.objects.create(paper=Paper.objects.first(), day=timezone.localdate())
    first_id = Subscriber.objects.order_by("pk").values_list("pk", flat=True).first()
    today = timezone.localdate()
    Delivery.objects.bulk_create(
        (
            Delivery(subscriber_id=first_id + n, digest_date=today, status="sent" if n % 50 else "failed")
            for n in range(SUBSCRIBERS)
        ),
        batch_size=5000,
    )


PAGES = [
    ("", {}, 8),
    ("digest/subscriber/", {}, 7),
    ("digest/subscriber/", {"q": "reader4242@", "status__exact": "active", "topic": "topic 242"}, 7),
    ("papers/paper/", {}, 8),
    ("papers/paper/", {"q": "Lovelace", "pinned": "yes"}, 8),
    ("digest/delivery/", {"status__exact": "failed"}, 9),
]


def test_it_stays_fast_at_full_size(big_data, curator_client, django_assert_max_num_queries) -> None:
    """One test for every page, so the 250,000 rows are written once. What it pins is the
    number of queries per page (no query per row, no count per filter choice); the time
    each page took is printed (pytest -s), never asserted: speed belongs to benchmarks."""
    for path, params, max_queries in PAGES:
        curator_client.get(console(path), params)  # warm the session and permission caches

        started = time.perf_counter()
        with django_assert_max_num_queries(max_queries):
            response = curator_client.get(console(path), params)
        elapsed = time.perf_counter() - started

        assert response.status_code == 200
        assert len(response.content) > 1000
        print(f"console {path or 'index'} {params}: {elapsed * 1000:.0f} ms at full size")
