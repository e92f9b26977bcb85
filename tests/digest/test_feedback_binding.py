"""A feedback link is bound to the subscriber, paper and signal it was made for; links
made before binding keep working for a month after they were made."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from django.test import Client

from digest import services, tokens
from digest.models import Feedback
from tests.factories import PaperFactory, SubscriberFactory

pytestmark = pytest.mark.django_db


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def two_papers():
    return PaperFactory(arxiv_id="2511.00001"), PaperFactory(arxiv_id="2511.00002")


def test_it_records_a_bound_link_for_its_own_paper_and_signal(client: Client, two_papers) -> None:
    reader = SubscriberFactory()
    link = path_of(tokens.feedback_url(reader, arxiv_id="2511.00001", signal=-1))
    assert client.get(link).status_code == 200
    response = client.post(link, {"p": "2511.00001", "v": "-1"})
    assert response.status_code == 200
    feedback = Feedback.objects.get()
    assert (feedback.subscriber, feedback.paper.arxiv_id, feedback.signal) == (reader, "2511.00001", -1)


@pytest.mark.parametrize(
    ("paper", "signal"),
    [("2511.00002", "-1"), ("2511.00001", "1"), ("2511.00002", "1"), ("2511.00001", "0"), ("2511.00001", "x")],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_it_refuses_a_bound_link_turned_to_another_paper_or_signal(
    client: Client, two_papers, paper: str, signal: str, method: str
) -> None:
    """The review's case: one link could rate any paper, either way."""
    reader = SubscriberFactory()
    token = urlsplit(tokens.feedback_url(reader, arxiv_id="2511.00001", signal=-1)).path.rsplit("/", 1)[1]
    url = f"/feedback/{token}?p={paper}&v={signal}"
    response = client.get(url) if method == "get" else client.post(url, {"p": paper, "v": signal})
    assert response.status_code == 400
    assert not Feedback.objects.exists()
    reader.refresh_from_db()
    assert reader.weights == {}


def test_it_refuses_a_bound_link_under_another_subscriber(client: Client, two_papers) -> None:
    ann, bob = SubscriberFactory(), SubscriberFactory()
    link = tokens.feedback_url(ann, arxiv_id="2511.00001", signal=1)
    forged = path_of(link.replace(f"/feedback/{ann.pk}.", f"/feedback/{bob.pk}."))
    assert client.post(forged, {"p": "2511.00001", "v": "1"}).status_code == 400
    assert not Feedback.objects.exists()


def test_it_stops_a_bound_link_once_the_subscriber_key_changes(client: Client, two_papers) -> None:
    reader = SubscriberFactory()
    link = path_of(tokens.feedback_url(reader, arxiv_id="2511.00001", signal=1))
    reader.key = "f" * 32
    reader.save()
    assert client.post(link, {"p": "2511.00001", "v": "1"}).status_code == 400


def test_it_accepts_a_bound_link_signed_with_a_fallback_secret(client: Client, two_papers, settings) -> None:
    reader = SubscriberFactory()
    link = path_of(tokens.feedback_url(reader, arxiv_id="2511.00001", signal=1))
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-after-rotation-" * 2
    assert client.post(link, {"p": "2511.00001", "v": "1"}).status_code == 200


def test_it_keeps_unbound_links_working_for_a_month_after_they_were_made(
    client: Client, two_papers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Digests sent before binding carry the subscriber's token with the paper and signal in
    the query; those are still answered, until UNBOUND_FEEDBACK_MAX_AGE after they were made."""
    reader = SubscriberFactory()
    made = time.time()
    unbound = urlsplit(tokens.url_for(reader, "feedback")).path
    assert client.post(f"{unbound}?p=2511.00002&v=1", {"p": "2511.00002", "v": "1"}).status_code == 200
    month = tokens.UNBOUND_FEEDBACK_MAX_AGE.total_seconds()
    monkeypatch.setattr(time, "time", lambda: made + month + 60)
    response = client.post(f"{unbound}?p=2511.00001&v=-1", {"p": "2511.00001", "v": "-1"})
    assert response.status_code == 400
    assert b"expired" in response.content
    assert list(Feedback.objects.values_list("paper__arxiv_id", flat=True)) == ["2511.00002"]


def test_it_refuses_feedback_on_an_unknown_paper_in_the_service(two_papers) -> None:
    """Paper and signal are checked once, by the service, whichever door calls it."""
    reader = SubscriberFactory()
    with pytest.raises(services.InvalidFeedback):
        services.feedback_record(subscriber=reader, arxiv_id="2511.99999", signal=1)
    with pytest.raises(services.InvalidFeedback):
        services.feedback_record(subscriber=reader, arxiv_id="2511.00001", signal=2)
    assert not Feedback.objects.exists()


def test_it_answers_a_valid_link_to_an_unknown_paper_with_the_bad_link_page(client: Client) -> None:
    reader = SubscriberFactory()
    link = path_of(tokens.feedback_url(reader, arxiv_id="2511.99999", signal=1))
    assert client.get(link).status_code == 400
    assert client.post(link, {"p": "2511.99999", "v": "1"}).status_code == 400
