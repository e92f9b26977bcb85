"""The Celery app and its beat schedule.

Beat uses django-celery-beat's DatabaseScheduler: the entries below are written
into the database at start-up, where curators can disable, edit or run them
from the admin; a disabled entry stays disabled across restarts.
"""

import os
import sys
from pathlib import Path
from typing import Any

from celery import Celery, bootsteps
from celery.schedules import crontab
from celery.signals import beat_init
from django.conf import settings

from digest import heartbeats
from digest.startup import configured, database_reachable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")
# Celery reads the settings lazily, deep inside its command line's option parsing, where a
# bad one would end in a long traceback: read them now, so it ends in one line instead.
configured(lambda: settings.INSTALLED_APPS)
# Beat's DatabaseScheduler reads its schedule from the database before the first tick; an
# unreachable one ends there in one line too, not in a traceback per retry. (The worker
# needs the database only per task, so it starts and retries those.)
_command = Path(sys.argv[0]).name if sys.argv else ""
if _command in ("celery", "__main__.py") and {"beat", "-B", "--beat"} & set(sys.argv[1:]):
    database_reachable()

app = Celery("digest")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class WorkerHeartbeat(bootsteps.StartStopStep):
    """While the worker's consumer runs (connected to the broker, taking tasks), stamp its
    heartbeat every few seconds; /healthz reports the worker stale when none is fresh."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        self.timer_entry: Any = None

    def start(self, consumer: Any) -> None:
        heartbeats.stamp(heartbeats.WORKER)
        self.timer_entry = consumer.timer.call_repeatedly(
            heartbeats.WORKER_INTERVAL, heartbeats.stamp, (heartbeats.WORKER,)
        )

    def stop(self, consumer: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None


app.steps["consumer"].add(WorkerHeartbeat)


@beat_init.connect
def beat_started(sender: object, **kwargs: object) -> None:
    """A fresh beat counts as alive until its first hourly planner run is due."""
    heartbeats.stamp(heartbeats.BEAT)


@app.on_after_finalize.connect
def install_schedule(sender: Celery, **kwargs: object) -> None:
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
