"""A reader names papers they like on signup, votes from a digest, and sees "Your papers"."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from playwright.sync_api import expect

from digest.models import LikedPaper, Subscriber
from papers.models import Paper
from tests.digest.conftest import DIGEST_DAY, HF_ONLY, NOWHERE

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VIDEO = "2511.04570"  # on the saved 2025-11-07 list


@pytest.fixture(autouse=True)
def _site_url(settings, live_server) -> None:
    settings.SITE_URL = live_server.url


def text_of(received) -> str:
    message = received.message()
    parts = message.walk() if message.is_multipart() else [message]
    return "".join(
        part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        for part in parts
        if part.get_content_type() == "text/plain"
    )


def test_it_takes_pasted_papers_on_signup_and_a_vote_from_the_email(
    page, screenshot, live_server, hf_papers, paper_sources, smtp_server
) -> None:
    video = Paper.objects.get(arxiv_id=VIDEO)
    page.goto(live_server.url + "/")
    page.get_by_label("Email address").fill("ada@example.org")
    page.get_by_label("Topics").fill("reinforcement learning")
    preview = page.locator("#preview")
    papers = page.get_by_label("Papers you like")
    papers.fill(f"https://arxiv.org/abs/{VIDEO}v1\nhuggingface.co/papers/{HF_ONLY[0]}, {NOWHERE}")
    papers.dispatch_event("input")
    expect(preview).to_contain_text("1 of your papers is ours already and never shown back to you.")
    expect(preview).to_contain_text("2 we fetch once you subscribe.")
    expect(preview).to_contain_text("Scaling Agent Learning via Experience Synthesis")
    expect(preview).not_to_contain_text(video.title)
    screenshot("preview-with-papers")

    page.get_by_role("button", name="Subscribe", exact=True).click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"Not found on arXiv or Hugging Face: {NOWHERE}")
    screenshot("check-inbox-not-found")
    [confirmation] = mail.outbox
    page.goto(re.search(r"http://\S+/confirm/\S+", confirmation.body).group(0))
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    subscriber = Subscriber.objects.get()

    call_command("senddigests", "--date", DIGEST_DAY.isoformat(), stdout=StringIO(), stderr=StringIO())
    [digest] = smtp_server.to("ada@example.org")
    body = text_of(digest)
    assert video.title not in body  # named, so never sent back
    more = re.search(r"More like this: (\S+)", body).group(1)
    voted = Paper.objects.get(arxiv_id=re.search(r"[?&]p=([\d.]+)", more).group(1))

    page.goto(more)  # one click: the page posts the vote itself
    expect(page.get_by_role("heading", name="Thanks, noted")).to_be_visible()
    screenshot("voted")
    row = subscriber.liked_papers.get(arxiv_id=voted.arxiv_id)
    assert (row.source, row.liked) == (LikedPaper.Source.VOTE, True)

    page.get_by_role("link", name="your papers").click()
    section = page.locator("section#papers")
    expect(section.get_by_role("heading", name="Your papers")).to_be_visible()
    expect(section).to_contain_text(voted.title)
    expect(section).to_contain_text("Vote · liked")
    expect(section).to_contain_text(video.title)
    expect(section).to_contain_text("Kandinsky 5.0")  # fetched from the Hugging Face paper API
    expect(section.locator(".not-found")).to_contain_text(NOWHERE)
    screenshot("your-papers")

    section.get_by_role("button", name=f"Remove {video.title}").click()
    expect(page.get_by_role("status")).to_contain_text("The paper is off your list.")
    expect(page.locator("section#papers")).not_to_contain_text(video.title)
    assert not subscriber.liked_papers.filter(arxiv_id=VIDEO).exists()
