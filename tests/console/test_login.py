"""Console logins: a curator gets in; guessing passwords is cut short per IP and per username."""

from ipaddress import ip_network

import pytest

from tests.console.conftest import console

pytestmark = pytest.mark.django_db


def login(client, username: str, password: str, ip: str = "203.0.113.5"):
    return client.post(console("login/"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_it_lets_a_curator_log_in(client, curator) -> None:
    curator.set_password("correct horse battery")
    curator.save()

    response = login(client, curator.username, "correct horse battery")

    assert response.status_code == 302
    assert client.get(console()).status_code == 200


def test_it_limits_failed_logins_per_username(client, curator, settings) -> None:
    """Past the username's limit, every address that guessed wrong for it is refused."""
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    curator.set_password("correct horse battery")
    curator.save()

    for n in range(3):
        assert login(client, curator.username, "wrong", ip=f"203.0.113.{n}").status_code == 200
    for n in range(3):
        limited = login(client, curator.username, "correct horse battery", ip=f"203.0.113.{n}")

        assert limited.status_code == 429
        assert "Too many failed logins from here or for this user. Wait 15 minutes" in limited.content.decode()
        assert "_auth_user_id" not in client.session


def test_it_lets_a_curator_in_from_an_address_that_did_not_fail(client, curator, settings) -> None:
    """A stranger's wrong guesses lock the stranger out, not the curator at their own desk."""
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    curator.set_password("correct horse battery")
    curator.save()

    for _ in range(5):
        login(client, curator.username, "wrong", ip="203.0.113.66")

    assert login(client, curator.username, "correct horse battery", ip="203.0.113.66").status_code == 429
    assert login(client, curator.username, "correct horse battery", ip="198.51.100.1").status_code == 302


def test_it_allows_each_new_address_one_guess_while_a_username_is_locked(client, curator, settings) -> None:
    """Guessing from many addresses gets one try per address once the username's limit is reached."""
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    curator.set_password("correct horse battery")
    curator.save()
    for n in range(3):
        login(client, curator.username, "wrong", ip=f"203.0.113.{n}")

    assert login(client, curator.username, "wrong", ip="192.0.2.7").status_code == 200
    assert login(client, curator.username, "correct horse battery", ip="192.0.2.7").status_code == 429
    assert login(client, "someone-else", "wrong", ip="192.0.2.7").status_code == 200  # other usernames: per-IP limit


def test_it_limits_failed_logins_per_ip(client, curator, settings) -> None:
    settings.LOGIN_FAILURES_PER_IP = 2
    curator.set_password("correct horse battery")
    curator.save()

    login(client, "someone", "wrong")
    login(client, "someone-else", "wrong")

    assert login(client, curator.username, "correct horse battery").status_code == 429
    assert login(client, curator.username, "correct horse battery", ip="198.51.100.1").status_code == 302


def test_it_does_not_count_successful_logins(client, curator, settings) -> None:
    settings.LOGIN_FAILURES_PER_USERNAME = 1
    curator.set_password("correct horse battery")
    curator.save()

    for _ in range(3):
        assert login(client, curator.username, "correct horse battery").status_code == 302
        client.logout()


def test_it_counts_failed_logins_per_forwarded_client_behind_a_trusted_proxy(client, curator, settings) -> None:
    """Behind the TLS proxy every login comes from its address: the limit must fall on the visitor's."""
    settings.TRUSTED_PROXIES = [ip_network("127.0.0.1/32")]
    settings.LOGIN_FAILURES_PER_IP = 2
    curator.set_password("correct horse battery")
    curator.save()

    def forwarded(username: str, password: str, client_address: str):
        data = {"username": username, "password": password}
        return client.post(console("login/"), data, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=client_address)

    forwarded("someone", "wrong", "203.0.113.5")
    forwarded("someone-else", "wrong", "203.0.113.5")

    assert forwarded(curator.username, "correct horse battery", "203.0.113.5").status_code == 429
    assert forwarded(curator.username, "correct horse battery", "198.51.100.1").status_code == 302
