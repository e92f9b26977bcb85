"""The unsubscribe page grants no account access: it holds no manage token, and offers
"resubscribe" or "change preferences" only by emailing a fresh manage link to the address,
within the address's three emails a day."""

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from digest import services, tokens
from digest.models import Subscriber
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def path_of(url: str) -> str:
    return urlsplit(url).path


def manage_token_in(page: str, subscriber: Subscriber) -> bool:
    """True if the page carries a working manage token of the subscriber, in any form."""
    for token in re.findall(r"[A-Za-z0-9_\-:]{40,}", page):
        try:
            tokens.read_token(token, "manage")
        except tokens.BadToken:
            continue
        return True
    return "/manage/" in page


def test_it_shows_no_manage_link_before_or_after_unsubscribing(client: Client) -> None:
    """A forwarded email's unsubscribe URL (or the mailto mailbox) must not open the account."""
    subscriber = SubscriberFactory()
    path = path_of(tokens.unsubscribe_url(subscriber))
    before = client.get(path).content.decode()
    after = client.post(path, {"List-Unsubscribe": "One-Click"}).content.decode()
    assert "Email me a link" in before and "Email me a link" in after
    assert not manage_token_in(before, subscriber)
    assert not manage_token_in(after, subscriber)


def test_it_mails_a_fresh_manage_link_to_the_address_on_request(
    client: Client, django_capture_on_commit_callbacks: Callable
) -> None:
    """After unsubscribing, the way back is a link sent to the mailbox, not one on the page."""
    subscriber = SubscriberFactory(email="ada@example.org")
    path = path_of(tokens.unsubscribe_url(subscriber))
    client.post(path, {"List-Unsubscribe": "One-Click"})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{path}/manage-link")
    assert response.status_code == 200
    page = response.content.decode()
    assert "sent to the address" in page
    assert not manage_token_in(page, subscriber)
    [message] = mail.outbox
    assert message.to == ["ada@example.org"]
    assert "You asked for a link" in message.body
    assert "resubscribe" in message.body
    manage = re.search(r"http://127\.0\.0\.1:8000(/manage/\S+)", message.body).group(1)
    assert client.get(manage).status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED  # asking for a link changes nothing


def test_it_counts_requested_manage_links_against_the_daily_cap(
    client: Client, django_capture_on_commit_callbacks: Callable
) -> None:
    subscriber = SubscriberFactory()
    path = path_of(tokens.unsubscribe_url(subscriber))
    answers = []
    for _ in range(services.MAILS_PER_ADDRESS_PER_DAY + 2):
        with django_capture_on_commit_callbacks(execute=True):
            answers.append(client.post(f"{path}/manage-link").content.decode())
    assert len(mail.outbox) == services.MAILS_PER_ADDRESS_PER_DAY
    assert "already had" in answers[-1]


def test_it_never_sends_a_manage_link_on_get(client: Client) -> None:
    subscriber = SubscriberFactory()
    response = client.get(path_of(tokens.unsubscribe_url(subscriber)) + "/manage-link")
    assert response.status_code == 405
    assert mail.outbox == []


@pytest.mark.parametrize("suffix", ["", "/data.json", "/delete"])
def test_it_refuses_an_unsubscribe_token_on_the_manage_data_and_delete_pages(client: Client, suffix: str) -> None:
    subscriber = SubscriberFactory()
    token = tokens.make_token(subscriber, "unsubscribe")
    assert client.get(f"/manage/{token}{suffix}").status_code == 400
    if suffix != "/data.json":  # GET only
        assert client.post(f"/manage/{token}{suffix}", {"action": "unsubscribe"}).status_code == 400
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()
