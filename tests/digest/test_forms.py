"""The signup form's rules: limits, header injection, time zones, clear errors."""

import pytest

from digest.forms import MAX_PHRASES, SignupForm, split_phrases
from tests.factories import signup_data


def errors_of(**overrides: str) -> dict[str, list[str]]:
    form = SignupForm(signup_data(**overrides))
    form.is_valid()
    return form.errors


def test_it_accepts_a_complete_signup() -> None:
    """The happy path cleans into Subscriber fields."""
    form = SignupForm(signup_data(email="Ada@Example.ORG ", topics=" LLM agents ,  rl "))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["email"] == "ada@example.org"
    assert form.preferences()["topics"] == ["LLM agents", "rl"]
    assert form.preferences()["send_hour"] == 7


@pytest.mark.parametrize("field", ["email", "topics", "excludes", "authors", "organizations", "time_zone"])
@pytest.mark.parametrize("breaker", ["\r", "\n", "\r\n", "\x00", "\u2028", "\x85"])
def test_it_refuses_line_breaks_and_control_characters_in_every_text_field(field: str, breaker: str) -> None:
    """Header injection is impossible: CR, LF and friends are refused, not stripped."""
    value = {"email": "ada@example.org", "time_zone": "Europe/Berlin"}.get(field, "agents")
    for candidate in (value + breaker + "Bcc: victim@example.org", value + breaker, breaker + value):
        assert "Line breaks and control characters are not allowed here." in errors_of(**{field: candidate})[field]


def test_it_allows_at_most_twenty_topics() -> None:
    """Counts are limited with a message that says how many were given."""
    many = ", ".join(f"topic {n}" for n in range(MAX_PHRASES + 1))
    assert errors_of(topics=many)["topics"] == ["At most 20 topics, please (you gave 21)."]
    assert not errors_of(topics=", ".join(f"topic {n}" for n in range(MAX_PHRASES)))


def test_it_limits_each_phrase_to_a_hundred_characters() -> None:
    """A phrase over 100 characters is refused and named."""
    [error] = errors_of(authors="x" * 101)["authors"]
    assert error.startswith("Each author can be at most 100 characters")
    assert not errors_of(authors="x" * 100)


def test_it_refuses_a_huge_submission_before_splitting_it() -> None:
    """Megabytes of commas cost nothing and get a length error."""
    assert "Ensure this value has at most" in errors_of(topics="," * 1_000_000)["topics"][0]


def test_it_needs_something_to_follow() -> None:
    """No topics, authors or organizations: nothing to send, so say what to add."""
    assert errors_of(topics=" , ")["topics"] == ["Add at least one topic, or an author or organization to follow."]
    assert not errors_of(topics="", authors="Ada Lovelace")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "posixrules", "localtime", "utc "])
def test_it_accepts_only_iana_time_zones(zone: str) -> None:
    """A zone must be a real IANA name; paths and odd tzdata files are refused."""
    assert "time_zone" in errors_of(time_zone=zone)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Asia/Kolkata"])
def test_it_accepts_real_time_zones(zone: str) -> None:
    assert not errors_of(time_zone=zone)


@pytest.mark.parametrize(("value", "ok"), [("2", False), ("3", True), ("30", True), ("31", False), ("x", False)])
def test_it_keeps_papers_per_email_between_three_and_thirty(value: str, ok: bool) -> None:
    assert ("max_papers" not in errors_of(max_papers=value)) is ok


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("23", True), ("24", False), ("-1", False)])
def test_it_offers_send_hours_zero_to_twenty_three(value: str, ok: bool) -> None:
    assert ("send_hour" not in errors_of(send_hour=value)) is ok


def test_it_refuses_an_unknown_frequency() -> None:
    assert "frequency" in errors_of(frequency="hourly")


def test_it_splits_phrases_and_drops_repeats() -> None:
    """Case-insensitive repeats keep their first spelling; blank parts vanish."""
    assert split_phrases("Diffusion, diffusion,, RL ,  multi   agent ") == ["Diffusion", "RL", "multi agent"]


def test_it_treats_every_unicode_control_character_as_a_line_break() -> None:
    """The fast pattern agrees with Unicode's own category table."""
    import sys
    import unicodedata

    from digest.forms import has_control_characters

    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        expected = unicodedata.category(ch) in ("Cc", "Zl", "Zp")
        assert has_control_characters(ch) is expected, hex(code)
