"""Hypothesis fuzzing of the signup form: never a 500, never a row stored from invalid input."""

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.forms import SignupForm
from digest.models import ConsentRecord, Subscriber
from tests.factories import signup_data

pytestmark = pytest.mark.django_db

FIELDS = ["email", "topics", "excludes", "authors", "organizations", "frequency", "send_hour", "time_zone",
          "max_papers", "website"]  # fmt: skip

hostile_text = st.one_of(
    st.text(max_size=300),  # any unicode, control characters included
    st.text(alphabet=st.sampled_from(["a", " ", ",", "\r", "\n", ":", "@", "é", "\x00", "\u2028"]), max_size=200),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=3), st.integers(1000, 20_000)),  # huge
    st.sampled_from(["ada@example.org\r\nBcc: victim@example.org", "Europe/Berlin\n", "10\r\n", "daily\n"]),
)


def reset() -> None:
    # Hypothesis runs many examples inside one test (and one transaction).
    Subscriber.objects.all().delete()
    cache.clear()
    mail.outbox.clear()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=st.dictionaries(st.sampled_from(FIELDS), hostile_text, min_size=1, max_size=4))
def test_it_never_fails_and_never_stores_invalid_input(overrides: dict[str, str]) -> None:
    """Any mix of hostile field values answers 302 (accepted) or 400 (refused), never 500,
    and a refused submission leaves no subscriber, consent or email behind."""
    reset()
    data = signup_data(**overrides)
    valid = SignupForm(data).is_valid() and not data["website"]
    response = Client(raise_request_exception=False).post("/", data)
    assert response.status_code in (302, 400), response.status_code
    if valid:
        assert response.status_code == 302
    elif response.status_code == 400 or data["website"]:
        assert not Subscriber.objects.exists()
        assert not ConsentRecord.objects.exists()
        assert mail.outbox == []


@settings(max_examples=30, deadline=None)
@given(
    body=st.binary(max_size=2000),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/json",
        ]
    ),
    path=st.sampled_from(["/", "/preview", "/unsubscribe/abc", "/confirm/abc", "/manage/abc"]),
)
def test_it_never_fails_on_raw_garbage_bodies(body: bytes, content_type: str, path: str) -> None:
    """Undecodable bytes and broken multipart bodies get a 4xx at worst."""
    reset()
    response = Client(raise_request_exception=False).generic("POST", path, body, content_type=content_type)
    assert response.status_code < 500
    assert not Subscriber.objects.exists()


def test_it_answers_400_to_a_body_over_the_upload_limit() -> None:
    """Megabytes of form data are refused by Django before any field is looked at."""
    response = Client(raise_request_exception=False).post("/", signup_data(topics="a," * 2_000_000))
    assert response.status_code == 400
    assert not Subscriber.objects.exists()
