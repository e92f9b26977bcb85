"""The scheduled scrape and the scrape command against a real HTTP server on 127.0.0.1."""

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from papers import services, tasks
from papers.models import Paper, ScrapeRun

pytestmark = pytest.mark.django_db

JSON = {"Content-Type": "application/json"}
HTML = {"Content-Type": "text/html; charset=utf-8"}


@pytest.fixture(autouse=True)
def _feed(settings, feed_server) -> None:
    settings.HF_BASE_URL = feed_server.url
    settings.HF_MAX_RETRIES = 0


def day_items(hf_fixtures: Path) -> bytes:
    return (hf_fixtures / "api" / "daily_papers_2025-11-07.subset.json").read_bytes()


def test_it_scrapes_yesterday_final_and_today_partial(feed_server, hf_fixtures: Path, monkeypatch) -> None:
    """Beat's daily run stores yesterday's complete list as ok and today's as partial."""
    today = date(2025, 11, 8)
    monkeypatch.setattr(services, "local_today", lambda: today)
    feed_server.route("/api/daily_papers", [(200, JSON, b"[]")])
    feed_server.route("/api/daily_papers?date=2025-11-07&limit=100&p=0", [(200, JSON, day_items(hf_fixtures))])

    summaries = tasks.scrape_daily()

    runs = list(ScrapeRun.objects.order_by("pk"))
    assert [(r.day, r.status) for r in runs] == [
        (date(2025, 11, 7), ScrapeRun.Status.OK),
        (today, ScrapeRun.Status.PARTIAL),
    ]
    assert summaries[0].startswith("scrape daily 2025-11-07: ok via api, 15 papers (15 new, 0 updated)")
    assert Paper.objects.filter(featured_on=date(2025, 11, 7)).count() == 15
    assert mail.outbox == []


def test_it_does_not_rescrape_a_day_that_is_already_ok(feed_server, hf_fixtures: Path, monkeypatch) -> None:
    monkeypatch.setattr(services, "local_today", lambda: date(2025, 11, 8))
    ScrapeRun.objects.create(source="daily", day=date(2025, 11, 7), status=ScrapeRun.Status.OK, papers_seen=15)
    feed_server.route("/api/daily_papers", [(200, JSON, b"[]")])

    services.scrape_schedule_run(now=datetime(2025, 11, 8, 12, tzinfo=ZoneInfo("UTC")))

    assert all("date=2025-11-08" in t for t in feed_server.targets())


def test_a_broken_feed_fails_the_run_alerts_and_exits_nonzero(feed_server) -> None:
    """API 500 and an HTML page without data: failed run, email to ADMINS, one-line error."""
    feed_server.route("/api/daily_papers", [(500, JSON, b'{"error": "internal"}')])
    feed_server.route("/papers/date/2025-11-07", [(200, HTML, b"<html><title>Hugging Face</title><p>Oops</p>")])

    with pytest.raises(CommandError) as excinfo:
        call_command("scrape", "--date", "2025-11-07")

    assert "\n" not in str(excinfo.value)
    assert "api failed" in str(excinfo.value)
    assert "html fallback failed" in str(excinfo.value)
    run = ScrapeRun.objects.get()
    assert run.status == ScrapeRun.Status.FAILED
    assert run.requests >= 2
    assert Paper.objects.count() == 0
    assert len(mail.outbox) == 1
    assert "2025-11-07" in mail.outbox[0].subject


def test_an_empty_weekday_list_is_a_failure_not_an_empty_day(feed_server) -> None:
    feed_server.route("/api/daily_papers", [(200, JSON, b"[]")])

    with pytest.raises(CommandError, match="no papers for 2025-11-07, a weekday"):
        call_command("scrape", "--date", "2025-11-07")
    assert len(mail.outbox) == 1


def test_backfill_scrapes_each_day_once(feed_server, hf_fixtures: Path, capsys) -> None:
    items = json.loads(day_items(hf_fixtures))
    feed_server.route("/api/daily_papers", [(200, JSON, json.dumps(items[:3]).encode())])

    call_command("scrape", "--date", "2025-11-09", "--backfill", "3")  # Fri, Sat, Sun

    days = list(ScrapeRun.objects.order_by("day").values_list("day", flat=True))
    assert days == [date(2025, 11, 7) + timedelta(days=n) for n in range(3)]
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert Paper.objects.count() == 3


def test_trending_stores_ranks_in_snapshots(feed_server, hf_fixtures: Path) -> None:
    feed_server.route("/api/daily_papers?sort=trending&limit=100", [(200, JSON, day_items(hf_fixtures))])
    feed_server.route("/api/daily_papers", [(200, JSON, b"[]")])

    call_command("scrape", "--trending")

    run = ScrapeRun.objects.get()
    assert run.status == ScrapeRun.Status.OK
    ranks = dict(run.snapshots.values_list("paper__arxiv_id", "trending_rank"))
    assert ranks["2511.04570"] == 1
    assert sorted(ranks.values()) == list(range(1, 16))


def test_an_unchanged_list_costs_one_conditional_request_and_keeps_the_verdict(feed_server, hf_fixtures: Path) -> None:
    """The ETag of the last run is sent again; a 304 stores nothing new and keeps the day ok."""
    feed_server.route(
        "/api/daily_papers?date=2025-11-07&limit=100&p=0",
        [(200, {**JSON, "ETag": '"v1"'}, day_items(hf_fixtures)), (304, {"ETag": '"v1"'}, b"")],
    )
    feed_server.route("/api/daily_papers", [(200, JSON, b"[]")])
    services.scrape_day(day=date(2025, 11, 7))

    second = services.scrape_day(day=date(2025, 11, 7))

    assert feed_server.requests[-1].headers.get("If-None-Match") == '"v1"'
    assert second.status == ScrapeRun.Status.OK
    assert "not modified" in second.notes
    assert second.papers_seen == 0
    assert Paper.objects.count() == 15
