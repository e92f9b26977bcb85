"""The deployed service, end to end: real processes, PostgreSQL, Redis, SMTP and a browser."""

from tests.system.stack import Stack, wait_for


def test_beat_scrapes_through_the_worker_into_postgres(stack: Stack) -> None:
    """Beat (database scheduler) fires the scrape, a worker runs it, the papers land in PostgreSQL."""
    stack.every("papers.tasks.scrape_daily", 2)
    stack.start("worker")
    stack.start("beat")

    wait_for(lambda: stack.scalar("SELECT count(*) FROM papers_paper") == 15, timeout=60, what="15 papers stored")

    statuses = stack.rows("SELECT DISTINCT status FROM papers_scraperun WHERE source = 'daily'")
    assert {s for (s,) in statuses} <= {"ok", "partial"}
    assert stack.scalar("SELECT count(*) FROM papers_paper") == 15
