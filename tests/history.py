"""Two weeks of one subscriber's digests, each day's outcome made by a real run.

Every day is planned by the planner and sent by ``send_batch`` against the local SMTP
test server, with real papers (the saved November 2025 month, re-dated to the last two
weeks so the manage page's "last 30 days" holds them). What differs from day to day is
what a real service meets: a list that is late or never arrives, a weekend without a
list, nothing matching, a refusing or vanishing mail server, a pause, a feed-only spell.
Shared by tests/digest/test_history.py and the browser test in tests/e2e/.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from django.utils import timezone

from digest import sending, services
from digest.models import Delivery, Subscriber
from digest.sending.archive import local_today
from papers import services as paper_services
from papers.feed import FeedClient
from papers.models import ScrapeRun
from tests.feedserver import FeedServer
from tests.smtp import DROP, SmtpServer

MONTH = Path(__file__).parent / "fixtures/hf/api/daily_papers_month-2025-11.json"
TOPIC = "video generation"
# A refusal the reader stays subscribed through (a policy block counts toward the bounce
# limit); "5.1.1 no such user" would suppress the address at once and end the history there.
BOUNCE = "554 5.7.1 <{}>: Recipient address rejected: Access denied"
TRY_LATER = "451 4.3.0 Mailbox busy, try again later"

# Oldest first. "no_list" needs a weekend list (Hugging Face publishes none then), so it
# takes the newest date whose list day is a Saturday or Sunday; the others fill the rest.
ORDER = [
    "sent",
    "feed",
    "never_arrived",
    "sent_late",
    "nothing_new",
    "note",
    "stuck",
    "unsubscribed",
    "failed",
    "bounced",
]


def _text(item: dict) -> str:
    paper = item["paper"]
    parts = [paper.get("title", ""), paper.get("summary", ""), paper.get("ai_summary") or ""]
    return " ".join([*parts, *(paper.get("ai_keywords") or [])]).lower()


class Pool:
    """The month's 412 real papers, handed out once each, by what they mention."""

    def __init__(self) -> None:
        items = json.loads(MONTH.read_text())
        self.matching = [i for i in items if TOPIC in _text(i)]
        self.near = [i for i in items if "video" in _text(i) and TOPIC not in _text(i)]
        self.other = [i for i in items if "video" not in _text(i) and "generation" not in _text(i)]

    def take(self, kind: str, count: int) -> list[dict]:
        taken, rest = getattr(self, kind)[:count], getattr(self, kind)[count:]
        setattr(self, kind, rest)
        return taken


@dataclass
class History:
    subscriber: Subscriber
    today: date
    days: dict[str, date]  # outcome code -> digest date


class HistoryMaker:
    def __init__(self, *, smtp: SmtpServer, feed: FeedServer, tmp: Path) -> None:
        self.smtp = smtp
        self.feed = feed
        self.tmp = tmp
        self.pool = Pool()

    def store(self, day: date, items: list[dict]) -> None:
        """The list of ``day`` as scraped: the items re-dated to it, loaded like a saved file."""
        dated = []
        for item in items:
            item = copy.deepcopy(item)
            item["paper"]["submittedOnDailyAt"] = f"{day.isoformat()}T08:00:00.000Z"
            dated.append(item)
        path = self.tmp / f"list-{day}.json"
        path.write_text(json.dumps(dated))
        run = paper_services.scrape_file(path=path, day=day)
        assert run.status == ScrapeRun.Status.OK, run.error

    def store_matching(self, day: date) -> None:
        self.store(day, self.pool.take("matching", 3) + self.pool.take("other", 4))

    def store_empty(self, day: date) -> None:
        """A weekend scrape that finds no papers: Hugging Face's feed answers an empty list."""
        self.feed.route(f"/api/daily_papers?date={day.isoformat()}&limit=100&p=0", [(200, {}, b"[]")])
        with FeedClient(self.feed.url, max_retries=0) as client:
            run = paper_services.scrape_day(day=day, client=client)
        assert run.status == ScrapeRun.Status.OK, run.summary()

    def send(self, subscriber: Subscriber, day: date, *, times: int = 1) -> None:
        """Plan the day and run the batch, ``times`` runs as the hourly planner would."""
        sending.plan_date(day, subscriber_ids=[subscriber.pk])
        for _ in range(times):
            ids = list(
                Delivery.objects.filter(digest_date=day, status=Delivery.Status.PENDING).values_list("pk", flat=True)
            )
            sending.send_batch(ids)

    def make(self, subscriber: Subscriber) -> History:
        today = local_today(subscriber)
        start = today - timedelta(days=13)
        Subscriber.objects.filter(pk=subscriber.pk).update(
            created_at=timezone.now() - timedelta(days=13), confirmed_at=timezone.now() - timedelta(days=13)
        )
        dates = [today - timedelta(days=n) for n in range(12, 1, -1)]  # T-12 .. T-2
        no_list = max(d for d in dates if (d - timedelta(days=1)).weekday() >= 5)
        dates.remove(no_list)
        days = dict(zip(ORDER, dates, strict=True))
        days["no_list"] = no_list
        days["held"] = today - timedelta(days=1)
        days["paused"] = today
        assert start < min(days.values())
        address = subscriber.email
        for outcome, day in sorted(days.items(), key=lambda kv: kv[1]):
            if outcome in ("held", "paused"):
                continue
            list_day = day - timedelta(days=1)
            subscriber.refresh_from_db()
            if outcome in ("sent", "feed", "stuck", "failed", "bounced"):
                self.store_matching(list_day)
            if outcome == "sent":
                self.send(subscriber, day)
            elif outcome == "feed":
                services.subscriber_update(subscriber=subscriber, preferences={"channel": "feed"})
                self.send(subscriber, day)
                services.subscriber_update(subscriber=subscriber, preferences={"channel": "both"})
            elif outcome == "never_arrived":
                self.send(subscriber, day)  # the list never comes: the row waits ...
                sending.expire_waiting(today=today)  # ... and is given up after two days
            elif outcome == "sent_late":
                self.send(subscriber, day)  # planned while the list is missing: held back
                self.store_matching(list_day)
                sending.release_waiting()
                self.send(subscriber, day)
            elif outcome == "no_list":
                self.store_empty(list_day)
                self.send(subscriber, day)
            elif outcome == "nothing_new":
                self.store(list_day, self.pool.take("near", 1) + self.pool.take("other", 4))
                self.send(subscriber, day)
            elif outcome == "note":
                services.subscriber_update(subscriber=subscriber, preferences={"quiet_day": "note"})
                self.store(list_day, self.pool.take("other", 6))
                self.send(subscriber, day)
                services.subscriber_update(subscriber=subscriber, preferences={"quiet_day": "nothing"})
            elif outcome == "unsubscribed":
                self.store_matching(list_day)
                sending.plan_date(day, subscriber_ids=[subscriber.pk])
                services.subscriber_unsubscribe(subscriber=subscriber)  # before the batch ran
                services.subscriber_resume(subscriber=subscriber)  # and back, from the manage page
            elif outcome == "stuck":
                self.smtp.reply(address, DROP, stage="DATA", times=1)
                self.send(subscriber, day)
            elif outcome == "failed":
                self.smtp.reply(address, TRY_LATER)
                self.send(subscriber, day, times=3)  # DIGEST_MAX_ATTEMPTS hourly runs
                self.smtp.handler.rules.pop(address)
            elif outcome == "bounced":
                self.smtp.reply(address, BOUNCE.format(address), times=1)
                self.send(subscriber, day)
        # Today: planned, then paused by the subscriber before it went out (and resumed).
        self.store_matching(today - timedelta(days=1))
        sending.plan_date(today, subscriber_ids=[subscriber.pk])
        services.subscriber_pause(subscriber=subscriber)
        services.subscriber_resume(subscriber=subscriber)
        # Yesterday's digest, planned after that, waits for a list that is late.
        self.send(subscriber, days["held"])
        subscriber.refresh_from_db()
        return History(subscriber=subscriber, today=today, days=days)
