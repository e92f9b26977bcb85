import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from digest import heartbeats, tasks
from digest.celery import app
from papers.models import ScrapeRun
from tests.digest.test_settings import READ_VARS

pytestmark = pytest.mark.django_db


def test_it_is_healthy_after_a_recent_good_scrape(client) -> None:
    ScrapeRun.objects.create(source="daily", status=ScrapeRun.Status.OK, finished_at=timezone.now())
    heartbeats.stamp(heartbeats.WORKER)
    heartbeats.stamp(heartbeats.BEAT)

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert (body["database"], body["broker"], body["scrape"], body["ok"]) == ("ok", "ok", "ok", True)
    assert body["last_good_scrape_age_seconds"] <= 5


def test_it_is_unhealthy_when_the_last_good_scrape_is_too_old(client, settings) -> None:
    settings.HEALTH_MAX_SCRAPE_AGE = 3600
    old = timezone.now() - timedelta(hours=2)
    ScrapeRun.objects.create(source="daily", status=ScrapeRun.Status.OK, finished_at=old)
    ScrapeRun.objects.create(source="daily", status=ScrapeRun.Status.FAILED, finished_at=timezone.now())

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["scrape"] == "stale"


def test_it_reports_an_unreachable_broker(client, monkeypatch) -> None:
    ScrapeRun.objects.create(source="daily", status=ScrapeRun.Status.OK, finished_at=timezone.now())
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")
    assert response.json()["database"] == "ok"


def stamp_earlier(part: str, seconds: float, monkeypatch) -> None:
    """A heartbeat left `seconds` ago."""
    earlier = time.time() - seconds
    with monkeypatch.context() as patch:
        patch.setattr(heartbeats.time, "time", lambda: earlier)
        heartbeats.stamp(part)


@pytest.fixture
def scraped() -> None:
    ScrapeRun.objects.create(source="daily", status=ScrapeRun.Status.OK, finished_at=timezone.now())


def test_it_reports_a_stale_worker_when_no_worker_left_a_heartbeat(client, scraped) -> None:
    """The broker answering is not enough: something must consume it."""
    heartbeats.stamp(heartbeats.BEAT)

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert (body["worker"], body["beat"], body["broker"], body["ok"]) == ("stale", "ok", "ok", False)
    assert body["last_worker_heartbeat_age_seconds"] is None


def test_it_reports_a_stale_worker_when_its_last_heartbeat_is_too_old(client, scraped, settings, monkeypatch) -> None:
    settings.HEALTH_MAX_WORKER_AGE = 180
    heartbeats.stamp(heartbeats.BEAT)
    stamp_earlier(heartbeats.WORKER, 170, monkeypatch)
    assert client.get("/healthz").json()["worker"] == "ok"

    stamp_earlier(heartbeats.WORKER, 200, monkeypatch)
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["worker"] == "stale"
    assert 199 <= response.json()["last_worker_heartbeat_age_seconds"] <= 205


def test_it_reports_a_stale_beat_when_the_planner_has_not_run_for_too_long(
    client, scraped, settings, monkeypatch
) -> None:
    settings.HEALTH_MAX_BEAT_AGE = 7200
    heartbeats.stamp(heartbeats.WORKER)
    assert client.get("/healthz").json()["beat"] == "stale"  # never ran

    stamp_earlier(heartbeats.BEAT, 7300, monkeypatch)
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert (body["beat"], body["worker"]) == ("stale", "ok")
    assert body["last_planner_run_age_seconds"] >= 7300


def test_it_counts_a_planner_run_as_beat_alive(client, scraped) -> None:
    heartbeats.stamp(heartbeats.WORKER)

    tasks.plan_digests.delay()

    body = client.get("/healthz").json()
    assert (body["beat"], body["ok"]) == ("ok", True)
    assert body["last_planner_run_age_seconds"] <= 5


def test_it_leaves_a_heartbeat_while_a_celery_worker_runs(tmp_path: Path, settings) -> None:
    """A real worker on the local defaults (filesystem broker, file cache) stamps its heartbeat."""
    clean = {k: v for k, v in os.environ.items() if k not in READ_VARS and not k.startswith("DJANGO_")}
    var = tmp_path / "worker-var"
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "digest", "worker", "--pool", "solo", "--loglevel", "INFO"],
        env={**clean, "DIGEST_NO_BOOTSTRAP": "1", "VAR_DIR": str(var)},
        cwd=Path(__file__).resolve().parents[2],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                "LOCATION": str(var / "cache"),
            }
        }
        deadline = time.monotonic() + 60
        while heartbeats.age(heartbeats.WORKER) is None and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        assert heartbeats.age(heartbeats.WORKER) is not None, (tmp_path / "worker.log").read_text()
        assert heartbeats.age(heartbeats.WORKER) < 30
    finally:
        worker.terminate()
        worker.wait(timeout=30)
