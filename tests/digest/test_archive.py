"""The archive: sent digests readable for DIGEST_ARCHIVE_DAYS, and the public page of each day's list."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from digest import selectors, sending, tokens
from digest.models import Delivery, Subscriber
from digest.sending import archive
from papers import services as paper_services
from papers.models import Paper, ScrapeRun
from tests.conftest import HF_DAY
from tests.digest.conftest import DIGEST_DAY
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def send_one(subscriber: Subscriber, day: date = DIGEST_DAY) -> Delivery:
    sending.plan_date(day, subscriber_ids=[subscriber.pk])
    sending.send_batch(list(Delivery.objects.filter(subscriber=subscriber).values_list("pk", flat=True)))
    return Delivery.objects.get(subscriber=subscriber, digest_date=day)


# --------------------------------------------------------------------------- the web view


def test_the_web_view_shows_what_was_sent_while_the_archive_keeps_it(ready_day, smtp_server, client, settings):
    subscriber = SubscriberFactory(topics=["reinforcement learning"])
    delivery = send_one(subscriber)
    [received] = smtp_server.to(subscriber.email)
    url = path_of(tokens.webview_url(subscriber, day=DIGEST_DAY))
    sent_html = received.message().get_body(("html",)).get_content()

    page = client.get(url)
    assert page.status_code == 200
    titles = re.findall(r'class="title"[^>]*>\s*<a [^>]*>([^<]+)<', sent_html)
    assert len(titles) == len(delivery.papers) > 0
    assert titles == re.findall(r'class="title"[^>]*>\s*<a [^>]*>([^<]+)<', page.content.decode())

    assert sending.history(subscriber, today=DIGEST_DAY).days[0].read_url
    # DIGEST_ARCHIVE_DAYS pass: the web view and the manage page's link are gone.
    Delivery.objects.filter(pk=delivery.pk).update(sent_at=timezone.now() - timedelta(days=91))
    gone = client.get(url)
    assert gone.status_code == 404
    assert f"digests stay readable for {settings.DIGEST_ARCHIVE_DAYS} days" in gone.content.decode()
    assert sending.history(subscriber, today=DIGEST_DAY).days[0].read_url == ""


def test_the_manage_page_links_older_digests_the_archive_still_keeps(ready_day, smtp_server, client, settings):
    subscriber = SubscriberFactory(topics=["reinforcement learning"])
    send_one(subscriber)
    today = DIGEST_DAY + timedelta(days=45)
    settings.DIGEST_ARCHIVE_DAYS = 90
    history = sending.history(subscriber, today=today)
    assert DIGEST_DAY not in {line.day for line in history.days}
    [older] = history.older
    assert (older.day, older.outcome) == (DIGEST_DAY, "sent")
    assert tokens.read_token(older.read_url.rsplit("/", 1)[1], "webview")[1] == {"d": DIGEST_DAY.isoformat()}
    settings.DIGEST_ARCHIVE_DAYS = 30
    assert sending.history(subscriber, today=today).older == []


# --------------------------------------------------------------------------- the day page


def test_the_day_page_shows_the_scraped_list_with_pins_first_and_no_subscriber_data(
    hf_papers, client: Client, django_assert_num_queries
):
    SubscriberFactory(email="secret-reader@example.org", topics=["video"])
    speech = Paper.objects.get(arxiv_id="2511.03295")
    paper_services.papers_pin(paper_ids=[speech.pk], day=HF_DAY + timedelta(days=1), note="Read this one first")
    with django_assert_num_queries(4):
        page = client.get(f"/day/{HF_DAY}")
    html = page.content.decode()
    assert page.status_code == 200
    assert "secret-reader" not in html
    assert html.count('class="card"') == 15
    assert html.index("How to Evaluate Speech Translation") < html.index("Thinking with Video")
    assert "Curator's pick: Read this one first" in html
    assert 'href="/"' in html and "Choose my topics" in html
    for link in ("https://arxiv.org/abs/2511.04570", "https://arxiv.org/pdf/2511.04570", "/papers/2511.04570"):
        assert link in html
    assert "max-age=300" in page["Cache-Control"]
    with django_assert_num_queries(0):
        assert client.get(f"/day/{HF_DAY}").content == page.content  # from the cache


def test_the_day_page_is_paged(hf_papers, client: Client, monkeypatch):
    monkeypatch.setattr(selectors, "DAY_PAGE_SIZE", 6)
    first = client.get(f"/day/{HF_DAY}").content.decode()
    third = client.get(f"/day/{HF_DAY}?page=3").content.decode()
    assert first.count('class="card"') == 6 and third.count('class="card"') == 3
    assert "Page 1 of 3" in first and 'href="?page=2"' in first
    assert "Thinking with Video" in first and "Thinking with Video" not in third
    assert client.get(f"/day/{HF_DAY}?page=4").status_code == 404


def test_a_day_without_a_list_says_so_and_unknown_days_are_404(client: Client):
    saturday = date(2025, 11, 8)
    ScrapeRun.objects.create(source=ScrapeRun.Source.DAILY, day=saturday, status=ScrapeRun.Status.OK)
    page = client.get(f"/day/{saturday}").content.decode()
    assert "Hugging Face published no list that day (a weekend: it rarely does)." in page
    for day in ("2025-11-09", "2025-13-01", "yesterday", "2025-11-8"):
        assert client.get(f"/day/{day}").status_code == 404


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "9999-12-30"])
def test_it_answers_404_for_a_day_at_the_ends_of_the_calendar(client: Client, day: str):
    """/day/9999-12-31 was a 500: the pins of the day after overflowed the calendar."""
    assert client.get(f"/day/{day}").status_code == 404


# --------------------------------------------------------------------------- choices


def test_signup_and_manage_forms_keep_the_quiet_day_and_channel(signup: Callable, client: Client):
    signup(email="feed@example.org", quiet_day="note", channel="feed")
    subscriber = Subscriber.objects.get(email="feed@example.org")
    assert (subscriber.status, subscriber.quiet_day, subscriber.channel) == ("pending", "note", "feed")
    [confirmation] = mail.outbox  # a feed-only subscriber still confirms the address
    assert confirmation.to == ["feed@example.org"]
    signup(email="plain@example.org")
    plain = Subscriber.objects.get(email="plain@example.org")
    assert (plain.quiet_day, plain.channel) == ("nothing", "email")
    bad = client.post("/", {"email": "x@example.org", "topics": "agents", "channel": "pigeon", "time_zone": "UTC",
                            "send_hour": "7", "frequency": "daily", "max_papers": "10"})  # fmt: skip
    assert bad.status_code == 400 and "Select a valid choice" in bad.content.decode()


def test_a_feed_only_subscriber_gets_no_email_but_the_feed_and_ledger(ready_day, smtp_server, client: Client):
    subscriber = SubscriberFactory(topics=["reinforcement learning"], channel="feed")
    delivery = send_one(subscriber)
    assert smtp_server.to(subscriber.email) == []
    assert (delivery.status, delivery.outcome, delivery.message_id) == ("sent", "feed", "")
    assert delivery.sent_papers.count() == len(delivery.papers) > 0
    body = client.get(path_of(tokens.feed_url(subscriber))).content.decode()
    for item in delivery.papers:
        assert item["arxiv_id"] in body
    assert archive.history(subscriber, today=DIGEST_DAY).days[0].line.startswith("In your feed — ")


def test_the_web_view_carries_no_link_that_acts_for_the_reader(ready_day, smtp_server, client):
    """ "Read it in your browser" travels with every forwarded copy; it re-rendered the
    email with fresh preferences, unsubscribe and feedback links, so whoever got it could
    open the reader's data and delete it."""
    subscriber = SubscriberFactory(email="ada@example.org", topics=["reinforcement learning"])
    delivery = send_one(subscriber)
    [received] = smtp_server.to(subscriber.email)
    sent_html = received.message().get_body(("html",)).get_content()
    assert "/manage/" in sent_html and "/feedback/" in sent_html  # the email itself keeps them

    page = client.get(path_of(tokens.webview_url(subscriber, day=DIGEST_DAY))).content.decode()

    links = re.findall(r'href="([^"]+)"', page)
    site = [link for link in links if link.startswith("http://127.0.0.1")]
    assert site == ["http://127.0.0.1:8000/"]  # only "get your own"
    for personal in ("/manage/", "/unsubscribe/", "/feedback/", "/view/", "/confirm/", "/feed/"):
        assert personal not in page
    assert "ada@example.org" not in page
    assert "More like this" not in page and "Unsubscribe" not in page
    titles = re.findall(r'class="title"[^>]*>\s*<a [^>]*>([^<]+)<', page)
    assert titles == re.findall(r'class="title"[^>]*>\s*<a [^>]*>([^<]+)<', sent_html)
    assert len(titles) == len(delivery.papers)
    assert "for your topics: reinforcement learning" in page
    assert "a forwarded link to this page cannot use them" in page
    token = path_of(tokens.webview_url(subscriber, day=DIGEST_DAY)).removeprefix("/view/")
    for door in (f"/manage/{token}", f"/manage/{token}/data.json", f"/manage/{token}/delete", f"/unsubscribe/{token}"):
        assert client.get(door).status_code == 400
