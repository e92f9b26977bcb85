"""The feed breaking, on the deployed stack: the run is failed, curators are alerted, no digest goes out.

Each case scripts the local feed server to break in one way for yesterday and today
(the days beat's daily scrape asks for), API and HTML fallback alike, with a confirmed
subscriber waiting for a digest.
"""

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.feedserver import FeedServer
from tests.smtp import SmtpServer
from tests.system.stack import ROOT, Stack, wait_for

ALERT_TO = "curators@example.org"  # the stack's ADMINS
HTML = {"Content-Type": "text/html; charset=utf-8"}
JSON = {"Content-Type": "application/json"}
ERROR_PAGE = (
    b"<!doctype html><html><head><title>We'll be right back</title></head><body><h1>Maintenance</h1></body></html>"
)
# A redesign: the list moved under a new key and the page lost its DailyPapers props and cards.
NEW_LAYOUT_JSON = json.dumps({"data": {"papers": [{"id": "2511.00001", "name": "A paper"}]}}).encode()
NEW_LAYOUT_HTML = b'<html><head><title>Daily Papers</title></head><body><main data-v2="1"><ol class="feed-v2">' + (
    b'<li data-item="2511.00001"><span>A paper</span></li></ol></main></body></html>'
)

FAULTS = {
    "server-errors": ([(500, {"Content-Type": "text/plain"}, b"Internal Server Error")], [(500, HTML, ERROR_PAGE)]),
    "error-page-with-200": ([(200, HTML, ERROR_PAGE)], [(200, HTML, ERROR_PAGE)]),
    "changed-layout": ([(200, JSON, NEW_LAYOUT_JSON)], [(200, HTML, NEW_LAYOUT_HTML)]),
}


def break_feed(feed: FeedServer, fault: str) -> list[str]:
    """Route yesterday's and today's lists to the fault; returns those days."""
    api, html = FAULTS[fault]
    today = timezone.localdate()
    days = [(today - timedelta(days=offset)).isoformat() for offset in (1, 0)]
    for day in days:
        feed.route(f"/api/daily_papers?date={day}&limit=100&p=0", api)
        feed.route(f"/papers/date/{day}", html)
    return days


def add_subscriber(stack: Stack) -> None:
    """A confirmed daily subscriber due every hour: if anything were sent, they would get it."""
    stack.python(
        "from django.utils import timezone\n"
        "from digest.models import Subscriber\n"
        "Subscriber.objects.create(email='ann@example.org', topics=['diffusion'], status='active',"
        " send_hour=0, time_zone='UTC', confirmed_at=timezone.now())\n"
    )


def assert_nothing_but_alerts_went_out(stack: Stack, smtp: SmtpServer) -> None:
    assert stack.scalar("SELECT count(*) FROM digest_delivery WHERE status = 'sent'") == 0
    assert smtp.messages, "no alert reached the SMTP server"
    for message in smtp.messages:
        assert message.rcpt_tos == [ALERT_TO]
        subject = message.message()["Subject"]
        assert "Scrape failed" in subject or "held back" in subject, subject
    assert smtp.to("ann@example.org") == []


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_it_fails_the_scrape_and_alerts_through_the_command(
    stack: Stack, system_feed: FeedServer, smtp_server: SmtpServer, fault: str
) -> None:
    """`manage.py scrape --date` against the broken feed exits non-zero, records the run
    failed with the reason, and mails the curators; nothing is sent to subscribers."""
    _, today = break_feed(system_feed, fault)
    add_subscriber(stack)

    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "scrape", "--date", today],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0, result.stdout
    assert "failed" in result.stderr
    runs = stack.rows("SELECT status, error FROM papers_scraperun WHERE day = %s", timezone.localdate())
    assert [status for status, _ in runs] == ["failed"]
    assert "html fallback failed" in runs[0][1]
    assert stack.scalar("SELECT count(*) FROM papers_paper") == 0
    wait_for(lambda: len(smtp_server.messages) == 1, timeout=10, what="the alert email")
    alert = smtp_server.messages[0].message()
    assert today in alert["Subject"]
    assert "html fallback failed" in alert.get_content()
    assert_nothing_but_alerts_went_out(stack, smtp_server)


def test_it_fails_beats_scrape_and_alerts_through_the_worker(
    stack: Stack, system_feed: FeedServer, smtp_server: SmtpServer
) -> None:
    """The deployed path: beat fires the daily scrape, the worker finds the feed answering
    500s, both days' runs are failed and the curators get one alert per failed run.
    The digest planner runs too and holds the day's digests back."""
    days = break_feed(system_feed, "server-errors")
    add_subscriber(stack)
    stack.every("papers.tasks.scrape_daily", 2)
    stack.every("digest.tasks.plan_digests", 2)
    stack.start("worker")
    stack.start("beat")

    wait_for(
        lambda: stack.scalar("SELECT count(DISTINCT day) FROM papers_scraperun WHERE status = 'failed'") == 2,
        timeout=60,
        what="both days' scrapes failed",
    )
    stack.stop("beat")
    stack.stop("worker")

    statuses = stack.rows("SELECT DISTINCT status FROM papers_scraperun WHERE source = 'daily'")
    assert statuses == [("failed",)]
    failed = stack.scalar("SELECT count(*) FROM papers_scraperun WHERE status = 'failed'")

    def alerts(kind: str) -> list[str]:
        return [m.message()["Subject"] for m in smtp_server.messages if kind in m.message()["Subject"]]

    wait_for(lambda: len(alerts("Scrape failed")) == failed, timeout=10, what="one alert per failed run")
    assert all(day in " ".join(alerts("Scrape failed")) for day in days)
    # The planner held today's digest back (its papers, yesterday's list, failed) and said so once.
    assert stack.rows("SELECT status FROM digest_delivery") == [("waiting",)]
    assert len(alerts("held back")) == 1
    assert_nothing_but_alerts_went_out(stack, smtp_server)
