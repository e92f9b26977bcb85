"""One-click "more / less like this" links and the web view of a sent digest."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.test import Client

from digest import sending, tokens
from digest.models import Delivery, Feedback
from papers.models import Paper
from tests.digest.conftest import DIGEST_DAY
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

VIDEO = "2511.04570"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@pytest.fixture
def ann(ready_day):
    return SubscriberFactory(email="ann@example.org", topics=["video generation"])


def digest_links(subscriber, label: str) -> list[str]:
    """The links labelled ``label`` in the subscriber's digest, as the email shows them."""
    text = sending.preview_digest(subscriber=subscriber, day=DIGEST_DAY).text
    return re.findall(rf"{label}: (\S+)", text)


def test_the_feedback_helper_makes_the_links_the_digest_shows(ann):
    assert digest_links(ann, "More like this") == [tokens.feedback_url(ann, arxiv_id=VIDEO, signal=1)]
    assert digest_links(ann, "Less like this") == [tokens.feedback_url(ann, arxiv_id=VIDEO, signal=-1)]


def test_get_shows_a_button_and_changes_nothing(client: Client, ann):
    [link] = digest_links(ann, "More like this")
    url = path_of(link)
    assert url.endswith(f"?p={VIDEO}&v=1")

    response = client.get(url)

    assert response.status_code == 200
    assert b"<button" in response.content
    assert Paper.objects.get(arxiv_id=VIDEO).title.encode() in response.content
    assert not Feedback.objects.exists()
    ann.refresh_from_db()
    assert ann.weights == {}


def test_post_records_feedback_and_moves_weights_once(client: Client, ann):
    url = tokens.url_for(ann, "feedback").replace(tokens.settings.SITE_URL, "")

    response = client.post(url, {"p": VIDEO, "v": "1"})

    assert response.status_code == 200
    feedback = Feedback.objects.get()
    assert (feedback.subscriber_id, feedback.paper.arxiv_id, feedback.signal) == (ann.pk, VIDEO, 1)
    ann.refresh_from_db()
    assert ann.weights
    learned = dict(ann.weights)

    again = client.post(url, {"p": VIDEO, "v": "1"})

    assert again.status_code == 200
    ann.refresh_from_db()
    assert ann.weights == learned
    assert Feedback.objects.count() == 1


def test_less_like_this_moves_weights_the_other_way(client: Client, ann):
    url = tokens.url_for(ann, "feedback").replace(tokens.settings.SITE_URL, "")
    client.post(url, {"p": VIDEO, "v": "1"})
    ann.refresh_from_db()
    more = dict(ann.weights)

    client.post(url, {"p": VIDEO, "v": "-1"})

    ann.refresh_from_db()
    assert Feedback.objects.get().signal == -1
    assert ann.weights != more
    assert sum(ann.weights.values()) < sum(more.values())


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_bad_token_is_a_400(client: Client, ann, method):
    token = tokens.make_token(ann, "feedback")
    for bad in (token[:-3] + "xyz", tokens.make_token(ann, "unsubscribe"), "nonsense"):
        response = getattr(client, method)(f"/feedback/{bad}?p={VIDEO}&v=1", {"p": VIDEO, "v": "1"})
        assert response.status_code == 400
    assert not Feedback.objects.exists()
    ann.refresh_from_db()
    assert ann.weights == {}


def test_webview_shows_the_digest_as_sent(client: Client, smtp_server, ann):
    delivery = Delivery.objects.create(subscriber=ann, digest_date=DIGEST_DAY)
    assert sending.send_batch([delivery.pk]).sent == 1
    text = smtp_server.to(ann.email)[0].message().get_body(("plain",)).get_content()
    [link] = re.findall(r"Read it in your browser: (\S+)", text)

    response = client.get(path_of(link))

    assert response.status_code == 200
    assert Paper.objects.get(arxiv_id=VIDEO).title.encode() in response.content
    not_sent = Paper.objects.get(arxiv_id="2511.03295")
    assert not_sent.title.encode() not in response.content


def test_webview_without_a_sent_digest_is_a_404(client: Client, ann):
    url = path_of(tokens.webview_url(ann, day=DIGEST_DAY))
    assert client.get(url).status_code == 404

    Delivery.objects.create(subscriber=ann, digest_date=DIGEST_DAY)  # planned, not sent
    assert client.get(url).status_code == 404
