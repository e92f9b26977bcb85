"""A curator runs a day from the console in a real browser: dashboard, pin a paper, preview it."""

import pytest
from playwright.sync_api import expect

from digest import services
from papers.models import Paper, Pin
from tests.factories import SubscriberFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAPER = "Learning Vision-Driven Reactive Soccer Skills for Humanoid Robots"


def test_it_logs_in_pins_a_paper_and_previews_the_digest_with_it(
    page, screenshot, live_server, hf_papers: None, settings
) -> None:
    settings.SITE_URL = live_server.url
    user, password = services.curator_create(email="cora@example.org")
    SubscriberFactory(email="ada@example.org", topics=["reinforcement learning"], time_zone="UTC")
    console = f"{live_server.url}/{settings.ADMIN_URL}"

    page.goto(console)
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#dashboard")).to_contain_text("Today's digests")
    expect(page.locator("#dashboard")).to_contain_text("Last scrapes")
    expect(page.locator("svg.growth")).to_be_visible()
    screenshot("dashboard")

    page.locator("#content-related, #content-main").locator('a[href$="/papers/paper/"]').first.click()
    page.locator("#searchbar").fill("Soccer Skills")
    page.locator("#searchbar").press("Enter")
    expect(page.locator("#result_list")).to_contain_text(PAPER)
    page.locator("#result_list input.action-select").first.check()
    page.locator("select[name=action]").select_option("pin_for_day")
    page.get_by_title("Run the selected action").click()
    page.get_by_label("Day").fill("2025-11-08")
    page.get_by_label("Note").fill("Robots playing football")
    screenshot("pin-form")
    page.get_by_role("button", name="Pin").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Pinned 1 paper(s) for 2025-11-08.")
    screenshot("pinned")
    pin = Pin.objects.get()
    assert (pin.paper, pin.note, pin.created_by_id) == (
        Paper.objects.get(title=PAPER),
        "Robots playing football",
        user.pk,
    )

    page.goto(console)
    page.get_by_role("link", name="Preview a subscriber's digest").click()
    page.get_by_label("Subscriber").fill("ada@example.org")
    page.get_by_label("Date").fill("2025-11-08")
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.locator("#preview-subject")).to_contain_text("Subject:")
    frame = page.frame_locator("iframe.preview-frame")
    expect(frame.locator("body")).to_contain_text(PAPER)
    expect(frame.locator("body")).to_contain_text("Robots playing football")
    expect(page.locator("#preview-text")).to_contain_text(PAPER)
    screenshot("preview")
