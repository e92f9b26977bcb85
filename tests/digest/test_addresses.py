"""One spelling per mailbox: look-alike domains are one address for storing, capping,
suppressing and comparing; over-long or unencodable addresses are refused."""

from collections.abc import Callable

import pytest
from django.core import mail

from digest import services
from digest.addresses import AddressError, checked_email, normalize_email
from digest.console import PreviewForm
from digest.models import Subscriber, Suppression, email_hash
from tests.factories import SubscriberFactory

# The spellings of the review: fullwidth letters, capitals, a soft hyphen, the ideographic
# full stop and a fullwidth full stop all reach the mailbox cap@example.org.
LOOK_ALIKES = [
    "cap@\uff45xample.org",
    "cap@EXAMPLE.ORG",
    "cap@exam\u00adple.org",
    "cap@example\u3002org",
    "cap@" + "".join(chr(ord(c) + 0xFEE0) for c in "example.org"),
]


@pytest.mark.parametrize("address", LOOK_ALIKES)
def test_it_normalizes_look_alike_domains_to_one_ascii_spelling(address: str) -> None:
    assert normalize_email(address) == "cap@example.org"
    assert email_hash(address) == email_hash("cap@example.org")


def test_it_turns_international_domains_into_their_ascii_form() -> None:
    assert normalize_email(" Ada@München.DE ") == "ada@xn--mnchen-3ya.de"
    assert normalize_email("ada@xn--mnchen-3ya.de") == "ada@xn--mnchen-3ya.de"
    assert normalize_email("ada@straße.de") == "ada@xn--strae-oqa.de"  # IDNA 2008, not 2003's "strasse"


def test_it_refuses_a_local_part_over_64_octets() -> None:
    checked_email("a" * 64 + "@example.org")
    with pytest.raises(AddressError, match="64"):
        checked_email("a" * 65 + "@example.org")


@pytest.mark.parametrize("address", ["cap@☃.net", "cap@example.org.", "cap@-example.org", "not-an-address"])
def test_it_refuses_an_address_whose_normalized_form_is_invalid(address: str) -> None:
    with pytest.raises(AddressError):
        checked_email(address)


@pytest.mark.django_db
def test_it_makes_look_alike_signups_one_subscriber_with_one_daily_cap(signup: Callable) -> None:
    """Five spellings were five subscribers, each with its own cap; now they are one
    subscriber, stored in ASCII, and the mailbox gets at most three emails a day."""
    for address in LOOK_ALIKES:
        assert signup(email=address).status_code == 302
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["cap@example.org"]
    assert len(mail.outbox) == services.MAILS_PER_ADDRESS_PER_DAY
    assert {m.to[0] for m in mail.outbox} == {"cap@example.org"}


@pytest.mark.django_db
def test_it_never_mails_a_suppressed_mailbox_under_another_spelling(signup: Callable) -> None:
    subscriber = SubscriberFactory(email="cap@example.org")
    services.subscriber_suppress(subscriber=subscriber)
    for address in LOOK_ALIKES:
        signup(email=address)
    assert mail.outbox == []
    assert Suppression.covers("cap@\uff45xample.org")


@pytest.mark.django_db
def test_it_answers_an_active_subscriber_under_another_spelling_with_a_manage_link(signup: Callable) -> None:
    SubscriberFactory(email="cap@example.org", topics=["agents"])
    signup(email="cap@\uff45xample.org", topics="cooking")
    assert Subscriber.objects.get().topics == ["agents"]
    [message] = mail.outbox
    assert message.subject == "Your Paper Digest subscription"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("a" * 65 + "@example.org", "at most 64"),
        ("cap@☃.net", "has no ASCII (IDNA) form"),
        ("cap@example.org.", "Enter a valid email address."),
    ],
)
def test_it_gives_a_field_error_for_an_address_it_refuses(signup: Callable, address: str, error: str) -> None:
    response = signup(email=address)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


@pytest.mark.django_db
def test_it_finds_a_subscriber_for_the_console_preview_under_any_spelling() -> None:
    subscriber = SubscriberFactory(email="cap@example.org")
    form = PreviewForm({"subscriber": " CAP@\uff45xample.org", "day": "2025-11-07"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["subscriber"] == subscriber


# Issue 18, item 3: RFC 5321 4.1.2 makes a quoted local part the same mailbox as its
# unquoted form when that form exists; Django's SMTP backend strips the quotes on the
# envelope, so these spellings reached sup@example.org while being stored as new people.
QUOTED_SPELLINGS = ['"sup"@example.org', '"s\\up"@example.org', '"\\s\\u\\p"@EXAMPLE.org', ' "SUP"@example.org']


@pytest.mark.parametrize("address", QUOTED_SPELLINGS)
def test_it_unquotes_a_quoted_local_part_that_is_the_same_mailbox(address: str) -> None:
    assert normalize_email(address) == "sup@example.org"
    assert checked_email(address) == "sup@example.org"
    assert email_hash(address) == email_hash("sup@example.org")


UNQUOTABLE = ['"a b"@example.org', '"a..b"@example.org', '"a@b"@example.org', '"a."@example.org']


@pytest.mark.parametrize("address", UNQUOTABLE)
def test_it_refuses_a_quoted_local_part_with_no_unquoted_form(address: str) -> None:
    with pytest.raises(AddressError, match="without them"):
        checked_email(address)


@pytest.mark.django_db
@pytest.mark.parametrize("reason", [Suppression.Reason.CURATOR, Suppression.Reason.COMPLAINT])
def test_it_never_mails_a_suppressed_mailbox_under_a_quoted_spelling(signup: Callable, reason: str) -> None:
    SubscriberFactory(email="sup@example.org", status=Subscriber.Status.UNSUBSCRIBED)
    Suppression.objects.create(email_hash=email_hash("sup@example.org"), reason=reason)
    for address in QUOTED_SPELLINGS:
        assert signup(email=address).status_code == 302
    assert mail.outbox == []
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["sup@example.org"]


@pytest.mark.django_db
def test_it_makes_quoted_signups_one_subscriber_with_one_daily_cap(signup: Callable) -> None:
    """`cap@example.org` got 4 rows and 4 confirmations in 3 s; now one row, and one
    live confirmation link per signup, within the address's daily cap."""
    for address in ["cap@example.org", '"cap"@example.org', '"c\\ap"@example.org', '"\\cap"@example.org']:
        assert signup(email=address).status_code == 302
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["cap@example.org"]
    assert len(mail.outbox) == services.MAILS_PER_ADDRESS_PER_DAY
    assert {m.to[0] for m in mail.outbox} == {"cap@example.org"}


@pytest.mark.django_db
def test_it_gives_a_field_error_for_a_quoted_address_it_cannot_unquote(signup: Callable) -> None:
    response = signup(email='"cap gun"@example.org')
    assert response.status_code == 400
    assert "without them" in response.content.decode()
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


# Issue 18, item 11: a domain needs a dot (and may not be a special-use name) unless a
# test install allows local domains.
LOCAL_ADDRESSES = ["a@localhost", "a@mail", "a@example.test", "a@printer.local", "a@relay.localhost"]


@pytest.mark.parametrize("address", LOCAL_ADDRESSES)
def test_it_refuses_a_local_domain_by_default(address: str) -> None:
    with pytest.raises(AddressError, match="Enter a valid email address"):
        checked_email(address)


@pytest.mark.parametrize("address", ["a@localhost", "a@mail", "a@example.test"])
def test_it_accepts_a_local_domain_when_the_setting_allows_it(settings, address: str) -> None:
    settings.ALLOW_LOCAL_EMAIL_DOMAINS = True
    assert checked_email(address) == address
    with pytest.raises(AddressError):
        checked_email('"a b"@localhost')


@pytest.mark.django_db
def test_it_gives_a_field_error_for_a_signup_at_localhost(signup: Callable) -> None:
    response = signup(email="a@localhost")
    assert response.status_code == 400
    assert "Enter a valid email address." in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
def test_it_answers_a_quoted_signup_of_an_active_subscriber_with_a_manage_link_not_a_confirmation(
    signup: Callable,
) -> None:
    SubscriberFactory(email="sup@example.org", topics=["agents"])
    signup(email='"s\\up"@example.org', topics="cooking")
    [subscriber] = Subscriber.objects.all()
    assert (subscriber.email, subscriber.topics) == ("sup@example.org", ["agents"])
    [message] = mail.outbox
    assert message.to == ["sup@example.org"]
    assert message.subject == "Your Paper Digest subscription"
