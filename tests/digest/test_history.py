"""Why each day brought what it brought: every outcome line from a real run, on the manage page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from digest import sending, tokens
from digest.models import Delivery, SentPaper
from tests.digest.conftest import DIGEST_DAY
from tests.factories import SubscriberFactory
from tests.history import TOPIC, HistoryMaker

pytestmark = pytest.mark.django_db

WHEN = r"\d\d:\d\d"
FAILED = r"^Not sent: the service had a problem; curators were alerted$"
LINES = {
    "sent": rf"^Sent {WHEN} — 3 papers$",
    "sent_late": rf"^Held back: Hugging Face's list was late; sent {WHEN} — 3 papers$",
    "note": rf"^Nothing new matched your topics; sent {WHEN} a short note with the day's top 3 papers$",
    "feed": r"^In your feed — 3 papers \(you chose the feed, no email\)$",
    "nothing_new": (
        r"^Nothing new matched your topics — closest: “[^”]+” "
        r"\(it mentions “(video|generation)” but not “video generation”\)$"
    ),
    "no_list": (
        r"^Not sent: Hugging Face published no list on (Saturday|Sunday) \d+ \w+ "
        r"\(a weekend: it rarely publishes one then\)$"
    ),
    "held": r"^Held back: Hugging Face's list of \w+ \d+ \w+ is late; it goes out as soon as it arrives$",
    "never_arrived": r"^Not sent: Hugging Face's list never arrived within 2 days, and old news is not sent late$",
    "paused": r"^Paused by you$",
    "unsubscribed": r"^Not sent: you had unsubscribed$",
    "bounced": (
        r"^Your mail server refused it \(554 5\.7\.1 <ada@example\.org>: "
        r"Recipient address rejected: Access denied\) — check your address$"
    ),
    "failed": FAILED,
    "stuck": FAILED,
}  # fmt: skip


@pytest.fixture
def made(smtp_server, feed_server, tmp_path):
    subscriber = SubscriberFactory(email="ada@example.org", topics=[TOPIC], time_zone="Europe/Berlin", channel="both")
    return HistoryMaker(smtp=smtp_server, feed=feed_server, tmp=tmp_path).make(subscriber)


def test_it_records_every_outcome_line_when_the_planner_and_batch_decide(made, smtp_server):
    rows = {d.digest_date: d for d in Delivery.objects.filter(subscriber=made.subscriber)}
    for outcome, pattern in LINES.items():
        row = rows[made.days[outcome]]
        assert row.outcome == outcome
        assert re.search(pattern, row.outcome_line), (outcome, row.outcome_line)
    # Emails went out for the sent, late and note days (and the one the relay took before hanging up).
    emailed = {d.digest_date for d in rows.values() if d.message_id}
    assert emailed == {made.days[o] for o in ("sent", "sent_late", "note")}
    assert len(smtp_server.to("ada@example.org")) == 4


def test_it_explains_the_last_30_days_in_one_query(made, django_assert_num_queries):
    with django_assert_num_queries(1):
        history = sending.history(made.subscriber)
    by_day = {line.day: line for line in history.days}
    # Newest first, from today back to the signup day, one line per digest date.
    assert [line.day for line in history.days] == sorted(by_day, reverse=True)
    assert history.days[0].day == made.today
    assert len(history.days) == 14  # today and the 13 days since signup
    for outcome, pattern in LINES.items():
        line = by_day[made.days[outcome]]
        assert (line.outcome, bool(re.search(pattern, line.line))) == (outcome, True), line
    readable = {o for o, day in made.days.items() if by_day[day].read_url}
    assert readable == {"sent", "sent_late", "note", "feed"}
    assert {line.tone for line in history.days if line.outcome in ("bounced", "failed", "stuck")} == {"problem"}
    # The signup day has no digest: nothing was planned for it.
    assert by_day[made.today - timedelta(days=13)].line == "You signed up; digests start with your next send hour"


def test_it_shows_the_days_on_the_manage_page_with_links(made, client: Client):
    page = client.get(f"/manage/{tokens.make_token(made.subscriber, 'manage')}").content.decode()
    assert "Your last 30 days" in page
    assert page.count('class="day day-') == 14
    for outcome in LINES:
        assert f'data-outcome="{outcome}"' in page
    read = [
        tokens.read_token(t, "webview")[1]["d"] for t in re.findall(r'href="http://[^/]+/view/([^"]+)">read it<', page)
    ]
    assert sorted(read) == sorted(made.days[o].isoformat() for o in ("sent", "sent_late", "note", "feed"))
    assert f'href="/day/{made.days["nothing_new"] - timedelta(days=1)}"' in page


def test_a_quiet_days_note_counts_for_the_ledger_and_goes_once(made, smtp_server):
    note = Delivery.objects.get(subscriber=made.subscriber, digest_date=made.days["note"])
    assert SentPaper.objects.filter(delivery=note).count() == 3
    message = smtp_server.to("ada@example.org")
    notes = [m for m in message if f".{made.days['note']:%Y%m%d}@" in m.message()["Message-ID"]]
    assert len(notes) == 1
    assert "The 3 papers most upvoted on Hugging Face today." in notes[0].message().get_body(("plain",)).get_content()
    before = len(smtp_server.messages)
    sending.plan_date(made.days["note"], subscriber_ids=[made.subscriber.pk])
    sending.send_batch([note.pk])
    assert len(smtp_server.messages) == before


def test_the_manage_page_costs_the_same_queries_whatever_the_history(made, client: Client):
    fresh = SubscriberFactory(email="new@example.org", topics=[TOPIC])
    counts = []
    for subscriber in (made.subscriber, fresh, made.subscriber):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/manage/{tokens.make_token(subscriber, 'manage')}").status_code == 200
        counts.append(len(queries))
    # The first request also fills the topic suggestions' cache.
    assert counts[1] == counts[2] == 2  # the subscriber, their history


# --------------------------------------------------------------------------- the rarer lines


def line_of(delivery_id: int) -> tuple[str, str, str]:
    row = Delivery.objects.get(pk=delivery_id)
    return row.status, row.outcome, row.outcome_line


def test_a_busy_mail_server_says_trying_again_then_sent(ready_day, smtp_server, settings):
    ann = SubscriberFactory(email="ann@example.org", topics=["reinforcement learning"], time_zone="UTC")
    sending.plan_date(DIGEST_DAY)
    [row] = Delivery.objects.values_list("pk", flat=True)
    smtp_server.reply(ann.email, "452 4.2.2 Mailbox full, try later", times=settings.DIGEST_SMTP_RETRIES)
    sending.send_batch([row])
    assert line_of(row) == (
        "pending",
        "retrying",
        "Not sent yet: your mail server asked us to try later (452 4.2.2 Mailbox full, try later);"
        " trying again within the hour",
    )
    sending.send_batch([row])
    status, outcome, line = line_of(row)
    assert (status, outcome) == ("sent", "sent")
    assert re.fullmatch(rf"Sent {WHEN} — \d+ papers?", line)


def test_a_suppressed_address_has_its_queued_days_explained(ready_day, smtp_server, settings):
    settings.DIGEST_BOUNCE_LIMIT = 1
    ann = SubscriberFactory(email="ann@example.org", topics=["reinforcement learning"])
    sending.plan_date(DIGEST_DAY)
    sending.plan_date(DIGEST_DAY + timedelta(days=1))  # its list (of the 8th) is not scraped: it waits
    today, tomorrow = Delivery.objects.order_by("digest_date").values_list("pk", flat=True)
    smtp_server.reply(ann.email, "550 5.1.1 No such user")
    sending.send_batch([today])
    assert line_of(today)[1:] == (
        "bounced",
        "Your mail server refused it (550 5.1.1 No such user) — check your address",
    )
    assert line_of(tomorrow)[1:] == (
        "suppressed",
        "Not sent: this address is blocked after repeated refusals or at your request",
    )


def test_the_sweeper_explains_what_a_dead_worker_left(ready_day, smtp_server, settings):
    bob = SubscriberFactory(topics=[])
    sending.plan_date(DIGEST_DAY)
    [row] = Delivery.objects.values_list("pk", flat=True)
    assert sending.claim([row], by="a-worker-that-dies")
    sending.mark_stuck(now=timezone.now() + timedelta(seconds=settings.DIGEST_STUCK_AFTER + 1))
    assert line_of(row) == (
        "pending",
        "retrying",
        "Not sent yet: our mail relay had a problem; trying again within the hour",
    )
    sending.send_batch([row])
    assert line_of(row)[:2] == ("sent", "sent")
    assert len(smtp_server.to(bob.email)) == 1
