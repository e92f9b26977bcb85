"""The client's address: the socket's peer, or behind a trusted proxy the right-most untrusted X-Forwarded-For hop."""

from collections.abc import Callable
from ipaddress import ip_network

import pytest
from django.test import Client, RequestFactory

from digest.http import client_ip
from digest.models import ConsentRecord, Subscriber
from tests.factories import signup_data

pytestmark = pytest.mark.django_db


def trust(settings, *ranges: str) -> None:
    settings.TRUSTED_PROXIES = [ip_network(r) for r in ranges]


def address(peer: str, forwarded: str | None = None) -> str | None:
    headers = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=peer, **headers))


def test_it_uses_the_socket_address_when_no_proxy_is_trusted(settings) -> None:
    """The default trusts nobody: a client's own X-Forwarded-For changes nothing."""
    assert settings.TRUSTED_PROXIES == []
    assert address("198.51.100.7", "203.0.113.1") == "198.51.100.7"


def test_it_takes_the_right_most_untrusted_forwarded_address(settings) -> None:
    """Hops are read from the right; whatever the client wrote to the left of its own address is ignored."""
    trust(settings, "127.0.0.1/32", "10.0.0.0/8")

    assert address("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.1.2.3") == "203.0.113.7"
    assert address("127.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert address("10.9.9.9", " 2001:db8::1 ,10.0.0.1") == "2001:db8::1"


def test_it_ignores_forwarded_for_from_a_peer_it_does_not_trust(settings) -> None:
    trust(settings, "10.0.0.0/8")

    assert address("198.51.100.7", "203.0.113.1") == "198.51.100.7"


def test_it_falls_back_to_the_nearest_trusted_hop_when_the_header_is_empty_or_garbled(settings) -> None:
    """A trusted proxy without the header, or a hop that is no address: the last address known to be true."""
    trust(settings, "127.0.0.1/32", "10.0.0.0/8")

    assert address("127.0.0.1") == "127.0.0.1"
    assert address("127.0.0.1", "") == "127.0.0.1"
    assert address("127.0.0.1", "203.0.113.7, not-an-address, 10.0.0.5") == "10.0.0.5"
    assert address("127.0.0.1", "10.0.0.3, 10.0.0.5") == "10.0.0.3"


def test_it_answers_none_for_a_socket_address_that_is_not_an_ip(settings) -> None:
    assert address("") is None


def test_it_records_and_limits_signups_per_forwarded_client(
    client: Client, settings, django_capture_on_commit_callbacks: Callable
) -> None:
    """Behind the proxy each visitor has a limit and a consent record of their own, not the proxy's."""
    trust(settings, "127.0.0.1/32")
    settings.SIGNUP_PER_IP_PER_HOUR = 1

    def signup(email: str, forwarded: str) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/", signup_data(email=email), HTTP_X_FORWARDED_FOR=forwarded).status_code

    assert signup("a@example.org", "203.0.113.7") == 302
    assert signup("b@example.org", "198.51.100.9") == 302
    assert signup("c@example.org", "203.0.113.7") == 429
    assert signup("d@example.org", "192.0.2.1, 203.0.113.7") == 429  # a forged hop does not help

    assert set(Subscriber.objects.values_list("email", flat=True)) == {"a@example.org", "b@example.org"}
    assert set(ConsentRecord.objects.values_list("subscriber__email", "ip")) == {
        ("a@example.org", "203.0.113.7"),
        ("b@example.org", "198.51.100.9"),
    }


def test_it_limits_previews_per_forwarded_client(client: Client, settings) -> None:
    trust(settings, "127.0.0.1/32")
    settings.PREVIEW_PER_IP_PER_MINUTE = 1

    def preview(forwarded: str) -> int:
        return client.get("/preview", {"topics": "x"}, HTTP_X_FORWARDED_FOR=forwarded).status_code

    assert [preview("203.0.113.7"), preview("198.51.100.9"), preview("203.0.113.7")] == [200, 200, 429]
