"""A repeat signup of a pending address cannot change what an earlier link confirms: each
confirmation link is bound to the signup (and its choices) it was sent for; the newest
link confirms the newest choices and an older one says it was replaced."""

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from digest import tokens
from digest.models import ConsentRecord, Subscriber

pytestmark = pytest.mark.django_db


def manage_path(subscriber: Subscriber) -> str:
    return urlsplit(tokens.manage_url(subscriber)).path


def confirm_link(message: mail.EmailMessage) -> str:
    match = re.search(r"http://127\.0\.0\.1:8000(/confirm/\S+)", message.body)
    assert match, message.body
    return match.group(1)


OWNER = {"topics": "agents", "frequency": "daily", "send_hour": "7", "time_zone": "Europe/Berlin"}
STRANGER = {"topics": "cooking", "frequency": "weekly", "send_hour": "3", "time_zone": "Pacific/Auckland"}


def test_it_does_not_let_a_repeat_signup_change_what_the_first_link_confirms(signup: Callable, client: Client) -> None:
    """The review's case: a second signup replaced the choices and the owner's first link
    then activated them. Now the first link confirms nothing and says why."""
    signup(**OWNER)
    first = confirm_link(mail.outbox[0])
    signup(**STRANGER)

    page = client.get(first)
    assert page.status_code == 200
    assert "replaced by a newer signup" in page.content.decode()
    assert "Confirm my subscription" not in page.content.decode()
    done = client.post(first)
    assert "replaced by a newer signup" in done.content.decode()

    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.PENDING
    assert not ConsentRecord.objects.filter(confirmed_at__isnull=False).exists()


def test_it_confirms_with_the_newest_link_exactly_the_choices_it_was_sent_for(signup: Callable, client: Client) -> None:
    signup(**STRANGER)
    signup(**OWNER)
    newest = confirm_link(mail.outbox[1])

    page = client.get(newest).content.decode()
    assert "agents" in page and "07:00" in page and "Europe/Berlin" in page and "Daily" in page
    assert "cooking" not in page
    client.post(newest)

    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert (subscriber.topics, subscriber.frequency, subscriber.send_hour, subscriber.time_zone) == (
        ["agents"],
        "daily",
        7,
        "Europe/Berlin",
    )
    confirmed = ConsentRecord.objects.get(confirmed_at__isnull=False)
    assert confirmed == ConsentRecord.objects.order_by("-created_at", "-pk").first()
    assert confirmed.preferences["topics"] == ["agents"]
    assert client.get(manage_path(subscriber) + "/data.json").json()["consents"][-1]["preferences"]["topics"] == [
        "agents"
    ]


def test_it_confirms_the_choices_of_the_signup_even_if_the_row_changed_since(signup: Callable, client: Client) -> None:
    """The link is bound to its signup's choices, not to whatever the row holds when it is used."""
    signup(**OWNER)
    link = confirm_link(mail.outbox[0])
    Subscriber.objects.update(topics=["something else"], send_hour=23)
    client.post(link)
    subscriber = Subscriber.objects.get()
    assert (subscriber.status, subscriber.topics, subscriber.send_hour) == ("active", ["agents"], 7)
