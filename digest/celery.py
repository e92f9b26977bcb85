"""The Celery app and its beat schedule.

Beat uses django-celery-beat's DatabaseScheduler: the entries below are written
into the database at start-up, where curators can disable, edit or run them
from the admin; a disabled entry stays disabled across restarts.
"""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")

app = Celery("digest")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def install_schedule(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    hours = ",".join(str(h) for h in settings.SCRAPE_DAILY_HOURS)
    sender.conf.beat_schedule = {
        # The day's list fills up as authors submit papers, so early runs are partial;
        # each run re-scrapes the whole day and the last one is what digests use.
        "scrape-daily-papers": {
            "task": "papers.tasks.scrape_daily",
            "schedule": crontab(minute=5, hour=hours),
        },
        # Trending moves slowly; once a day keeps momentum figures fresh for ranking.
        "scrape-trending-papers": {
            "task": "papers.tasks.scrape_trending",
            "schedule": crontab(minute=20, hour=settings.SCRAPE_TRENDING_HOUR),
        },
        # Hourly: plan the digests whose subscribers' local send hour has come, release
        # those held for a late scrape, sweep dead workers' claims and fan out batches.
        # A second beat or a missed hour does no harm: planning is idempotent.
        "plan-digests": {
            "task": "digest.tasks.plan_digests",
            "schedule": crontab(minute=settings.DIGEST_PLAN_MINUTE),
        },
        # A signup whose enqueue was lost (broker down) still gets its confirmation email
        # within minutes; a person waiting at their inbox will not wait much longer.
        "sweep-confirmations": {
            "task": "digest.tasks.sweep_confirmations",
            "schedule": crontab(minute="*/5"),
        },
    }
    if settings.INBOUND_IMAP_URL:
        # Bounces, complaints and mailto unsubscribes: Gmail and Yahoo want unsubscribes
        # honoured within two days; minutes keeps a complaint from meeting another digest.
        sender.conf.beat_schedule["read-inbound"] = {
            "task": "digest.tasks.read_inbound",
            "schedule": crontab(minute=f"*/{settings.INBOUND_IMAP_MINUTES}"),
        }
