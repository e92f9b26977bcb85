"""The console's front page: problems first, then today's pipeline, in a fixed number of queries."""

from datetime import date, datetime, timedelta

import pytest
from django.utils import timezone

from digest import selectors
from digest.console import growth_chart
from papers.models import ScrapeRun
from tests.console.conftest import console
from tests.factories import DeliveryFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

TODAY = date(2025, 11, 7)
NOW = timezone.make_aware(datetime(2025, 11, 7, 15, 0))


def at(day: date, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime(day.year, day.month, day.day, hour))


def board() -> selectors.Dashboard:
    return selectors.dashboard(today=TODAY, now=NOW)


def test_it_counts_todays_deliveries_by_status() -> None:
    for status, n in [("sent", 3), ("failed", 1), ("waiting", 2), ("skipped", 1)]:
        DeliveryFactory.create_batch(n, digest_date=TODAY, status=status)
    DeliveryFactory(digest_date=TODAY - timedelta(days=1), status="sent")

    counts = {value: n for value, _, n in board().deliveries_today}

    assert counts == {
        "waiting": 2,
        "pending": 0,
        "sending": 0,
        "sent": 3,
        "failed": 1,
        "bounced": 0,
        "stuck": 0,
        "skipped": 1,
    }


def test_it_says_all_is_well_when_it_is() -> None:
    ScrapeRun.objects.create(source="daily", day=TODAY, status="ok")
    DeliveryFactory(digest_date=TODAY, status="sent")

    assert board().problems == []


def test_it_says_when_the_daily_list_is_not_being_scraped() -> None:
    ScrapeRun.objects.create(source="trending", status="ok")

    assert board().problems == ["No scrape of the daily list among the latest runs: is beat running?"]


def test_it_puts_a_failed_scrape_stuck_sends_an_error_spike_and_waiting_digests_first() -> None:
    ScrapeRun.objects.create(source="daily", day=TODAY, status="ok", started_at=at(TODAY, 6))
    ScrapeRun.objects.create(source="daily", day=TODAY, status="failed", error="HTTP 503", started_at=at(TODAY, 12))
    DeliveryFactory(digest_date=TODAY, status="stuck")
    # Claimed long ago and still sending: its worker is gone even if not yet marked stuck.
    DeliveryFactory(digest_date=TODAY, status="sending", claimed_at=NOW - timedelta(days=1))
    DeliveryFactory(digest_date=TODAY, status="sending", claimed_at=NOW - timedelta(minutes=1))
    DeliveryFactory.create_batch(6, digest_date=TODAY, status="failed")
    DeliveryFactory.create_batch(7, digest_date=TODAY - timedelta(days=3), status="failed")  # 1 a day before
    DeliveryFactory(digest_date=TODAY, status="waiting")

    assert board().problems == [
        "The last scrape of 2025-11-07 failed: HTTP 503",
        "2 digest(s) stuck mid-send this week (a worker died): check and retry them",
        "6 digests failed or bounced today, against 1.0 a day the week before",
        "1 of today's digests wait for the day's papers (no good scrape yet)",
    ]


def test_it_calls_no_spike_when_failures_are_usual() -> None:
    DeliveryFactory.create_batch(6, digest_date=TODAY, status="failed")
    for back in range(1, 8):
        DeliveryFactory.create_batch(5, digest_date=TODAY - timedelta(days=back), status="bounced")

    assert not any("failed or bounced" in p for p in board().problems)


def test_it_counts_the_weeks_bounces_unsubscribes_and_growth() -> None:
    SubscriberFactory.create_batch(3, confirmed_at=at(TODAY - timedelta(days=40)))
    SubscriberFactory(confirmed_at=at(TODAY - timedelta(days=10)))
    SubscriberFactory(confirmed_at=at(TODAY - timedelta(days=2)))
    SubscriberFactory(
        status="unsubscribed",
        confirmed_at=at(TODAY - timedelta(days=40)),
        unsubscribed_at=at(TODAY - timedelta(days=1)),
    )
    SubscriberFactory(status="pending")
    DeliveryFactory(digest_date=TODAY - timedelta(days=6), status="bounced")
    DeliveryFactory(digest_date=TODAY - timedelta(days=7), status="bounced")  # last week

    result = board()

    assert (result.bounces_week, result.unsubscribes_week, result.confirmations_week) == (1, 1, 1)
    assert len(result.growth) == 30
    assert result.growth[0] == (TODAY - timedelta(days=29), 4)
    assert dict(result.growth)[TODAY - timedelta(days=10)] == 5
    assert dict(result.growth)[TODAY - timedelta(days=2)] == 6
    assert result.growth[-1] == (TODAY, 5)


def test_it_costs_three_queries_whatever_the_size(django_assert_num_queries) -> None:
    for n in range(20):
        ScrapeRun.objects.create(source="daily", day=TODAY - timedelta(days=n), status="ok")
    SubscriberFactory.create_batch(30, confirmed_at=at(TODAY - timedelta(days=5)))
    DeliveryFactory.create_batch(30, digest_date=TODAY, status="sent")

    with django_assert_num_queries(3):
        board()


def test_it_shows_the_dashboard_at_the_console_index(curator_client, django_assert_max_num_queries) -> None:
    ScrapeRun.objects.create(source="daily", day=TODAY, status="failed", error="feed changed shape")
    SubscriberFactory.create_batch(5, confirmed_at=timezone.now() - timedelta(days=3))
    curator_client.get(console())

    with django_assert_max_num_queries(8):
        response = curator_client.get(console())

    html = response.content.decode()
    assert html.index("failed: feed changed shape") < html.index("Today's digests")
    assert "<svg" in html and "<polyline" in html
    assert "Preview a subscriber's digest" in html
    assert "cdn" not in html.lower()


def test_it_draws_growth_as_inline_svg() -> None:
    svg = growth_chart([(date(2025, 11, 1), 10), (date(2025, 11, 2), 20), (date(2025, 11, 3), 15)], width=200)

    assert svg.startswith("<svg")
    assert "<title>10 subscribers on Nov 01, 15 on Nov 03</title>" in svg
    assert 'points="8.0,112.0 100.0,8.0 192.0,60.0"' in svg
    assert growth_chart([]) == ""


def test_it_shows_each_days_sent_bounces_and_complaint_rate() -> None:
    from digest.models import DeliveryEvent

    sent = DeliveryFactory.create_batch(300, digest_date=TODAY, status="sent", sent_at=NOW)
    DeliveryFactory.create_batch(2, digest_date=TODAY, status="bounced")  # refused during the send
    for delivery, kind in [(sent[0], "complaint"), (sent[1], "hard_bounce"), (sent[2], "soft_bounce")]:
        DeliveryEvent.objects.create(
            source="imap", event_id=f"e{delivery.pk}", kind=kind, subscriber=delivery.subscriber, delivery=delivery
        )
    # The same complaint again from the provider's webhook counts once.
    DeliveryEvent.objects.create(
        source="postmark", event_id="p1", kind="complaint", subscriber=sent[0].subscriber, delivery=sent[0]
    )

    today = board().mail_days[0]

    assert (today.day, today.sent, today.hard_bounces, today.soft_bounces, today.complaints) == (TODAY, 300, 3, 1, 1)
    assert today.rate_text == "0.33%"
    assert any("0.33%), over Gmail's 0.3% limit" in problem for problem in board().problems)


def test_a_complaint_rate_under_the_line_is_no_problem() -> None:
    from digest.models import DeliveryEvent

    sent = DeliveryFactory.create_batch(400, digest_date=TODAY, status="sent", sent_at=NOW)
    DeliveryEvent.objects.create(
        source="imap", event_id="e", kind="complaint", subscriber=sent[0].subscriber, delivery=sent[0]
    )

    assert board().mail_days[0].complaints == 1
    assert not any("Spam complaints" in problem for problem in board().problems)


def test_it_shows_the_complaint_table_on_the_console(curator_client) -> None:
    DeliveryFactory.create_batch(3, digest_date=timezone.localdate(), status="sent", sent_at=timezone.now())

    html = curator_client.get(console()).content.decode()

    assert 'id="mail-days"' in html
    assert "Gmail's limit: 0.3%" in html
