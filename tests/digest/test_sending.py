"""Planning and sending the digests against a real SMTP server on 127.0.0.1.

The saved list of 2025-11-07 (``ready_day``) makes the digest dated 2025-11-08 ready.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr, parsedate_to_datetime

import pytest
from django.core import mail
from django.core.cache import cache
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from digest import sending, tokens
from digest.models import Delivery, SentPaper, Subscriber, Suppression, email_hash
from papers.models import Paper, Pin, ScrapeRun
from tests.digest.conftest import DIGEST_DAY
from tests.factories import SubscriberFactory
from tests.smtp import free_port

pytestmark = pytest.mark.django_db

# 06:30 UTC: 07:30 in Berlin, 15:30 in Tokyo, 01:30 in New York, all on 2025-11-08.
NOW = datetime(2025, 11, 8, 6, 30, tzinfo=UTC)
VIDEO = "2511.04570"  # "Thinking with Video: ...", the day's most upvoted paper
SPEECH = "2511.03295"  # "How to Evaluate Speech Translation ...", among the least upvoted


def planned() -> set[tuple[int, date, str]]:
    return set(Delivery.objects.values_list("subscriber_id", "digest_date", "status"))


def deliveries(*subscribers: Subscriber, day: date = DIGEST_DAY) -> list[int]:
    return [Delivery.objects.create(subscriber=s, digest_date=day).pk for s in subscribers]


def sent_ids(subscriber: Subscriber, day: date = DIGEST_DAY) -> list[str]:
    delivery = Delivery.objects.get(subscriber=subscriber, digest_date=day)
    return [entry["arxiv_id"] for entry in delivery.papers]


def text_of(received) -> str:
    return received.message().get_body(("plain",)).get_content()


def html_of(received) -> str:
    return received.message().get_body(("html",)).get_content()


def make_ready(day: date) -> None:
    """A good scrape of ``day`` (whatever papers it holds)."""
    ScrapeRun.objects.create(
        source=ScrapeRun.Source.FILE, day=day, status=ScrapeRun.Status.OK, finished_at=timezone.now()
    )


# --------------------------------------------------------------------------- planning


def test_plan_due_plans_only_subscribers_whose_local_hour_has_come(ready_day):
    berlin = SubscriberFactory(time_zone="Europe/Berlin", send_hour=7)
    berlin_later = SubscriberFactory(time_zone="Europe/Berlin", send_hour=8)
    tokyo = SubscriberFactory(time_zone="Asia/Tokyo", send_hour=15)
    new_york = SubscriberFactory(time_zone="America/New_York", send_hour=7)

    report = sending.plan_due(now=NOW)

    assert planned() == {(berlin.pk, DIGEST_DAY, "pending"), (tokyo.pk, DIGEST_DAY, "pending")}
    assert (report.planned, report.waiting, report.dates) == (2, 0, {DIGEST_DAY})

    sending.plan_due(now=NOW + timedelta(hours=1))  # 08:30 in Berlin, 02:30 in New York
    assert {row[0] for row in planned()} == {berlin.pk, tokyo.pk, berlin_later.pk}
    assert not Delivery.objects.filter(subscriber=new_york).exists()


def test_planning_twice_creates_nothing_new(ready_day):
    SubscriberFactory.create_batch(3, send_hour=0)
    assert sending.plan_due(now=NOW).planned == 3
    before = planned()

    again = sending.plan_due(now=NOW)
    by_date = sending.plan_date(DIGEST_DAY)

    assert (again.planned, by_date.planned) == (0, 0)
    assert planned() == before
    assert Delivery.objects.count() == 3


def test_weekly_subscribers_are_planned_only_on_the_weekly_day(ready_day, settings):
    daily = SubscriberFactory(send_hour=0)
    weekly = SubscriberFactory(send_hour=0, frequency=Subscriber.Frequency.WEEKLY)
    assert DIGEST_DAY.strftime("%A") == "Saturday"

    settings.DIGEST_WEEKLY_DAY = "monday"
    sending.plan_due(now=NOW)
    assert {row[0] for row in planned()} == {daily.pk}

    settings.DIGEST_WEEKLY_DAY = "saturday"
    sending.plan_due(now=NOW)
    assert planned() == {(daily.pk, DIGEST_DAY, "pending"), (weekly.pk, DIGEST_DAY, "pending")}


@pytest.mark.parametrize(
    "status",
    [Subscriber.Status.PAUSED, Subscriber.Status.PENDING, Subscriber.Status.UNSUBSCRIBED],
)
def test_inactive_subscribers_are_never_planned(ready_day, settings, status):
    settings.DIGEST_WEEKLY_DAY = "saturday"
    SubscriberFactory(send_hour=0, status=status)
    SubscriberFactory(send_hour=0, status=status, frequency=Subscriber.Frequency.WEEKLY)

    assert sending.plan_due(now=NOW).planned == 0
    assert sending.plan_date(DIGEST_DAY).planned == 0
    assert not Delivery.objects.exists()


def test_a_day_without_papers_waits_alerts_once_and_is_released_by_a_good_scrape(ready_day):
    ann = SubscriberFactory(send_hour=7)
    next_morning = NOW + timedelta(days=1)  # digest of 2025-11-09 needs the papers of 2025-11-08
    day = date(2025, 11, 9)

    first = sending.planner_run(now=next_morning)
    second = sending.planner_run(now=next_morning + timedelta(hours=1))

    assert (first.planned, first.waiting, first.batches) == (1, 1, 0)
    assert second.planned == 0
    assert planned() == {(ann.pk, day, "waiting")}
    alerts = [m for m in mail.outbox if "held back" in m.subject]
    assert len(alerts) == 1
    assert alerts[0].to == ["curators@example.org"]
    assert "2025-11-08" in alerts[0].body

    assert sending.release_waiting() == 0  # still no good scrape of 2025-11-08
    ScrapeRun.objects.create(source=ScrapeRun.Source.DAILY, day=date(2025, 11, 8), status=ScrapeRun.Status.FAILED)
    assert sending.release_waiting() == 0  # a failed one does not count
    make_ready(date(2025, 11, 8))
    assert sending.release_waiting() == 1
    assert planned() == {(ann.pk, day, "pending")}


# --------------------------------------------------------------------------- one digest


def test_digest_goes_to_its_subscriber_with_all_headers(smtp_server, ready_day, settings):
    settings.SITE_URL = "https://digest.example.org"
    settings.DIGEST_FROM_EMAIL = "Paper Digest <digest@digest.example.org>"
    settings.DEFAULT_FROM_EMAIL = "Paper Digest <hello@digest.example.org>"
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@digest.example.org"
    ann = SubscriberFactory(email="ann@example.org", topics=["video generation"])
    [delivery_id] = deliveries(ann)

    report = sending.send_batch([delivery_id])

    assert (report.claimed, report.sent) == (1, 1)
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["ann@example.org"]
    assert received.mail_from == "digest@digest.example.org"
    message = received.message()
    assert str(message["To"]) == "ann@example.org"
    assert parseaddr(str(message["From"])) == ("Paper Digest", "digest@digest.example.org")
    assert parseaddr(str(message["From"]))[1] != parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    subject = str(message["Subject"])
    assert "8 Nov" in subject
    assert "Thinking with Video" in subject

    delivery = Delivery.objects.get(pk=delivery_id)
    assert delivery.status == Delivery.Status.SENT
    assert str(message["Message-ID"]) == delivery.message_id
    assert re.fullmatch(r"<[^<>@\s]+@digest\.example\.org>", delivery.message_id)
    assert abs(parsedate_to_datetime(str(message["Date"])) - timezone.now()) < timedelta(minutes=5)
    assert str(message["List-Id"]).endswith("<daily.digest.example.org>")
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"

    links = re.findall(r"<([^<>]+)>", str(message["List-Unsubscribe"]))
    assert len(links) == 2
    https, mailto = links
    assert https.startswith("https://digest.example.org/unsubscribe/")
    assert tokens.read_token(https.rsplit("/", 1)[1], "unsubscribe")[0] == ann
    assert mailto.startswith("mailto:unsubscribe@digest.example.org")

    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    title = Paper.objects.get(arxiv_id=VIDEO).title
    assert title in text_of(received)
    assert title in html_of(received)
    assert "<table" in html_of(received)


def test_each_subscriber_gets_the_papers_matching_their_topics(smtp_server, ready_day):
    ann = SubscriberFactory(topics=["speech translation"])
    bob = SubscriberFactory(topics=["video generation"])
    speech, video = Paper.objects.get(arxiv_id=SPEECH), Paper.objects.get(arxiv_id=VIDEO)

    report = sending.send_batch(deliveries(ann, bob))

    assert report.sent == 2
    [to_ann] = smtp_server.to(ann.email)
    [to_bob] = smtp_server.to(bob.email)
    assert speech.title in text_of(to_ann)
    assert video.title not in text_of(to_ann)
    assert "matches: speech translation" in text_of(to_ann).lower()
    assert video.title in text_of(to_bob)
    assert speech.title not in text_of(to_bob)
    assert "matches: video generation" in text_of(to_bob).lower()
    assert sent_ids(ann) == [SPEECH]
    assert set(SentPaper.objects.filter(subscriber=ann).values_list("paper__arxiv_id", flat=True)) == {SPEECH}


def test_a_subscriber_without_topics_gets_the_days_trending_papers(smtp_server, ready_day):
    ann = SubscriberFactory(topics=[], max_papers=5)

    sending.send_batch(deliveries(ann))

    [received] = smtp_server.to(ann.email)
    top = list(Paper.objects.filter(featured_on=date(2025, 11, 7)).order_by("-upvotes")[:3])
    assert len(sent_ids(ann)) == 5
    assert sent_ids(ann)[0] == top[0].arxiv_id
    assert {p.arxiv_id for p in top} <= set(sent_ids(ann))
    assert "trending today" in text_of(received).lower()


def test_a_paper_sent_once_is_never_sent_again(smtp_server, ready_day):
    ann = SubscriberFactory(topics=[], max_papers=3)
    sending.send_batch(deliveries(ann))
    first = sent_ids(ann)
    assert len(first) == 3

    # The next day's list holds all of the same papers again (an overlap, like a weekly span).
    next_day = date(2025, 11, 9)
    Paper.objects.update(featured_on=date(2025, 11, 8))
    make_ready(date(2025, 11, 8))
    report = sending.send_batch(deliveries(ann, day=next_day))

    assert report.sent == 1
    second = sent_ids(ann, next_day)
    assert len(second) == 3
    assert not set(first) & set(second)
    later = smtp_server.to(ann.email)[1]
    for arxiv_id in first:
        assert Paper.objects.get(arxiv_id=arxiv_id).title not in text_of(later)
    assert SentPaper.objects.filter(subscriber=ann).count() == 6


def test_hidden_and_withdrawn_papers_are_never_sent(smtp_server, ready_day):
    hidden = Paper.objects.get(arxiv_id=VIDEO)
    hidden.hidden = True
    hidden.save()
    withdrawn = Paper.objects.get(arxiv_id="2511.04460")
    withdrawn.withdrawn_at = timezone.now()
    withdrawn.save()
    ann = SubscriberFactory(topics=[], max_papers=15)
    bob = SubscriberFactory(topics=["video generation"])  # only the hidden paper matches

    report = sending.send_batch(deliveries(ann, bob))

    assert (report.sent, report.skipped) == (1, 1)
    assert sent_ids(ann)
    assert not {VIDEO, "2511.04460"} & set(sent_ids(ann))
    text = text_of(smtp_server.to(ann.email)[0])
    assert hidden.title not in text and withdrawn.title not in text
    assert smtp_server.to(bob.email) == []


def test_a_curators_pin_comes_first_with_its_note(smtp_server, ready_day):
    pinned = Paper.objects.get(arxiv_id=SPEECH)
    Pin.objects.create(paper=pinned, day=DIGEST_DAY, note="A careful look at MT metrics")
    ann = SubscriberFactory(topics=[], max_papers=5)

    sending.send_batch(deliveries(ann))

    assert sent_ids(ann)[0] == SPEECH
    text = text_of(smtp_server.to(ann.email)[0])
    assert "A careful look at MT metrics" in text
    assert text.index(pinned.title) < text.index(Paper.objects.get(arxiv_id=VIDEO).title)


def test_a_subscriber_with_nothing_new_is_skipped_and_gets_no_email(smtp_server, ready_day):
    ann = SubscriberFactory(topics=["quantum chemistry"])
    [delivery_id] = deliveries(ann)

    report = sending.send_batch([delivery_id])

    assert (report.sent, report.skipped) == (0, 1)
    assert Delivery.objects.get(pk=delivery_id).status == Delivery.Status.SKIPPED
    assert smtp_server.messages == []
    assert not SentPaper.objects.exists()


# --------------------------------------------------------------------------- exactly once


def test_a_duplicated_batch_sends_nothing_twice(smtp_server, ready_day):
    readers = SubscriberFactory.create_batch(3, topics=[])
    ids = deliveries(*readers)

    first = sending.send_batch(ids)
    second = sending.send_batch(ids)
    third = sending.send_batch(list(reversed(ids)))

    assert (first.claimed, first.sent) == (3, 3)
    assert (second.claimed, second.sent, third.claimed) == (0, 0, 0)
    assert len(smtp_server.messages) == 3
    for reader in readers:
        assert len(smtp_server.to(reader.email)) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locking under concurrency needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_senders_send_each_digest_once(smtp_server, ready_day):
    readers = SubscriberFactory.create_batch(30, topics=[], max_papers=3)
    ids = deliveries(*readers)
    start = threading.Barrier(2)
    reports, errors = [], []

    def worker() -> None:
        try:
            start.wait(timeout=10)
            reports.append(sending.send_batch(ids))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(r.sent for r in reports) == 30
    assert sum(r.claimed for r in reports) == 30
    sent = Delivery.objects.filter(status=Delivery.Status.SENT).count()
    assert sent == 30 == len(smtp_server.messages)
    for reader in readers:
        assert len(smtp_server.to(reader.email)) == 1
    assert SentPaper.objects.count() == 90


# --------------------------------------------------------------------------- SMTP errors


def test_a_4xx_is_retried_within_the_batch(smtp_server, ready_day):
    ann = SubscriberFactory(email="ann@example.org", topics=[])
    smtp_server.reply("ann@example.org", "451 4.3.0 Try later", times=1)

    report = sending.send_batch(deliveries(ann))

    assert (report.sent, report.retry, report.failed) == (1, 0, 0)
    assert smtp_server.attempts("ann@example.org") == 2
    assert len(smtp_server.to("ann@example.org")) == 1
    delivery = Delivery.objects.get(subscriber=ann)
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SENT, 1)


def test_a_lasting_4xx_goes_back_to_pending_then_fails_after_max_attempts(smtp_server, ready_day, settings):
    settings.DIGEST_MAX_ATTEMPTS = 2
    ann = SubscriberFactory(email="ann@example.org", topics=[])
    smtp_server.reply("ann@example.org", "451 4.3.0 Try later")
    [delivery_id] = deliveries(ann)

    first = sending.send_batch([delivery_id])

    delivery = Delivery.objects.get(pk=delivery_id)
    assert (first.retry, first.failed) == (1, 0)
    assert (delivery.status, delivery.attempts) == (Delivery.Status.PENDING, 1)
    assert "451" in delivery.error
    assert smtp_server.attempts("ann@example.org") == settings.DIGEST_SMTP_RETRIES

    second = sending.send_batch([delivery_id])

    delivery.refresh_from_db()
    assert (second.retry, second.failed) == (0, 1)
    assert (delivery.status, delivery.attempts) == (Delivery.Status.FAILED, 2)
    assert sending.send_batch([delivery_id]).claimed == 0
    assert smtp_server.messages == []
    assert not SentPaper.objects.exists()


def test_a_5xx_bounces_and_repeated_bounces_suppress_the_address(smtp_server, ready_day, settings):
    settings.DIGEST_BOUNCE_LIMIT = 2
    ann = SubscriberFactory(email="ann@example.org", topics=[])
    bob = SubscriberFactory(email="bob@example.org", topics=[])
    # A refusal that is no verdict on the address (policy): it counts. "5.1.1 no such user"
    # suppresses at once instead (test_send_refusals.py).
    smtp_server.reply("ann@example.org", "550 5.7.1 Rejected by policy")
    [ann_id, bob_id] = deliveries(ann, bob)

    report = sending.send_batch([ann_id, bob_id])

    assert (report.bounced, report.sent) == (1, 1)
    ann.refresh_from_db()
    delivery = Delivery.objects.get(pk=ann_id)
    assert delivery.status == Delivery.Status.BOUNCED
    assert "550" in delivery.error
    assert ann.bounce_count == 1
    assert ann.status == Subscriber.Status.ACTIVE
    assert not Suppression.covers("ann@example.org")
    assert len(smtp_server.to("bob@example.org")) == 1  # the session survived the 5xx
    assert smtp_server.to("ann@example.org") == []

    # A later digest of ann's is waiting when the second bounce comes.
    later = Delivery.objects.create(subscriber=ann, digest_date=date(2025, 11, 9), status=Delivery.Status.WAITING)
    assert sending.deliveries_retry([ann_id]) == 1
    sending.send_batch([ann_id])

    ann.refresh_from_db()
    assert ann.bounce_count == 2
    assert Suppression.covers("ann@example.org")
    assert Suppression.objects.get().reason == Suppression.Reason.BOUNCED
    assert ann.status == Subscriber.Status.UNSUBSCRIBED
    later.refresh_from_db()
    assert later.status == Delivery.Status.SKIPPED
    assert smtp_server.to("ann@example.org") == []


def test_too_many_errors_in_a_row_pause_sending_and_alert(smtp_server, ready_day, settings):
    settings.DIGEST_MAX_CONSECUTIVE_ERRORS = 2
    readers = [SubscriberFactory(email=f"r{n}@example.org", topics=[]) for n in range(5)]
    for reader in readers[:3]:
        smtp_server.reply(reader.email, "550 5.7.1 Rejected")
    ids = deliveries(*readers)

    report = sending.send_batch(ids)

    assert report.stopped
    assert (report.bounced, report.sent, report.retry) == (2, 0, 3)
    statuses = [Delivery.objects.get(pk=pk).status for pk in ids]
    assert statuses == ["bounced", "bounced", "pending", "pending", "pending"]
    assert smtp_server.messages == []
    assert sending.sending_paused()
    alerts = [m for m in mail.outbox if "paused" in m.subject.lower()]
    assert len(alerts) == 1 and alerts[0].to == ["curators@example.org"]

    # While paused, batches claim nothing and the planner fans nothing out.
    again = sending.send_batch(ids)
    assert (again.claimed, again.stopped) == (0, "sending is paused")
    assert sending.fan_out() == 0
    assert Delivery.objects.filter(status=Delivery.Status.PENDING).count() == 3

    cache.delete(sending.PAUSE_KEY)
    smtp_server.handler.rules.clear()
    assert sending.send_batch(ids).sent == 3


def test_an_unreachable_relay_stops_the_batch_and_keeps_rows_pending(ready_day, settings, fast_sending):
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nothing listens there
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 2
    readers = SubscriberFactory.create_batch(3, topics=[])
    ids = deliveries(*readers)

    report = sending.send_batch(ids)

    assert report.stopped
    assert "cannot connect" in report.stopped
    assert report.sent == 0
    rows = Delivery.objects.filter(pk__in=ids)
    assert {d.status for d in rows} == {Delivery.Status.PENDING}
    assert not SentPaper.objects.exists()


# --------------------------------------------------------------------------- query count


def test_a_batch_uses_the_same_number_of_queries_whatever_its_size(smtp_server, ready_day):
    def queries_for(size: int) -> int:
        readers = SubscriberFactory.create_batch(size, topics=[], max_papers=3)
        ids = deliveries(*readers)
        with CaptureQueriesContext(connection) as queries:
            report = sending.send_batch(ids)
        assert report.sent == size
        return len(queries.captured_queries)

    sending.edition(DIGEST_DAY)  # built once per process and date, outside the count
    small, large = queries_for(5), queries_for(25)

    assert small == large
    assert len(smtp_server.messages) == 30


# --------------------------------------------------------------------------- dead workers


class WorkerKilled(BaseException):
    """The worker dies right after its messages left, before it records them."""


def test_mark_stuck_records_journaled_sends_and_flags_the_rest(smtp_server, ready_day, settings, monkeypatch):
    ann = SubscriberFactory(topics=["video generation"])
    bob = SubscriberFactory(topics=[])
    [ann_id] = deliveries(ann)

    def die(*args, **kwargs):
        raise WorkerKilled

    with monkeypatch.context() as patch:
        patch.setattr("digest.sending.batch.record", die)
        with pytest.raises(WorkerKilled):
            sending.send_batch([ann_id])
    assert len(smtp_server.to(ann.email)) == 1
    assert Delivery.objects.get(pk=ann_id).status == Delivery.Status.SENDING
    assert cache.get(sending.JOURNAL_KEY.format(ann_id))

    # bob's worker died before trying him: no mark at all. carol's died mid-conversation:
    # only the try mark that goes in just before the SMTP conversation.
    carol = SubscriberFactory(topics=[])
    bob_row, carol_row = (
        Delivery.objects.create(
            subscriber=who, digest_date=DIGEST_DAY, status=Delivery.Status.SENDING, claimed_at=timezone.now()
        )
        for who in (bob, carol)
    )
    cache.set(sending.TRY_KEY.format(carol_row.pk), 1)
    assert sending.mark_stuck() == 0  # recent claims: their workers may still be at it
    assert Delivery.objects.get(pk=bob_row.pk).status == Delivery.Status.SENDING
    assert Delivery.objects.get(pk=ann_id).status == Delivery.Status.SENDING

    later = timezone.now() + timedelta(seconds=settings.DIGEST_STUCK_AFTER + 1)
    assert sending.mark_stuck(now=later) == 1

    recovered = Delivery.objects.get(pk=ann_id)
    assert recovered.status == Delivery.Status.SENT
    assert recovered.message_id == str(smtp_server.to(ann.email)[0].message()["Message-ID"])
    assert [e["arxiv_id"] for e in recovered.papers] == [VIDEO]
    assert list(SentPaper.objects.filter(subscriber=ann).values_list("paper__arxiv_id", flat=True)) == [VIDEO]
    bob_row.refresh_from_db()
    carol_row.refresh_from_db()
    assert bob_row.status == Delivery.Status.PENDING  # never tried: safe to send
    assert carol_row.status == Delivery.Status.STUCK  # may have left: reported, not resent
    assert smtp_server.to(bob.email) == smtp_server.to(carol.email) == []
    alerts = [m for m in mail.outbox if "stuck" in m.subject]
    assert len(alerts) == 1 and alerts[0].to == ["curators@example.org"]


def test_retrying_moves_failed_and_stuck_back_but_never_sent_ones(
    smtp_server, ready_day, django_capture_on_commit_callbacks
):
    sent, stuck, failed = (SubscriberFactory(topics=[]) for _ in range(3))
    sending.send_batch(deliveries(sent))
    assert len(smtp_server.to(sent.email)) == 1
    stuck_row = Delivery.objects.create(subscriber=stuck, digest_date=DIGEST_DAY, status=Delivery.Status.STUCK)
    failed_row = Delivery.objects.create(
        subscriber=failed, digest_date=DIGEST_DAY, status=Delivery.Status.FAILED, attempts=3, error="451"
    )
    sent_row = Delivery.objects.get(subscriber=sent)
    before = (sent_row.status, sent_row.message_id, sent_row.sent_at)

    with django_capture_on_commit_callbacks(execute=True):
        count = sending.deliveries_retry([sent_row.pk, stuck_row.pk, failed_row.pk])

    assert count == 2
    sent_row.refresh_from_db()
    assert (sent_row.status, sent_row.message_id, sent_row.sent_at) == before
    # The retried ones went out (eager Celery); the sent one did not go out again.
    assert Delivery.objects.get(pk=stuck_row.pk).status == Delivery.Status.SENT
    assert Delivery.objects.get(pk=failed_row.pk).status == Delivery.Status.SENT
    assert len(smtp_server.to(sent.email)) == 1
    assert len(smtp_server.to(stuck.email)) == 1
    assert len(smtp_server.to(failed.email)) == 1


def test_non_ascii_headers_are_folded_with_crlf_only(smtp_server, ready_day, settings):
    settings.DIGEST_FROM_EMAIL = (
        "Tägliche Auswahl der besten Forschungsarbeiten über Maschinelles Lernen <d@example.org>"
    )
    paper = Paper.objects.get(arxiv_id=VIDEO)
    paper.title = "Über-effiziente Vídeo-Generierung als multimodales Schließen über lange Zeiträume"
    paper.save()
    ann = SubscriberFactory(topics=["video generation"])

    sending.send_batch(deliveries(ann))

    [received] = smtp_server.to(ann.email)
    # SMTP wants CRLF line ends; relays reject or rewrite bare LF (SMTP smuggling defences).
    assert not re.search(rb"(?<!\r)\n", received.data)
    assert not re.search(rb"\r(?!\n)", received.data)
    subject = str(received.message()["Subject"])
    assert "Über-effiziente Vídeo-Generierung" in subject
    assert "\n" not in subject
    assert parseaddr(str(received.message()["From"]))[1] == "d@example.org"
    assert str(received.message()["From"]).startswith("Tägliche Auswahl der besten Forschungsarbeiten")


def test_a_subscriber_who_left_after_planning_gets_nothing(smtp_server, ready_day):
    ann = SubscriberFactory(topics=[])
    bob = SubscriberFactory(topics=[])
    ids = deliveries(ann, bob)
    ann.status = Subscriber.Status.UNSUBSCRIBED
    ann.save()
    Suppression.objects.create(email_hash=email_hash(bob.email), reason=Suppression.Reason.COMPLAINT)

    report = sending.send_batch(ids)

    assert (report.sent, report.skipped) == (0, 2)
    assert smtp_server.messages == []
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SKIPPED}


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_4xx_and_5xx_are_told_apart_at_either_stage(smtp_server, ready_day, stage):
    ann = SubscriberFactory(email="ann@example.org", topics=[])
    bob = SubscriberFactory(email="bob@example.org", topics=[])
    cy = SubscriberFactory(email="cy@example.org", topics=[])
    smtp_server.reply("ann@example.org", "452 4.2.2 Mailbox full", stage=stage, times=1)
    smtp_server.reply("bob@example.org", "554 5.7.1 Message refused", stage=stage)

    report = sending.send_batch(deliveries(ann, bob, cy))

    assert (report.sent, report.bounced) == (2, 1)
    statuses = dict(Delivery.objects.values_list("subscriber__email", "status"))
    assert statuses == {"ann@example.org": "sent", "bob@example.org": "bounced", "cy@example.org": "sent"}
    assert [len(smtp_server.to(a)) for a in ("ann@example.org", "bob@example.org", "cy@example.org")] == [1, 0, 1]


def test_a_weekly_subscriber_gets_the_weeks_best(smtp_server, ready_day, settings):
    settings.DIGEST_WEEKLY_DAY = "saturday"
    weekly = SubscriberFactory(topics=[], frequency=Subscriber.Frequency.WEEKLY, max_papers=3, send_hour=0)

    assert sending.plan_due(now=NOW).planned == 1
    report = sending.send_batch(list(Delivery.objects.values_list("pk", flat=True)))

    assert report.sent == 1
    assert sent_ids(weekly)[0] == VIDEO
    assert "trending this week" in text_of(smtp_server.to(weekly.email)[0]).lower()


def test_digests_held_back_too_long_are_skipped_not_sent_late():
    subscriber = SubscriberFactory(topics=[])
    today = DIGEST_DAY + timedelta(days=3)
    old = Delivery.objects.create(subscriber=subscriber, digest_date=DIGEST_DAY, status=Delivery.Status.WAITING)
    recent = Delivery.objects.create(
        subscriber=subscriber, digest_date=today - timedelta(days=1), status=Delivery.Status.WAITING
    )
    assert sending.expire_waiting(today=today) == 1
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.status, recent.status) == (Delivery.Status.SKIPPED, Delivery.Status.WAITING)
    assert "never arrived" in old.error


def test_without_a_relay_digests_go_to_the_outbox_even_before_it_exists(ready_day, settings, tmp_path):
    """The embedded default: no EMAIL_HOST, each digest an .eml file a person can open."""
    settings.EMAIL_HOST = ""
    settings.OUTBOX_DIR = tmp_path / "not-yet" / "outbox"
    subscriber = SubscriberFactory(topics=["video generation"])
    sending.send_preview(subscriber=subscriber, day=DIGEST_DAY, to="curator@example.org")
    report = sending.send_batch(deliveries(subscriber))
    assert report.sent == 1
    files = sorted(settings.OUTBOX_DIR.glob("*.eml"))
    assert len(files) == 2
    texts = [f.read_text() for f in files]
    assert sum("To: curator@example.org" in t for t in texts) == 1
    assert sum(f"To: {subscriber.email}" in t for t in texts) == 1


def test_a_relay_that_hangs_up_after_the_message_leaves_the_row_stuck_never_resent(smtp_server, ready_day):
    """The relay may have taken a message whose answer was lost: retrying could send it
    twice, so the row is reported stuck instead, and later batches leave it alone."""
    from tests.smtp import DROP

    lost, fine = SubscriberFactory(topics=[]), SubscriberFactory(topics=[])
    smtp_server.reply(lost.email, DROP, stage="DATA", times=1)
    ids = deliveries(lost, fine)
    report = sending.send_batch(ids)
    assert (report.sent, report.stuck) == (1, 1)
    row = Delivery.objects.get(subscriber=lost)
    assert row.status == Delivery.Status.STUCK and "hung up" in row.error
    assert Delivery.objects.get(subscriber=fine).status == Delivery.Status.SENT
    assert [m.subject for m in mail.outbox if "stuck" in m.subject] == ["[Paper Digest] 1 digests stuck"]

    sending.send_batch(ids)  # a duplicated task, or the next planner run
    sending.planner_run()
    assert len(smtp_server.to(lost.email)) == 1  # taken once by the relay, never again
    assert len(smtp_server.to(fine.email)) == 1
