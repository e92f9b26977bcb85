"""A subscriber reads why each of their last 30 days did or did not bring an email, then
follows the manage page's links: a sent digest, a day's public list and their feed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from digest import tokens
from papers import services as paper_services
from papers.models import Paper
from tests.browser import ARTIFACTS
from tests.digest.test_history import LINES
from tests.factories import SubscriberFactory
from tests.history import TOPIC, HistoryMaker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(autouse=True)
def _site_url(settings, live_server) -> None:
    settings.SITE_URL = live_server.url


def shoot(page, name: str, *, element: str | None = None, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"why-no-email-{name}.png"
    if element:
        page.locator(element).screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=full_page)


def test_it_shows_every_outcome_of_the_last_30_days_and_follows_the_links(
    page, live_server, smtp_server, feed_server, tmp_path
) -> None:
    subscriber = SubscriberFactory(email="ada@example.org", topics=[TOPIC], time_zone="Europe/Berlin", channel="both")
    made = HistoryMaker(smtp=smtp_server, feed=feed_server, tmp=tmp_path).make(subscriber)
    manage = f"{live_server.url}/manage/{tokens.make_token(made.subscriber, 'manage')}"

    for name, size in WIDTHS.items():
        page.set_viewport_size(size)
        page.goto(manage)
        history = page.locator("section.history")
        expect(history.get_by_role("heading", name="Your last 30 days")).to_be_visible()
        for outcome, pattern in LINES.items():
            line = history.locator(f'[data-outcome="{outcome}"] .day-line')
            expect(line).to_have_count(1)
            expect(line).to_have_text(re.compile(pattern.rstrip("$") + r"( \(read it\))?$"))
        shoot(page, f"manage-30-days-{name}", element="section.history")
        shoot(page, f"manage-page-{name}")

    # "read it" on the day that was sent: the digest as it was sent.
    page.set_viewport_size(WIDTHS["desktop"])
    page.goto(manage)
    page.locator('[data-outcome="sent"]').get_by_role("link", name="read it").click()
    expect(page.locator("body")).to_contain_text("for your topics: video generation")
    expect(page.locator("body")).to_contain_text("Matches: video generation")
    shoot(page, "webview-desktop")

    # "the day's list" of the day nothing matched: the public page of that list, with a
    # curator's pick (made for the digest that carries the list) on top.
    quiet_day = made.days["nothing_new"]
    pick = Paper.objects.filter(featured_on=quiet_day - timedelta(days=1)).order_by("upvotes").first()
    paper_services.papers_pin(paper_ids=[pick.pk], day=quiet_day, note="Short and clear: start here")
    for name, size in WIDTHS.items():
        page.set_viewport_size(size)
        page.goto(manage)
        page.locator('[data-outcome="nothing_new"]').get_by_role("link", name="the day's list").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Papers of")
        expect(page.get_by_role("link", name="Choose my topics")).to_be_visible()
        expect(page.locator(".card")).to_have_count(5)
        expect(page.locator(".pinned .card")).to_contain_text("Curator's pick: Short and clear: start here")
        expect(page.locator(".pinned .card")).to_contain_text(pick.title.split()[0])
        assert "ada@example.org" not in page.content()
        shoot(page, f"day-page-{name}")

    # The feed link, as a person who opens it in the browser sees it.
    for name, size in WIDTHS.items():
        page.set_viewport_size(size)
        page.goto(manage)
        page.get_by_role("link", name="Atom feed").click()
        expect(page.locator("entry").first).to_be_visible()
        expect(page.locator("feed > title")).to_have_text("Paper Digest: your papers")
        expect(page.locator("entry summary .reason").first).to_contain_text("Matches: video generation")
        shoot(page, f"feed-{name}", full_page=False)  # Chromium cannot measure a styled XML page

    # Reset my feed link: the old one stops working.
    page.goto(manage)
    old = page.get_by_role("link", name="Atom feed").get_attribute("href")
    page.get_by_role("button", name="Reset my feed link").click()
    expect(page.get_by_role("status")).to_contain_text("Your feed has a new link")
    new = page.get_by_role("link", name="Atom feed").get_attribute("href")
    assert new != old
    assert page.request.get(old).status == 400
    assert page.request.get(new).status == 200
