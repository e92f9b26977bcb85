"""Transactional emails: three templates, CSS inlined, a plain-text part, the right headers."""

import email
import re

import pytest
from django.core import mail

from digest import services, tokens
from digest.mail import make_message
from tests.factories import ConsentRecordFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

CONFIRMATION_TEXT = """\
Hello,

Someone, probably you, asked to receive Paper Digest at this address.
To confirm, open this link (it works for 7 days):

{url}

If it was not you, ignore this email: you will get nothing more from us.

--
Paper Digest, http://127.0.0.1:8000
"""


def html_of(message: mail.EmailMultiAlternatives) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def test_it_renders_the_confirmation_as_golden_text_and_inlined_html() -> None:
    """The plain-text body is exactly as written; the HTML carries the same link with inline CSS."""
    consent = ConsentRecordFactory()
    assert services.confirmation_send(subscriber_id=consent.subscriber_id)
    [message] = mail.outbox
    url = re.search(r"http://\S+/confirm/\S+", message.body).group(0)
    assert message.body == CONFIRMATION_TEXT.format(url=url)
    assert tokens.read_token(url.rsplit("/", 1)[1], "confirm")[1] == {"c": consent.pk}
    html = html_of(message)
    assert f'href="{url}"' in html
    assert "<style" not in html  # premailer moved every rule inline
    button = re.search(r'<a class="button" href="[^"]+" style="([^"]+)"', html).group(1)
    # strip_important=False: the white button text survives clients that recolour links.
    assert "color:#fff !important" in button
    assert "background:#0b5cad" in button


def test_it_sends_the_confirmation_once_however_often_it_is_asked() -> None:
    """The task and the sweep race for the same row; only one wins."""
    consent = ConsentRecordFactory()
    assert services.confirmation_send(subscriber_id=consent.subscriber_id)
    assert not services.confirmation_send(subscriber_id=consent.subscriber_id)
    assert services.confirmations_sweep() == 0
    assert len(mail.outbox) == 1


def test_it_puts_list_unsubscribe_headers_on_the_manage_email() -> None:
    """The manage-subscription email carries RFC 8058 headers and a visible unsubscribe link."""
    subscriber = SubscriberFactory()
    assert services.manage_link_send(subscriber_id=subscriber.pk)
    [message] = mail.outbox
    parsed = email.message_from_bytes(message.message().as_bytes())
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert " ".join(parsed["List-Unsubscribe"].split()) == tokens.list_unsubscribe(subscriber)["List-Unsubscribe"]
    assert "/unsubscribe/" in message.body
    assert ">Unsubscribe</a>" in html_of(message)
    assert parsed["From"] == "Paper Digest <hello@127.0.0.1>"


def test_it_builds_any_message_from_three_templates() -> None:
    """make_message is the one way to build an email: subject on one line, text and HTML parts."""
    subscriber = SubscriberFactory()
    message = make_message(
        "manage",
        {"subscriber": subscriber, "manage_url": "https://x/m", "unsubscribe_url": "https://x/u"},
        to=[subscriber.email],
        from_email="A <a@example.org>",
        headers={"X-Test": "1"},
    )
    assert message.subject == "Your Paper Digest subscription"
    assert "https://x/m" in message.body
    assert "https://x/m" in html_of(message)
    assert message.extra_headers == {"X-Test": "1"}


def test_it_escapes_what_subscribers_typed_in_the_html() -> None:
    """An address is user input: the HTML escapes it."""
    subscriber = SubscriberFactory(email="a<b>@example.org")
    services.manage_link_send(subscriber_id=subscriber.pk)
    assert "a&lt;b&gt;@example.org" in html_of(mail.outbox[0])
