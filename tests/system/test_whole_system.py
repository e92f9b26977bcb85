"""The deployed service, end to end: a person signs up in Chromium against gunicorn,
confirms, and beat scrapes and sends through a worker: one correct digest each."""

import re

import httpx
from playwright.sync_api import expect

from tests.smtp import Received, SmtpServer
from tests.system.stack import Stack, wait_for

PEOPLE = {
    # address: topics typed into the form
    "ada@example.org": "reinforcement learning",
    "bob@example.org": "video generation",
}


def sign_up(page, stack: Stack, email: str, topics: str) -> None:
    page.goto(stack.url + "/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Topics").press_sequentially(topics)
    page.get_by_label("Send at").select_option("0")  # the send hour has come whenever the test runs
    page.get_by_label("Time zone").fill("UTC")
    page.get_by_role("button", name="Subscribe", exact=True).click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()


def link(message: Received, kind: str) -> str:
    text = message.message().get_body(("plain",)).get_content()
    match = re.search(rf"http://\S+/{kind}/\S+", text)
    assert match, text
    return match.group(0)


def digests_to(smtp: SmtpServer, address: str) -> list[Received]:
    return [m for m in smtp.to(address) if m.message()["List-Id"]]


def test_people_sign_up_confirm_and_get_exactly_one_digest(
    stack: Stack, smtp_server: SmtpServer, page, screenshot
) -> None:
    stack.every("papers.tasks.scrape_daily", 2)
    stack.every("digest.tasks.plan_digests", 2)
    for name in ("web", "worker", "beat"):
        stack.start(name)

    for email, topics in PEOPLE.items():
        sign_up(page, stack, email, topics)
        confirmation = wait_for(lambda email=email: smtp_server.to(email), what=f"the confirmation email to {email}")[0]
        page.goto(link(confirmation, "confirm"))
        page.get_by_role("button", name="Confirm my subscription").click()
        expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    screenshot("confirmed")

    for email in PEOPLE:
        wait_for(lambda email=email: digests_to(smtp_server, email), timeout=90, what=f"a digest to {email}")
    # Several more planner runs go by: nobody gets a second digest for the same day.
    wait_for(lambda: stack.log("beat").count("digest.tasks.plan_digests") >= 6, what="more planner runs")
    wait_for(lambda: not stack.scalar("SELECT count(*) FROM digest_delivery WHERE status <> 'sent'"), what="all sent")

    ada, bob = (digests_to(smtp_server, email) for email in PEOPLE)
    assert len(ada) == len(bob) == 1
    sent_rows = stack.scalar("SELECT count(*) FROM digest_delivery WHERE status = 'sent'")
    assert sent_rows == 2 == sum(1 for m in smtp_server.messages if m.message()["List-Id"])

    ada_text = ada[0].message().get_body(("plain",)).get_content()
    assert "Scaling Agent Learning via Experience Synthesis" in ada_text
    assert "Matches: reinforcement learning" in ada_text
    bob_text = bob[0].message().get_body(("plain",)).get_content()
    assert "Thinking with Video" in bob_text and "Matches: video generation" in bob_text
    assert "Scaling Agent Learning" not in bob_text
    assert bob[0].message()["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # The one-click unsubscribe in the header works against gunicorn, as a mailbox provider does it.
    url = bob[0].message()["List-Unsubscribe"].split(">")[0].lstrip("<")
    response = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)
    assert response.status_code == 200
    assert stack.scalar("SELECT status FROM digest_subscriber WHERE email = 'bob@example.org'") == "unsubscribed"
