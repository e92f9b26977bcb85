from datetime import timedelta

import pytest
from django.utils import timezone

from digest.celery import app
from papers.models import ScrapeRun

pytestmark = pytest.mark.django_db


def test_it_is_healthy_after_a_recent_good_scrape(client) -> None:
    ScrapeRun.objects.create(source="daily", status=ScrapeRun.Status.OK, finished_at=timezone.now())

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
