"""Signup: double opt-in, no enumeration, rate limits, honeypot, broker outages."""

import re
from collections.abc import Callable

import pytest
from django.core import mail
from django.test import Client
from kombu.exceptions import OperationalError

from digest import services
from digest.models import ConsentRecord, Subscriber, Suppression
from tests.factories import ConsentRecordFactory, SubscriberFactory, signup_data

pytestmark = pytest.mark.django_db


def confirm_link(message: mail.EmailMessage) -> str:
    match = re.search(r"http://127\.0\.0\.1:8000(/confirm/\S+)", message.body)
    assert match, message.body
    return match.group(1)


def test_it_stores_a_pending_subscriber_with_consent_and_sends_only_a_confirmation(signup: Callable) -> None:
    """A signup creates a pending subscriber and a consent record, and sends one confirmation email."""
    response = signup(topics="speculative decoding,  Diffusion ,diffusion", excludes="robotics")
    assert response.status_code == 302
    assert response["Location"] == "/subscribed"
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "ada@example.org"
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.topics == ["speculative decoding", "Diffusion"]
    assert subscriber.excludes == ["robotics"]
    assert subscriber.time_zone == "Europe/Berlin"
    assert subscriber.confirmation_sent_at is not None
    consent = ConsentRecord.objects.get()
    assert (consent.ip, consent.user_agent, consent.confirmed_at) == ("127.0.0.1", "Mozilla/5.0 (test)", None)
    assert consent.form_version.startswith("signup-")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ada@example.org"]
    assert message.from_email == "Paper Digest <hello@127.0.0.1>"
    assert message.subject == "Confirm your Paper Digest subscription"
    assert "List-Unsubscribe" not in message.extra_headers


def test_it_uses_the_transactional_from_address_not_the_digest_one(signup: Callable, settings) -> None:
    """Confirmations come from DEFAULT_FROM_EMAIL, which differs from DIGEST_FROM_EMAIL."""
    settings.DEFAULT_FROM_EMAIL = "Hello <hello@example.org>"
    settings.DIGEST_FROM_EMAIL = "Digest <digest@example.org>"
    signup()
    assert mail.outbox[0].from_email == "Hello <hello@example.org>"


def test_it_confirms_on_post_only_and_records_the_confirmation_time(signup: Callable, client: Client) -> None:
    """The link's GET shows a button (mail scanners open links); the POST confirms."""
    signup()
    link = confirm_link(mail.outbox[0])
    page = client.get(link)
    assert page.status_code == 200
    assert b"Confirm my subscription" in page.content
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING
    done = client.post(link)
    assert done.status_code == 200
    assert b"You are subscribed" in done.content
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.confirmed_at is not None
    assert ConsentRecord.objects.get().confirmed_at == subscriber.confirmed_at
    assert len(mail.outbox) == 1  # nothing else is sent on confirmation


def test_it_changes_nothing_for_an_active_subscriber_and_mails_a_manage_link(signup: Callable) -> None:
    """Someone typing a subscriber's address cannot change their topics; the owner gets a link."""
    subscriber = SubscriberFactory(email="ada@example.org", topics=["agents"])
    signup(topics="cooking")
    subscriber.refresh_from_db()
    assert subscriber.topics == ["agents"]
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert not ConsentRecord.objects.exists()
    [message] = mail.outbox
    assert message.subject == "Your Paper Digest subscription"
    assert "/manage/" in message.body
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.extra_headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/unsubscribe/")


STATES = ["new", "pending", "active", "paused", "unsubscribed", "suppressed", "deleted", "rate-limited"]


def put_address_in_state(email: str, state: str) -> None:
    if state == "pending":
        ConsentRecordFactory(subscriber__email=email)
    elif state in ("active", "paused", "unsubscribed"):
        SubscriberFactory(email=email, status=state)
    elif state == "suppressed":
        Suppression.objects.create(email_hash=services.email_hash(email), reason=Suppression.Reason.COMPLAINT)
    elif state == "deleted":
        services.subscriber_delete(subscriber=SubscriberFactory(email=email))
    elif state == "rate-limited":
        for _ in range(services.MAILS_PER_ADDRESS_PER_DAY):
            services.rate_limit_hit(f"address:{services.email_hash(email)}", limit=3, window=86400)


def test_it_answers_identically_whatever_the_address_state(
    client: Client, django_capture_on_commit_callbacks: Callable
) -> None:
    """No enumeration: status, every header and the page followed to are the same for an address
    that is new, pending, active, paused, unsubscribed, suppressed, deleted or rate-limited."""
    answers = {}
    for state in STATES:
        email = f"{state}@example.org"
        put_address_in_state(email, state)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/", signup_data(email=email))
        follow = client.get(response["Location"])
        answers[state] = (
            response.status_code,
            sorted(response.headers.items()),
            response.content,
            sorted(response.cookies.keys()),
            follow.status_code,
            follow.content,
        )
    reference = answers["new"]
    assert reference[0] == 302
    assert {state: answer == reference for state, answer in answers.items()} == dict.fromkeys(STATES, True)
    sent_to = sorted(m.to[0] for m in mail.outbox)
    # What differs happens out of band: a confirmation, a manage link, or nothing.
    assert sent_to == [
        f"{s}@example.org" for s in sorted(["active", "deleted", "new", "paused", "pending", "unsubscribed"])
    ]


def test_it_sends_a_deleted_address_a_confirmation_and_lifts_the_suppression_only_on_confirmation(
    signup: Callable, client: Client
) -> None:
    """Signing up anew after deleting is allowed; the suppression stays until the link is used."""
    services.subscriber_delete(subscriber=SubscriberFactory(email="ada@example.org"))
    assert Suppression.covers("ada@example.org")
    signup()
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING
    assert Suppression.covers("ada@example.org")
    client.post(confirm_link(mail.outbox[0]))
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE
    assert not Suppression.covers("ada@example.org")


def test_it_never_mails_an_address_suppressed_for_a_complaint(signup: Callable) -> None:
    """A spam complaint is not lifted from the public form: nothing is stored or sent."""
    Suppression.objects.create(email_hash=services.email_hash("ADA@example.org"), reason=Suppression.Reason.COMPLAINT)
    signup()
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


def test_it_sends_a_new_confirmation_to_a_pending_address_with_the_newest_choices(signup: Callable) -> None:
    """Signing up twice before confirming updates the choices and resends the link."""
    signup(topics="agents")
    signup(topics="diffusion", email="Ada@Example.org")
    subscriber = Subscriber.objects.get()
    assert subscriber.topics == ["diffusion"]
    assert subscriber.consents.count() == 2
    assert len(mail.outbox) == 2


def test_it_sends_at_most_three_emails_a_day_to_one_address(signup: Callable) -> None:
    """A signup form must not become a way to flood someone's inbox."""
    for _ in range(5):
        response = signup()
        assert response.status_code == 302
    assert len(mail.outbox) == 3
    assert ConsentRecord.objects.count() == 3


def test_it_limits_signups_per_ip_address(signup: Callable, settings) -> None:
    """Past the hourly limit an IP gets 429 and nothing is stored or sent."""
    settings.SIGNUP_PER_IP_PER_HOUR = 2
    assert signup(email="a@example.org").status_code == 302
    assert signup(email="b@example.org").status_code == 302
    response = signup(email="c@example.org")
    assert response.status_code == 429
    assert b"Too many attempts" in response.content
    assert not Subscriber.objects.filter(email="c@example.org").exists()
    assert len(mail.outbox) == 2


def test_it_stores_nothing_when_the_honeypot_is_filled(signup: Callable) -> None:
    """Bots that fill every field get the usual answer and nothing happens."""
    response = signup(website="http://spam.example")
    assert response.status_code == 302
    assert response["Location"] == "/subscribed"
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


def test_it_requires_a_csrf_token_on_the_signup_form() -> None:
    """The signup form is CSRF-protected (only one-click unsubscribe is exempt)."""
    client = Client(enforce_csrf_checks=True)
    response = client.post("/", signup_data())
    assert response.status_code == 403
    assert not Subscriber.objects.exists()


def test_it_shows_field_errors_and_stores_nothing_on_invalid_input(signup: Callable) -> None:
    """Clear errors next to the fields and in a summary; the typed values come back."""
    response = signup(email="not-an-address", topics="x" * 101, max_papers="50", time_zone="Mars/Olympus")
    assert response.status_code == 400
    page = response.content.decode()
    assert "Enter a valid email address." in page
    assert "Each topic can be at most 100 characters" in page
    assert "Ensure this value is less than or equal to 30." in page
    assert "Pick a time zone such as Europe/Berlin" in page
    assert 'id="error-summary"' in page
    assert 'value="not-an-address"' in page
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


def test_it_still_accepts_the_signup_when_the_broker_is_down_and_the_sweep_sends_it(
    signup: Callable, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker outage loses the enqueue, not the signup: the periodic sweep sends the email."""
    from digest import tasks

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.send_confirmation, "delay", down)
    response = signup()
    assert response.status_code == 302
    subscriber = Subscriber.objects.get()
    assert subscriber.confirmation_sent_at is None
    assert mail.outbox == []
    assert "could not enqueue send_confirmation" in caplog.text
    monkeypatch.undo()
    assert tasks.sweep_confirmations.delay().get() == 1
    assert len(mail.outbox) == 1
    subscriber.refresh_from_db()
    assert subscriber.confirmation_sent_at is not None
    assert services.confirmations_sweep() == 0  # claimed once, sent once


def test_it_unclaims_a_confirmation_whose_send_failed_so_the_sweep_retries(
    signup: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SMTP failure leaves confirmation_sent_at empty for the next sweep."""

    def refuse(*args: object, **kwargs: object) -> int:
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(mail.EmailMultiAlternatives, "send", refuse)
    signup()
    assert Subscriber.objects.get().confirmation_sent_at is None
    monkeypatch.undo()
    assert services.confirmations_sweep() == 1
    assert len(mail.outbox) == 1


def test_it_schedules_the_confirmation_sweep() -> None:
    """Beat runs the sweep every few minutes."""
    from digest.celery import app

    app.finalize()
    assert app.conf.beat_schedule["sweep-confirmations"]["task"] == "digest.tasks.sweep_confirmations"


def test_it_links_nothing_personal_from_a_used_confirmation_link(
    signup: Callable, client: Client, django_capture_on_commit_callbacks: Callable
) -> None:
    """A used link showed a manage link for its seven days to whoever opened it (a forwarded
    or shared confirmation email); now it says so, and a preferences link goes by email."""
    signup()
    link = confirm_link(mail.outbox[0])
    assert "You are subscribed" in client.post(link).content.decode()  # (that answer may link them)
    again = client.get(link)
    assert again.status_code == 200
    page = again.content.decode()
    assert "This link was already used" in page
    for answer in (page, client.post(link).content.decode()):
        assert "/manage/" not in answer

    with django_capture_on_commit_callbacks(execute=True):
        asked = client.post(f"{link}/manage-link").content.decode()
    assert "A link to your preferences is on its way" in asked and "/manage/" not in asked
    [_, sent] = mail.outbox
    assert sent.to == ["ada@example.org"]
    assert sent.subject == "Your Paper Digest subscription"
    assert re.search(r"http://127\.0\.0\.1:8000/manage/\S+", sent.body)


def test_it_mails_no_preferences_link_from_a_confirmation_link_that_confirmed_nothing(
    signup: Callable, client: Client, django_capture_on_commit_callbacks: Callable
) -> None:
    signup()
    link = confirm_link(mail.outbox[0])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{link}/manage-link")  # still pending: the page offers no such button
    assert response.status_code == 302 and response["Location"] == link
    assert len(mail.outbox) == 1
    assert client.get(f"{link}/manage-link").status_code == 405
