"""RFC 8058 one-click unsubscribe: raw POSTs without cookies or CSRF token."""

import http.client
import time
from urllib.parse import urlsplit

import pytest
from django.test import Client

from digest import services, tokens
from digest.models import Delivery, Subscriber
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_it_unsubscribes_on_a_form_urlencoded_post_without_cookies_or_csrf_token() -> None:
    """The mailbox provider's POST: no cookie, no CSRF token, answered 200 without a redirect."""
    subscriber = SubscriberFactory()
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        path_of(tokens.unsubscribe_url(subscriber)),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert "Location" not in response
    assert not response.cookies
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert subscriber.unsubscribed_at is not None


def test_it_unsubscribes_on_a_multipart_post() -> None:
    """RFC 8058 says the body SHOULD be multipart/form-data."""
    subscriber = SubscriberFactory()
    response = Client(enforce_csrf_checks=True).post(
        path_of(tokens.unsubscribe_url(subscriber)), {"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def test_it_is_idempotent() -> None:
    """A second POST answers 200 again and changes nothing, not even the time."""
    subscriber = SubscriberFactory()
    client = Client(enforce_csrf_checks=True)
    path = path_of(tokens.unsubscribe_url(subscriber))
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    first = Subscriber.objects.get().unsubscribed_at
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert Subscriber.objects.get().unsubscribed_at == first


def test_it_never_unsubscribes_on_get() -> None:
    """Link scanners fetch URLs: a GET only shows the button."""
    subscriber = SubscriberFactory()
    response = Client().get(path_of(tokens.unsubscribe_url(subscriber)))
    assert response.status_code == 200
    assert b'<button type="submit" class="primary">Unsubscribe</button>' in response.content
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE


@pytest.mark.parametrize("method", ["get", "post"])
def test_it_refuses_an_altered_token_with_no_change(method: str) -> None:
    """A forged or altered token answers 400 and unsubscribes nobody."""
    subscriber = SubscriberFactory()
    token = tokens.make_token(subscriber, "unsubscribe")
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    other_kind = tokens.make_token(subscriber, "manage")
    client = Client(enforce_csrf_checks=True)
    for bad in (altered, other_kind, "garbage", "x" * 5000):
        response = getattr(client, method)(f"/unsubscribe/{bad}")
        assert response.status_code == 400, bad
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE


def test_it_still_works_after_sixty_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unsubscribe links do not expire (the law asks for at least 30 days)."""
    subscriber = SubscriberFactory()
    path = path_of(tokens.unsubscribe_url(subscriber))
    later = time.time() + 90 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    response = Client(enforce_csrf_checks=True).post(path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Subscriber.objects.get().status == Subscriber.Status.UNSUBSCRIBED


def test_it_skips_digests_planned_but_not_yet_sent() -> None:
    """Unsubscribing is honoured at once, even for a digest already queued for today."""
    subscriber = SubscriberFactory()
    queued = Delivery.objects.create(subscriber=subscriber, digest_date="2025-11-07")
    services.subscriber_unsubscribe(subscriber=subscriber)
    queued.refresh_from_db()
    assert queued.status == Delivery.Status.SKIPPED


def test_it_gives_list_unsubscribe_headers_per_rfc_8058(settings) -> None:
    """One HTTPS one-click URI and a mailto, and the One-Click post header."""
    settings.SITE_URL = "https://digest.example.org"
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@digest.example.org"
    subscriber = SubscriberFactory()
    headers = tokens.list_unsubscribe(subscriber)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = headers["List-Unsubscribe"].split(", ")
    assert https.startswith("<https://digest.example.org/unsubscribe/") and https.endswith(">")
    token = https[len("<https://digest.example.org/unsubscribe/") : -1]
    assert tokens.read_token(token, "unsubscribe")[0] == subscriber
    assert mailto == f"<mailto:unsubscribe@digest.example.org?subject=unsubscribe-{token}>"


@pytest.mark.django_db(transaction=True)
def test_it_unsubscribes_from_a_raw_http_post(live_server) -> None:
    """The one-click POST as a mailbox provider sends it, over a real socket."""
    subscriber = SubscriberFactory()
    target = urlsplit(live_server.url)
    path = path_of(tokens.unsubscribe_url(subscriber))
    for body, content_type in [
        (b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"),
        (
            b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--XyZ--\r\n',
            "multipart/form-data; boundary=XyZ",
        ),
    ]:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 200
        assert response.getheader("Location") is None
        assert response.getheader("Set-Cookie") is None
        assert Subscriber.objects.get().status == Subscriber.Status.UNSUBSCRIBED


def test_it_advertises_only_the_https_unsubscribe_when_no_mailbox_reads_the_mailto(settings) -> None:
    settings.UNSUBSCRIBE_MAILTO = ""  # what settings.py leaves without INBOUND_IMAP_URL / INBOUND_WEBHOOK
    headers = tokens.list_unsubscribe(SubscriberFactory())

    assert "mailto:" not in headers["List-Unsubscribe"]
    assert headers["List-Unsubscribe"].startswith("<") and headers["List-Unsubscribe"].count("<") == 1
