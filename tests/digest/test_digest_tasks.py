"""Beat's hourly planner task, end to end: plan, fan out, send, with Celery eager."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from digest import tasks
from digest.models import Delivery, SentPaper
from papers.models import Paper, ScrapeRun
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def papers_of_yesterday(hf_papers) -> None:
    """The saved papers as if they were yesterday's (UTC) list, scraped ok: today's digest is ready."""
    yesterday = timezone.now().date() - timedelta(days=1)
    Paper.objects.update(featured_on=yesterday)
    ScrapeRun.objects.create(
        source=ScrapeRun.Source.DAILY, day=yesterday, status=ScrapeRun.Status.OK, finished_at=timezone.now()
    )


def test_plan_digests_plans_and_sends_end_to_end(smtp_server, papers_of_yesterday, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.DIGEST_BATCH_SIZE = 2
    readers = SubscriberFactory.create_batch(3, topics=[], time_zone="UTC", send_hour=0, max_papers=3)
    today = timezone.now().date()

    result = tasks.plan_digests.delay().get(timeout=60)

    assert result["batches"] == 2
    assert (result["planned"], result["waiting"], result["stuck"]) == (3, 0, 0)
    for reader in readers:
        [received] = smtp_server.to(reader.email)
        assert received.message().get_body(("plain",)).get_content()
        delivery = Delivery.objects.get(subscriber=reader, digest_date=today)
        assert delivery.status == Delivery.Status.SENT
        assert SentPaper.objects.filter(subscriber=reader).count() == 3

    # Again an hour later (a second beat, a retried task): nothing new goes out.
    count = len(smtp_server.messages)
    again = tasks.plan_digests.delay().get(timeout=60)
    assert (again["planned"], again["batches"]) == (0, 0)
    assert len(smtp_server.messages) == count
    assert Delivery.objects.filter(subscriber__in=readers).count() == 3
