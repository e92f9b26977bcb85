"""Signed links: expired, altered, reused, revoked."""

import base64
import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from digest import services, tokens
from digest.models import ConsentRecord, Subscriber
from tests.factories import ConsentRecordFactory, SubscriberFactory

pytestmark = pytest.mark.django_db


def confirm_path(consent: ConsentRecord) -> str:
    return urlsplit(tokens.url_for(consent.subscriber, "confirm", c=consent.pk)).path


def test_it_refuses_a_confirmation_link_older_than_seven_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """Confirmation links expire after 7 days; the page says so and nothing changes."""
    consent = ConsentRecordFactory()
    path = confirm_path(consent)
    later = time.time() + 7 * 86400 + 60
    monkeypatch.setattr(time, "time", lambda: later)
    response = Client().post(path)
    assert response.status_code == 400
    assert b"this link has expired" in response.content
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


def test_it_accepts_a_confirmation_link_within_seven_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """Six days and a bit later the link still works."""
    consent = ConsentRecordFactory()
    path = confirm_path(consent)
    later = time.time() + 6 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    assert Client().post(path).status_code == 200
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE


def test_it_refuses_an_altered_confirmation_link() -> None:
    """Changing any character of the token breaks its signature."""
    consent = ConsentRecordFactory()
    path = confirm_path(consent)
    for position in (len("/confirm/") + 1, len(path) // 2, len(path) - 1):
        flipped = "A" if path[position] != "A" else "B"
        altered = path[:position] + flipped + path[position + 1 :]
        assert Client().post(altered).status_code == 400
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


def test_it_refuses_a_link_signed_for_another_subscriber_id() -> None:
    """A token cannot be re-pointed at someone else: the payload is signed."""
    victim = SubscriberFactory()
    attacker = SubscriberFactory()
    token = tokens.make_token(attacker, "manage")
    payload, rest = token.split(":", 1)
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert data["s"] == attacker.pk
    data["s"] = victim.pk
    forged_payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=")
    forged = f"{forged_payload.decode()}:{rest}"
    assert forged != token
    assert Client().get(f"/manage/{forged}").status_code == 400


def test_it_does_not_reactivate_with_a_reused_confirmation_link(client: Client) -> None:
    """A used link changes nothing later, even after the person unsubscribed."""
    consent = ConsentRecordFactory()
    path = confirm_path(consent)
    assert b"You are subscribed" in client.post(path).content
    services.subscriber_unsubscribe(subscriber=consent.subscriber)
    again = client.post(path)
    assert again.status_code == 200
    assert b"This link was already used" in again.content
    assert Subscriber.objects.get().status == Subscriber.Status.UNSUBSCRIBED
    assert not mail.outbox


def test_it_revokes_every_link_when_the_data_is_deleted() -> None:
    """Deleting erases the key the links were signed with."""
    subscriber = SubscriberFactory()
    manage = urlsplit(tokens.manage_url(subscriber)).path
    unsubscribe = urlsplit(tokens.unsubscribe_url(subscriber)).path
    services.subscriber_delete(subscriber=subscriber)
    assert Client().get(manage).status_code == 400
    assert Client().post(unsubscribe).status_code == 400


def test_it_refuses_a_confirmation_token_without_a_consent(signup: Callable) -> None:
    """A confirm token must name the signup it confirms."""
    subscriber = SubscriberFactory(status=Subscriber.Status.PENDING)
    path = urlsplit(tokens.confirm_url(subscriber)).path
    assert Client().post(path).status_code == 400
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING
