"""Phrase fields (topics, excludes, authors, organizations) take visible, valid text only:
invalid UTF-8 and invisible format characters (Unicode category Cf) get a field error on
the signup form, the preferences page and the live preview."""

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client

from digest import tokens
from digest.models import Subscriber
from tests.factories import SubscriberFactory, signup_data

pytestmark = pytest.mark.django_db

PHRASE_FIELDS = ["topics", "excludes", "authors", "organizations"]
# A right-to-left override, a zero-width space, a zero-width joiner, a byte order mark.
FORMAT_CHARACTERS = ["\u202e", "\u200b", "\u200d", "\ufeff"]


def form_body(data: dict[str, str], **raw: str) -> str:
    """A urlencoded body with some fields given as already percent-encoded bytes."""
    return "&".join([urlencode({k: v for k, v in data.items() if k not in raw}), *(f"{k}={v}" for k, v in raw.items())])


@pytest.mark.parametrize("field", PHRASE_FIELDS)
@pytest.mark.parametrize("character", FORMAT_CHARACTERS)
def test_it_refuses_format_characters_in_phrases_at_signup(signup: Callable, field: str, character: str) -> None:
    response = signup(**{field: f"diffusion, agents{character}rl"})
    assert response.status_code == 400
    page = response.content.decode()
    assert f"Invisible formatting characters (here U+{ord(character):04X}) are not allowed" in page
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("field", PHRASE_FIELDS)
def test_it_refuses_invalid_utf8_in_phrases_at_signup(client: Client, field: str) -> None:
    """Django decodes a stray byte as U+FFFD; it was stored like that."""
    body = form_body(signup_data(), **{field: "agents%FF%FEdiffusion"})
    response = client.post("/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "is not valid UTF-8 text" in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("field", PHRASE_FIELDS)
def test_it_refuses_bad_text_in_phrases_on_the_preferences_page(client: Client, field: str) -> None:
    subscriber = SubscriberFactory(topics=["agents"])
    path = urlsplit(tokens.manage_url(subscriber)).path
    data = signup_data()
    for name in ("email", "website", "action"):
        data.pop(name)
    refused = client.post(path, {**data, field: "agents\u202erl"})
    assert refused.status_code == 400
    assert "Invisible formatting characters (here U+202E)" in refused.content.decode()
    invalid = client.post(
        path, form_body(data, **{field: "agents%C3"}), content_type="application/x-www-form-urlencoded"
    )
    assert invalid.status_code == 400
    assert "is not valid UTF-8 text" in invalid.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.topics == ["agents"]


@pytest.mark.parametrize("field", PHRASE_FIELDS)
def test_it_answers_the_preview_of_bad_text_with_a_field_error(client: Client, field: str) -> None:
    response = client.get(f"/preview?topics=agents&{field}=diffusion%E2%80%AE")
    assert response.status_code == 400
    page = response.content.decode()
    assert "Invisible formatting characters (here U+202E)" in page
    invalid = client.get(f"/preview?topics=agents&{field}=diffusion%FF")
    assert invalid.status_code == 400
    assert "is not valid UTF-8 text" in invalid.content.decode()


def test_it_still_accepts_visible_non_ascii_phrases(signup: Callable) -> None:
    signup(topics="Gaußsche Prozesse, 扩散模型", authors="Zoë Ó Briain")
    subscriber = Subscriber.objects.get()
    assert subscriber.topics == ["Gaußsche Prozesse", "扩散模型"]
    assert subscriber.authors == ["Zoë Ó Briain"]


def test_it_answers_the_no_javascript_preview_of_bad_text_with_a_field_error(signup: Callable) -> None:
    response = signup(action="preview", topics="agents\u200b")
    assert response.status_code == 400
    assert "Invisible formatting characters (here U+200B)" in response.content.decode()


def raw_body(data: dict[str, str], **raw: bytes) -> bytes:
    """A urlencoded body with some fields' bytes written into it as they are, not %-encoded
    (as a misconfigured client or a Latin-1 page sends them)."""
    return b"&".join(
        [
            urlencode({k: v for k, v in data.items() if k not in raw}).encode(),
            *(k.encode() + b"=" + v for k, v in raw.items()),
        ]
    )


@pytest.mark.parametrize("field", [*PHRASE_FIELDS, "email"])
def test_it_refuses_a_raw_body_that_is_not_utf8_at_signup(client: Client, field: str) -> None:
    """Django read such a body as Latin-1: "video genÿþeration" was stored as a topic."""
    value = b"video gen\xff\xfeeration" if field != "email" else b"z\xf6e@example.org"
    body = raw_body(signup_data(authors="Zoë Ó Briain"), **{field: value})
    response = client.post("/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "is not valid UTF-8 text" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_it_refuses_a_raw_body_that_is_not_utf8_even_outside_the_fields(client: Client) -> None:
    body = raw_body(signup_data(authors="Zoë Ó Briain"), note=b"\xe9t\xe9")
    response = client.post("/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "is not valid UTF-8 text" in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("field", PHRASE_FIELDS)
def test_it_refuses_a_raw_body_that_is_not_utf8_on_the_preferences_page(client: Client, field: str) -> None:
    subscriber = SubscriberFactory(topics=["agents"], authors=[])
    path = urlsplit(tokens.manage_url(subscriber)).path
    data = signup_data(authors="Zoë Ó Briain")
    for name in ("email", "website", "action"):
        data.pop(name)
    response = client.post(
        path, raw_body(data, **{field: b"video gen\xff\xfeeration"}), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert "is not valid UTF-8 text" in response.content.decode()
    subscriber.refresh_from_db()
    assert (subscriber.topics, subscriber.authors) == (["agents"], [])


# Noncharacters (U+FFFF, U+FDD0, U+1FFFE), private use (U+E000, U+F8FF, U+100000) and an
# unassigned code point (U+0378) stand for no text; a reason carrying U+FFFF broke the feed.
NOT_TEXT = ["\uffff", "\ufdd0", "\U0001fffe", "\ue000", "\uf8ff", "\U00100000", "\u0378"]


@pytest.mark.parametrize("field", PHRASE_FIELDS)
@pytest.mark.parametrize("character", NOT_TEXT)
def test_it_refuses_code_points_that_are_no_text_in_phrases_at_signup(
    signup: Callable, field: str, character: str
) -> None:
    response = signup(**{field: f"diffusion, video gen{character}eration"})
    assert response.status_code == 400
    assert f"U+{ord(character):04X} is not a character any text uses" in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("field", PHRASE_FIELDS)
def test_it_refuses_code_points_that_are_no_text_on_the_preferences_page_and_in_the_preview(
    client: Client, field: str
) -> None:
    subscriber = SubscriberFactory(topics=["agents"])
    path = urlsplit(tokens.manage_url(subscriber)).path
    data = signup_data()
    for name in ("email", "website", "action"):
        data.pop(name)
    refused = client.post(path, {**data, field: "agents\uffff"})
    assert refused.status_code == 400
    assert "U+FFFF is not a character any text uses" in refused.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.topics == ["agents"]
    preview = client.get(f"/preview?topics=agents&{field}=diffusion%EF%BF%BF")
    assert preview.status_code == 400
    assert "U+FFFF is not a character any text uses" in preview.content.decode()
