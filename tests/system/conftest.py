import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.utils import timezone

from tests.feedserver import FeedServer
from tests.smtp import SmtpServer
from tests.system.stack import Stack

POSTGRES = os.environ.get("DATABASE_URL", "")
REDIS = os.environ.get("REDIS_URL", "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/system/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)  # each starts gunicorn, workers and beat
    if POSTGRES.startswith("postgres") and REDIS:
        return
    skip = pytest.mark.skip(reason="whole-system tests need the real PostgreSQL and Redis (DATABASE_URL, REDIS_URL)")
    for item in items:
        if "tests/system/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture
def system_feed(hf_fixtures: Path) -> Iterator[FeedServer]:
    """Hugging Face as the stack sees it: yesterday's and today's lists from saved real data."""
    server = FeedServer()
    items = json.loads((hf_fixtures / "api" / "daily_papers_2025-11-07.subset.json").read_text())
    today = timezone.localdate()
    for offset, chunk in ((1, items[:10]), (0, items[10:])):
        day = today - timedelta(days=offset)
        for item in chunk:
            item["paper"]["submittedOnDailyAt"] = f"{day.isoformat()}T00:00:00.000Z"
        server.route(
            f"/api/daily_papers?date={day.isoformat()}&limit=100&p=0",
            [(200, {"Content-Type": "application/json"}, json.dumps(chunk).encode())],
        )
    server.route("/api/daily_papers", [(200, {"Content-Type": "application/json"}, b"[]")])
    yield server
    server.stop()


@pytest.fixture
def stack(tmp_path: Path, smtp_server, system_feed: FeedServer) -> Iterator[Stack]:
    # The Redis database REDIS_URL names: runs from different checkouts at once (each with
    # its own database number) then never share a queue.
    redis_url = REDIS
    redis.Redis.from_url(redis_url).flushdb()
    stack = Stack(
        tmp=tmp_path,
        server_url=POSTGRES,
        redis_url=redis_url,
        smtp_port=smtp_server.port,
        feed_url=system_feed.url,
        extra_env={},
    )
    stack.create()
    try:
        yield stack
    finally:
        stack.destroy()
        for name in ("web", "worker", "worker2", "beat", "beat2"):
            print(f"----- {name} log -----\n{stack.log(name)[-4000:]}")


@pytest.fixture
def smtp_server() -> Iterator["SmtpServer"]:
    server = SmtpServer().start()
    yield server
    server.stop()
