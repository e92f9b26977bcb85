"""The preferences page: edit, pause/resume, unsubscribe, download and delete my data."""

import json
from urllib.parse import urlsplit

import pytest
from django.test import Client

from digest import selectors, services, tokens
from digest.models import ConsentRecord, Delivery, Subscriber, Suppression, email_hash
from tests.factories import ConsentRecordFactory, SubscriberFactory, signup_data

pytestmark = pytest.mark.django_db


def manage_path(subscriber: Subscriber) -> str:
    return urlsplit(tokens.manage_url(subscriber)).path


def preferences(**overrides: str) -> dict[str, str]:
    data = signup_data(**overrides)
    for name in ("email", "website", "action"):
        data.pop(name)
    return data


def test_it_shows_the_current_preferences(client: Client) -> None:
    """Every choice from signup is on the page, ready to edit."""
    subscriber = SubscriberFactory(topics=["agents", "speculative decoding"], authors=["Ada Lovelace"])
    page = client.get(manage_path(subscriber)).content.decode()
    assert 'value="agents, speculative decoding"' in page
    assert 'value="Ada Lovelace"' in page
    assert subscriber.email in page


def test_it_saves_edited_preferences(client: Client) -> None:
    """A valid edit is saved and the page says so."""
    subscriber = SubscriberFactory()
    path = manage_path(subscriber)
    response = client.post(
        path, preferences(topics="diffusion", organizations="NVIDIA", frequency="weekly", max_papers="5")
    )
    assert response.status_code == 302
    assert client.get(response["Location"]).content.decode().count("Your preferences are saved.") == 1
    subscriber.refresh_from_db()
    assert (subscriber.topics, subscriber.organizations) == (["diffusion"], ["NVIDIA"])
    assert (subscriber.frequency, subscriber.max_papers) == ("weekly", 5)


def test_it_keeps_the_old_preferences_when_an_edit_is_invalid(client: Client) -> None:
    """An invalid edit shows errors and stores nothing."""
    subscriber = SubscriberFactory(topics=["agents"])
    response = client.post(manage_path(subscriber), preferences(topics="a\r\nBcc: x@example.org"))
    assert response.status_code == 400
    assert b"Line breaks and control characters are not allowed here." in response.content
    subscriber.refresh_from_db()
    assert subscriber.topics == ["agents"]


def test_it_pauses_and_resumes(client: Client) -> None:
    """Pausing skips queued digests; resuming turns the digest back on."""
    subscriber = SubscriberFactory()
    queued = Delivery.objects.create(subscriber=subscriber, digest_date="2025-11-07")
    path = manage_path(subscriber)
    client.post(path, {"action": "pause"})
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PAUSED
    assert subscriber.paused_at is not None
    queued.refresh_from_db()
    assert queued.status == Delivery.Status.SKIPPED
    client.post(path, {"action": "resume"})
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.paused_at is None


def test_it_unsubscribes_and_resubscribes_from_the_page(client: Client) -> None:
    """The preferences page has its own unsubscribe, and a way back."""
    subscriber = SubscriberFactory()
    path = manage_path(subscriber)
    client.post(path, {"action": "unsubscribe"})
    assert Subscriber.objects.get().status == Subscriber.Status.UNSUBSCRIBED
    assert b"Resubscribe" in client.get(path).content
    client.post(path, {"action": "resume"})
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE


def test_it_does_not_let_a_pending_subscriber_skip_confirmation(client: Client) -> None:
    """Resume only works from paused or unsubscribed."""
    subscriber = SubscriberFactory(status=Subscriber.Status.PENDING)
    client.post(manage_path(subscriber), {"action": "resume"})
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


def test_it_downloads_my_data_as_json_with_the_consent_record(client: Client) -> None:
    """Download my data: preferences, consent (time, IP, user agent, form version, confirmation)."""
    consent = ConsentRecordFactory(subscriber__topics=["agents"])
    services.subscriber_confirm(subscriber=consent.subscriber, consent_id=consent.pk)
    response = client.get(manage_path(consent.subscriber) + "/data.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["email"] == consent.subscriber.email
    assert data["preferences"]["topics"] == ["agents"]
    [record] = data["consents"]
    assert record["ip"] == "192.0.2.10"
    assert record["user_agent"] == "Mozilla/5.0 (test)"
    assert record["form_version"] == "signup-test"
    assert record["confirmed_at"] is not None


def test_it_asks_before_deleting_and_then_keeps_only_a_keyed_hash(client: Client) -> None:
    """GET asks; POST erases everything and leaves only the suppression hash."""
    consent = ConsentRecordFactory(subscriber__email="ada@example.org")
    path = manage_path(consent.subscriber) + "/delete"
    ask = client.get(path)
    assert b"Yes, delete everything" in ask.content
    assert Subscriber.objects.exists()
    done = client.post(path)
    assert done.status_code == 200
    assert b"Your data is deleted" in done.content
    assert not Subscriber.objects.exists()
    assert not ConsentRecord.objects.exists()
    [suppression] = Suppression.objects.all()
    assert suppression.email_hash == email_hash("ada@example.org")
    assert "ada" not in suppression.email_hash
    assert suppression.reason == Suppression.Reason.DELETED


def test_it_requires_the_csrf_token_on_preference_forms() -> None:
    """Only the one-click unsubscribe endpoint is exempt from CSRF."""
    subscriber = SubscriberFactory()
    client = Client(enforce_csrf_checks=True)
    assert client.post(manage_path(subscriber), {"action": "unsubscribe"}).status_code == 403
    assert client.post(manage_path(subscriber) + "/delete").status_code == 403
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE


def test_it_exports_consent_rows_for_curators() -> None:
    """consent_export gives one plain row per consent record."""
    consent = ConsentRecordFactory(subscriber__email="ada@example.org")
    services.subscriber_confirm(subscriber=consent.subscriber, consent_id=consent.pk)
    [row] = selectors.consent_export()
    assert row["email"] == "ada@example.org"
    assert row["status"] == "active"
    assert row["ip"] == "192.0.2.10"
    assert row["form_version"] == "signup-test"
    assert row["confirmed_at"]
