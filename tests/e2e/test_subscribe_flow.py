"""A person subscribes, confirms, changes preferences and unsubscribes in a real browser."""

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from digest import tokens
from digest.models import Subscriber

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _site_url(settings, live_server) -> None:
    # Links in emails must point at the server the browser talks to.
    settings.SITE_URL = live_server.url


def link_in(message: mail.EmailMessage, kind: str) -> str:
    match = re.search(rf"http://\S+/{kind}/\S+", message.body)
    assert match, message.body
    return match.group(0)


def test_it_signs_up_confirms_changes_preferences_and_unsubscribes(
    page, screenshot, live_server, hf_papers: None
) -> None:
    """The whole life of a subscription, with the live preview updating as topics are typed."""
    page.goto(live_server.url + "/")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Berlin")  # from the browser
    page.get_by_label("Email address").fill("ada@example.org")
    topics = page.get_by_label("Topics")
    preview = page.locator("#preview")
    topics.press_sequentially("reinforcement learning")
    expect(preview).to_contain_text("Scaling Agent Learning via Experience Synthesis")
    expect(preview).to_contain_text("matches: reinforcement learning")
    screenshot("preview-rl")

    topics.fill("")
    topics.press_sequentially("humanoid")
    expect(preview).to_contain_text("Learning Vision-Driven Reactive Soccer Skills for Humanoid Robots")
    expect(preview).not_to_contain_text("Scaling Agent Learning via Experience Synthesis")
    page.get_by_role("button", name="reinforcement learning", exact=True).click()  # a suggestion chip
    expect(topics).to_have_value("humanoid, reinforcement learning")
    expect(preview).to_contain_text("Scaling Agent Learning via Experience Synthesis")
    page.get_by_label("Leave out papers about").press_sequentially("soccer")
    expect(preview).not_to_contain_text("Soccer Skills")
    screenshot("preview-updated")

    page.get_by_role("button", name="Subscribe", exact=True).click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    screenshot("check-inbox")
    [message] = mail.outbox
    assert message.to == ["ada@example.org"]
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.topics == ["humanoid", "reinforcement learning"]
    assert subscriber.time_zone == "Europe/Berlin"

    page.goto(link_in(message, "confirm"))
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    screenshot("confirmed")
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE

    page.get_by_role("link", name="Change your preferences").click()
    expect(page.get_by_label("Topics")).to_have_value("humanoid, reinforcement learning")
    page.get_by_label("Topics").fill("diffusion, speculative decoding")
    page.get_by_label("Weekly").check()
    page.get_by_label("Papers per email").fill("5")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_contain_text("Your preferences are saved.")
    screenshot("preferences-saved")
    subscriber.refresh_from_db()
    assert (subscriber.topics, subscriber.frequency, subscriber.max_papers) == (
        ["diffusion", "speculative decoding"],
        "weekly",
        5,
    )

    # The link a digest carries in its body and its List-Unsubscribe header.
    unsubscribe = tokens.list_unsubscribe(subscriber)["List-Unsubscribe"].split(">")[0][1:]
    page.goto(unsubscribe)
    expect(page.get_by_role("heading", name="Unsubscribe from Paper Digest?")).to_be_visible()
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE  # the GET changed nothing
    page.get_by_role("button", name="Unsubscribe", exact=True).click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    screenshot("unsubscribed")
    assert Subscriber.objects.get().status == Subscriber.Status.UNSUBSCRIBED


def test_it_works_without_javascript(browser, live_server, hf_papers: None) -> None:
    """The Preview button and the form work with scripts off; errors are shown next to fields."""
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        page.goto(live_server.url + "/")
        page.get_by_label("Email address").fill("grace@example.org")
        page.get_by_label("Topics").fill("humanoid")
        page.get_by_role("button", name="Preview my digest").click()
        expect(page.locator("#preview")).to_contain_text("Soccer Skills for Humanoid Robots")
        expect(page.get_by_label("Email address")).to_have_value("grace@example.org")
        page.get_by_label("Papers per email").fill("99")
        page.get_by_role("button", name="Subscribe", exact=True).click()
        expect(page.locator("#error-summary")).to_contain_text("less than or equal to 30")
        assert not Subscriber.objects.exists()
        page.get_by_label("Papers per email").fill("10")
        page.get_by_role("button", name="Subscribe", exact=True).click()
        expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        assert Subscriber.objects.get().email == "grace@example.org"
    finally:
        context.close()


def test_it_fits_a_phone_screen_and_works_from_the_keyboard(browser, live_server, screenshot, page) -> None:
    """No sideways scrolling at 375 px; Tab moves from the address to the topics."""
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(live_server.url + "/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.get_by_label("Email address").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "id_topics"
    screenshot("phone")
