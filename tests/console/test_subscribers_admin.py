"""Subscribers in the console: find them, see their history, act on them."""

import csv
import io
from datetime import date

import pytest
from django.contrib.messages import get_messages
from django.core import mail

from digest.models import ConsentRecord, Delivery, SentPaper, Subscriber, Suppression, email_hash
from tests.console.conftest import console
from tests.factories import ConsentRecordFactory, DeliveryFactory, PaperFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "digest/subscriber/"


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_it_lists_subscribers_in_fixed_queries(curator_client, django_assert_max_num_queries) -> None:
    SubscriberFactory.create_batch(50, topics=["diffusion", "agents"])
    curator_client.get(console(CHANGELIST))

    with django_assert_max_num_queries(7):
        response = curator_client.get(console(CHANGELIST))

    assert response.content.decode().count("diffusion, agents") == 50


def test_it_searches_by_email_and_filters_by_status_frequency_and_topic(curator_client) -> None:
    SubscriberFactory(email="ada@example.org", topics=["Speculative decoding"], frequency="weekly")
    SubscriberFactory(email="bob@example.org", topics=["robotics"], status="paused")

    def emails(**params: str) -> list[str]:
        html = curator_client.get(console(CHANGELIST), params).content.decode()
        return [e for e in ("ada@example.org", "bob@example.org") if f">{e}<" in html]

    assert emails(q="ada@") == ["ada@example.org"]
    assert emails(status__exact="paused") == ["bob@example.org"]
    assert emails(frequency__exact="weekly") == ["ada@example.org"]
    assert emails(topic="speculative") == ["ada@example.org"]
    assert emails(topic="robot", status__exact="paused") == ["bob@example.org"]
    assert emails(topic="nobody-wants-this") == []


def test_it_shows_topics_consent_deliveries_and_papers_received(curator_client) -> None:
    subscriber = SubscriberFactory(topics=["world models"])
    ConsentRecordFactory(subscriber=subscriber, ip="198.51.100.7", form_version="signup-v3")
    delivery = DeliveryFactory(subscriber=subscriber, status="failed", error="550 mailbox unavailable")
    paper = PaperFactory(title="Genie world model")
    SentPaper.objects.create(subscriber=subscriber, paper=paper, delivery=delivery, sent_on=date(2025, 11, 7))

    html = curator_client.get(console(f"digest/subscriber/{subscriber.pk}/change/")).content.decode()

    assert "world models" in html
    assert "198.51.100.7" in html and "signup-v3" in html
    assert "550 mailbox unavailable" in html and "Failed" in html
    assert "Genie world model" in html
    assert f"?subscriber={subscriber.pk}" in html  # the preview link


def test_it_pauses_active_subscribers_and_skips_their_queued_digests(curator_client, run_action) -> None:
    active = SubscriberFactory()
    queued = DeliveryFactory(subscriber=active, status="pending")
    pending = SubscriberFactory(status="pending")

    response = run_action(curator_client, CHANGELIST, "pause", [active.pk, pending.pk])

    active.refresh_from_db()
    queued.refresh_from_db()
    assert active.status == "paused" and queued.status == "skipped"
    assert Subscriber.objects.get(pk=pending.pk).status == "pending"
    assert messages_of(response) == ["Paused 1 active subscriber(s); their queued digests are skipped."]


def test_it_resumes_paused_but_never_unsubscribed_people(curator_client, run_action) -> None:
    paused = SubscriberFactory(status="paused")
    gone = SubscriberFactory(status="unsubscribed")

    response = run_action(curator_client, CHANGELIST, "resume", [paused.pk, gone.pk])

    assert Subscriber.objects.get(pk=paused.pk).status == "active"
    assert Subscriber.objects.get(pk=gone.pk).status == "unsubscribed"
    assert messages_of(response) == [
        "Resumed 1 paused subscriber(s). 1 not paused left as they were: only the person can resubscribe."
    ]


def test_it_resends_a_pending_confirmation(curator_client, run_action, django_capture_on_commit_callbacks) -> None:
    consent = ConsentRecordFactory()
    subscriber = consent.subscriber
    Subscriber.objects.filter(pk=subscriber.pk).update(confirmation_sent_at="2025-11-01T00:00Z")
    active = SubscriberFactory()

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(curator_client, CHANGELIST, "resend_confirmation", [subscriber.pk, active.pk])

    assert [m.to for m in mail.outbox] == [[subscriber.email]]
    assert "/confirm/" in mail.outbox[0].body
    assert messages_of(response) == ["Queued 1 confirmation email(s). 1 not waiting for confirmation: skipped."]


def test_it_caps_resent_confirmations_per_address(curator_client, run_action, django_capture_on_commit_callbacks):
    subscriber = ConsentRecordFactory().subscriber

    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            response = run_action(curator_client, CHANGELIST, "resend_confirmation", [subscriber.pk])

    assert len(mail.outbox) == 3
    assert messages_of(response)[-1] == "Queued 0 confirmation email(s). 1 had 3 emails today: try tomorrow."


def test_it_suppresses_for_good(curator_client, run_action) -> None:
    subscriber = SubscriberFactory(email="spam-trap@example.org")
    DeliveryFactory(subscriber=subscriber, status="waiting")

    run_action(curator_client, CHANGELIST, "suppress", [subscriber.pk])

    subscriber.refresh_from_db()
    assert subscriber.status == "unsubscribed"
    assert Suppression.objects.get().reason == Suppression.Reason.CURATOR
    assert Suppression.covers("Spam-Trap@example.org")
    assert Delivery.objects.get().status == "skipped"


def test_it_exports_the_chosen_subscribers_as_csv(curator_client, run_action) -> None:
    first = SubscriberFactory(email="ada@example.org", topics=["agents", "rl"])
    SubscriberFactory(email="not-chosen@example.org")

    response = run_action(curator_client, CHANGELIST, "export_csv", [first.pk])

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="subscribers-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["email"], r["topics"], r["status"]) for r in rows] == [("ada@example.org", "agents; rl", "active")]


def test_it_lets_only_superusers_erase(curator_client, superuser_client, run_action) -> None:
    subscriber = SubscriberFactory(email="leaving@example.org")
    ConsentRecordFactory(subscriber=subscriber)

    refused = run_action(curator_client, CHANGELIST, "erase", [subscriber.pk], apply="Erase for good")
    assert messages_of(refused) == ["No action selected."]  # not offered to curators, so not run
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()

    confirm = run_action(superuser_client, CHANGELIST, "erase", [subscriber.pk])
    assert b"cannot be undone" in confirm.content
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()

    run_action(superuser_client, CHANGELIST, "erase", [subscriber.pk], apply="Erase for good")
    assert not Subscriber.objects.exists()
    assert not ConsentRecord.objects.exists()
    assert Suppression.objects.get().email_hash == email_hash("leaving@example.org")


def test_it_offers_curators_every_action_but_erase(curator_client, superuser_client) -> None:
    SubscriberFactory()

    curator_page = curator_client.get(console(CHANGELIST)).content.decode()
    superuser_page = superuser_client.get(console(CHANGELIST)).content.decode()

    for action in ("pause", "resume", "resend_confirmation", "suppress", "export_csv"):
        assert f'value="{action}"' in curator_page
    assert 'value="erase"' not in curator_page
    assert 'value="erase"' in superuser_page
    assert 'value="delete_selected"' not in superuser_page  # deleting would skip the suppression


def test_it_refuses_subscriber_actions_without_the_role(client, django_user_model, run_action) -> None:
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(staff)
    subscriber = SubscriberFactory()

    assert run_action(client, CHANGELIST, "pause", [subscriber.pk]).status_code == 403
    assert Subscriber.objects.get().status == "active"


def test_it_links_a_subscriber_to_all_their_deliveries(curator_client) -> None:
    subscriber = SubscriberFactory(email="ann@example.org")
    DeliveryFactory(subscriber=subscriber, error="their error")
    DeliveryFactory(subscriber__email="bob@example.org", error="someone else's error")

    response = curator_client.get(console("digest/delivery/"), {"subscriber__exact": subscriber.pk})

    assert response.status_code == 200
    assert "their error" in response.content.decode()
    assert "someone else" not in response.content.decode()


def test_it_defuses_spreadsheet_formulas_in_the_csv_export(curator_client, run_action) -> None:
    """OWASP's rule: a cell starting with = + - @ tab or CR gets a leading ' so a spreadsheet
    shows it as text instead of running it; other cells are left as they are."""
    hostile = [
        '=HYPERLINK("http://evil.example";"click")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(A1)",
        "\tlead",
        "\rlead",
    ]
    subscriber = SubscriberFactory(email="ada@example.org", topics=hostile, authors=["Ada Lovelace"])

    response = run_action(curator_client, CHANGELIST, "export_csv", [subscriber.pk])

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    assert rows[0]["topics"] == "'" + "; ".join(hostile)
    assert rows[0]["authors"] == "Ada Lovelace"
    assert rows[0]["email"] == "ada@example.org"
    assert rows[0]["time_zone"] == "Europe/Berlin"
    for column in rows[0].values():
        assert not column.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_it_stores_an_address_edited_in_the_console_in_its_normalized_spelling(superuser_client) -> None:
    """A superuser's edit goes through the same normalization as a signup: a look-alike
    spelling of another subscriber's address is refused, a new one is stored in ASCII."""
    SubscriberFactory(email="cap@example.org")
    subscriber = SubscriberFactory(email="old@example.org")

    def edit(email: str):
        data = {
            "email": email,
            "status": "active",
            "topics": '["agents"]',
            "excludes": "[]",
            "authors": "[]",
            "organizations": "[]",
            "frequency": "daily",
            "send_hour": "7",
            "time_zone": "Europe/Berlin",
            "max_papers": "10",
            "weights": "{}",
            "consents-TOTAL_FORMS": "0",
            "consents-INITIAL_FORMS": "0",
        }
        return superuser_client.post(console(f"{CHANGELIST}{subscriber.pk}/change/"), data)

    refused = edit("CAP@\uff45xample.org")
    assert refused.status_code == 200
    assert "Subscriber with this Email already exists." in refused.content.decode()
    assert edit("new@M\u00fcnchen.de").status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.email == "new@xn--mnchen-3ya.de"


def test_it_finds_a_subscriber_by_a_look_alike_spelling_of_their_address(curator_client) -> None:
    SubscriberFactory(email="cap@example.org")
    html = curator_client.get(console(CHANGELIST), {"q": "CAP@\uff45xample.org"}).content.decode()
    assert ">cap@example.org<" in html
