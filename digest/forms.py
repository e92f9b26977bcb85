"""The signup and preferences forms.

Every text field is single-line: a CR, LF or any other control character is refused
(not silently stripped), so nothing a person types can reach an email header. Lists of
phrases are typed comma-separated and come out as clean lists within fixed limits.
"""

import re
import unicodedata
from collections.abc import Collection, Sequence
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from digest.addresses import AddressError, checked_email, normalize_email
from digest.liked import MAX_LIKED_PAPERS, limit_message
from digest.models import Subscriber
from papers.ids import parse_arxiv_ids

# Bumped whenever the wording a person consents to changes; kept in each ConsentRecord.
FORM_VERSION = "signup-2026-11"

MAX_PHRASES = 20
MAX_PHRASE_LENGTH = 100
MIN_PAPERS, MAX_PAPERS, DEFAULT_PAPERS = 3, 30, 10
# Room for MAX_PHRASES phrases of MAX_PHRASE_LENGTH plus separators; anything longer is refused
# before it is split, so a huge submission costs nothing.
MAX_LIST_INPUT = MAX_PHRASES * (MAX_PHRASE_LENGTH + 2)

LINE_BREAK_ERROR = "Line breaks and control characters are not allowed here."
UNREADABLE_TEXT = "This is not valid UTF-8 text (some bytes could not be read); please type it again."


# Unicode's control characters (category Cc: CR, LF, NUL, U+0085 ...) plus U+2028/U+2029,
# which some mail and JSON tools also treat as line breaks.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control_characters(value: str) -> bool:
    return CONTROL_CHARACTERS.search(value) is not None


def phrase_text_problem(value: str) -> str | None:
    """Why ``value`` is not plain visible text for a phrase, or None.

    Django decodes bytes that are not UTF-8 as U+FFFD, so that character is how invalid
    UTF-8 shows here. Format characters (category Cf: bidi overrides, zero-width spaces
    and joiners, byte order marks) are invisible and can make one topic look like
    another in the console. Noncharacters, private-use and unassigned code points
    (Cn, Co; Cs for lone surrogates) stand for no text at all.
    """
    if "\ufffd" in value:
        return UNREADABLE_TEXT
    if value.isprintable():  # the usual case, in C; Cf characters are not printable
        return None
    for character in value:
        category = unicodedata.category(character)
        if category == "Cf":
            return f"Invisible formatting characters (here U+{ord(character):04X}) are not allowed; please retype it."
        if category in ("Cn", "Co", "Cs"):
            # Unassigned code points (noncharacters such as U+FFFF among them), private use
            # and lone surrogates: no text means anything by them, and some break XML.
            return (
                f"U+{ord(character):04X} is not a character any text uses (unassigned or private use);"
                " please retype it."
            )
    return None


@cache
def time_zones() -> frozenset[str]:
    """IANA zone names a person may pick (no 'posixrules', 'localtime' and the like)."""
    return frozenset(z for z in available_timezones() if "/" in z or z == "UTC")


@cache
def time_zone_options() -> SafeString:
    """The <option>s of the time-zone datalist, built once: as ~600 template loop passes they
    were most of the signup page's rendering time (see tests/bench/loadtest.py)."""
    return format_html_join("", '<option value="{}">', ((zone,) for zone in sorted(time_zones())))


def split_phrases(value: str) -> list[str]:
    """'a, b,,  c ' -> ['a', 'b', 'c'], keeping the first spelling of repeated phrases."""
    seen: set[str] = set()
    phrases = []
    for part in value.split(","):
        phrase = " ".join(part.split())
        if phrase and phrase.casefold() not in seen:
            seen.add(phrase.casefold())
            phrases.append(phrase)
    return phrases


class SingleLineField(forms.CharField):
    """A CharField that refuses control characters instead of stripping them away."""

    def to_python(self, value: Any) -> str:
        if isinstance(value, str) and has_control_characters(value):
            raise ValidationError(LINE_BREAK_ERROR, code="control_characters")
        return super().to_python(value)


class SingleLineEmailField(forms.EmailField):
    """An address in its normalized spelling (digest/addresses.py), refused when that
    spelling cannot be mailed."""

    # checked_email runs Django's validator on the normalized spelling; running it on
    # the typed one too would report the same mistake twice.
    default_validators: list[Any] = []

    def to_python(self, value: Any) -> str:
        if isinstance(value, str) and has_control_characters(value):
            raise ValidationError(LINE_BREAK_ERROR, code="control_characters")
        return normalize_email(super().to_python(value))

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value:
            try:
                checked_email(value)
            except AddressError as exc:
                raise ValidationError(str(exc), code="invalid") from None


class PhraseListField(SingleLineField):
    """Comma-separated phrases -> a list of at most MAX_PHRASES phrases."""

    def __init__(self, *, noun: str = "phrase", **kwargs: Any) -> None:
        self.noun = noun
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_LIST_INPUT)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        # An over-long value is refused by max_length without being read through.
        fits = isinstance(value, str) and len(value) <= (self.max_length or MAX_LIST_INPUT)
        problem = phrase_text_problem(value) if fits else None
        if problem:
            raise ValidationError(problem, code="bad_text")
        return super().to_python(value)

    def clean(self, value: Any) -> list[str]:
        text = super().clean(value)
        phrases = split_phrases(text)
        if len(phrases) > MAX_PHRASES:
            raise ValidationError(
                f"At most {MAX_PHRASES} {self.noun}s, please (you gave {len(phrases)}).", code="too_many"
            )
        long = [p for p in phrases if len(p) > MAX_PHRASE_LENGTH]
        if long:
            raise ValidationError(
                f"Each {self.noun} can be at most {MAX_PHRASE_LENGTH} characters; “{long[0][:30]}…” is {len(long[0])}.",
                code="too_long",
            )
        return phrases

    def prepare_value(self, value: Any) -> Any:
        # Initial values from a Subscriber are lists; show them as the person typed them.
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value


# A thousand links of ~50 characters and their separators; anything longer is refused unread.
MAX_SEED_INPUT = MAX_LIKED_PAPERS * 60
# How many unreadable pieces a field error names.
BAD_IDS_SHOWN = 5


def bad_ids_error(bad: Sequence[str]) -> str:
    shown = ", ".join(f"“{piece[:40]}{'…' if len(piece) > 40 else ''}”" for piece in bad[:BAD_IDS_SHOWN])
    more = f" and {len(bad) - BAD_IDS_SHOWN} more" if len(bad) > BAD_IDS_SHOWN else ""
    return (
        f"Not an arXiv id: {shown}{more}. Give ids such as 2511.04570, or arxiv.org, huggingface.co/papers"
        " or doi.org/10.48550 links."
    )


class ArxivIdListField(forms.CharField):
    """arXiv ids and links, one per line or separated by commas or spaces -> a list of ids
    (papers/ids.py reads every spelling); a piece that is none is named in the error."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_SEED_INPUT)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        fits = isinstance(value, str) and len(value) <= (self.max_length or MAX_SEED_INPUT)
        if fits and "\ufffd" in value:
            raise ValidationError(phrase_text_problem(value) or "", code="bad_text")
        return super().to_python(value)

    def clean(self, value: Any) -> list[str]:
        parsed = parse_arxiv_ids(super().clean(value))
        if parsed.bad:
            raise ValidationError(bad_ids_error(parsed.bad), code="bad_id")
        return list(parsed.ids)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        return value


HOUR_CHOICES = [(h, f"{h:02d}:00") for h in range(24)]


class PreferencesForm(forms.Form):
    """Everything a subscriber chooses; the signup form adds the address and a honeypot."""

    topics = PhraseListField(
        noun="topic",
        label="Topics",
        help_text="Phrases such as “speculative decoding, diffusion”, separated by commas.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "data-preview": "1"}),
    )
    seed_papers = ArxivIdListField(
        label="Papers you like",
        help_text=(
            "Optional: arXiv ids or links (arxiv.org, huggingface.co/papers, doi.org), one per line."
            " Your digest then brings papers like them, and never these ones again."
        ),
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false", "data-preview": "1"}),
    )
    excludes = PhraseListField(
        noun="phrase",
        label="Leave out papers about",
        help_text="Optional, separated by commas.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "data-preview": "1"}),
    )
    authors = PhraseListField(
        noun="author",
        label="Authors to follow",
        help_text="Optional: full names as on the paper, separated by commas.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "data-preview": "1"}),
    )
    organizations = PhraseListField(
        noun="organization",
        label="Organizations to follow",
        help_text="Optional, e.g. “NVIDIA, Meta”.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "data-preview": "1"}),
    )
    frequency = forms.ChoiceField(
        label="How often",
        choices=Subscriber.Frequency.choices,
        initial=Subscriber.Frequency.DAILY,
        widget=forms.RadioSelect,
    )
    send_hour = forms.TypedChoiceField(label="Send at", choices=HOUR_CHOICES, coerce=int, initial=7, empty_value=None)
    time_zone = SingleLineField(
        label="Time zone",
        max_length=64,
        initial="UTC",
        help_text="An IANA name such as Europe/Berlin; filled in from your browser.",
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off", "spellcheck": "false"}),
    )
    max_papers = forms.IntegerField(
        label="Papers per email",
        min_value=MIN_PAPERS,
        max_value=MAX_PAPERS,
        initial=DEFAULT_PAPERS,
        help_text=f"{MIN_PAPERS} to {MAX_PAPERS}.",
        widget=forms.NumberInput(attrs={"data-preview": "1"}),
    )

    # Optional in the POST (older forms and scripts leave them out): absent means the default.
    quiet_day = forms.ChoiceField(
        label="On a day with nothing for you",
        choices=Subscriber.QuietDay.choices,
        initial=Subscriber.QuietDay.NOTHING,
        required=False,
        widget=forms.RadioSelect,
    )
    channel = forms.ChoiceField(
        label="Deliver by",
        choices=Subscriber.Channel.choices,
        initial=Subscriber.Channel.EMAIL,
        required=False,
        widget=forms.RadioSelect,
        help_text="The feed link is on your preferences page once you confirm your address.",
    )

    # Not a Subscriber field: the ids become LikedPaper rows (digest/liked.py).
    LIKED_FIELD = "seed_papers"

    def __init__(self, *args: Any, liked_ids: Collection[str] = (), **kwargs: Any) -> None:
        """``liked_ids``: the papers the subscriber likes already (the manage page), which
        count towards the limit and stand in for topics."""
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.liked_ids = frozenset(liked_ids)

    def clean_seed_papers(self) -> list[str]:
        ids = self.cleaned_data["seed_papers"]
        total = len(self.liked_ids) + sum(i not in self.liked_ids for i in ids)
        if total > MAX_LIKED_PAPERS:
            raise ValidationError(limit_message(total), code="too_many")
        return ids

    def clean_quiet_day(self) -> str:
        return self.cleaned_data["quiet_day"] or Subscriber.QuietDay.NOTHING

    def clean_channel(self) -> str:
        return self.cleaned_data["channel"] or Subscriber.Channel.EMAIL

    def clean_time_zone(self) -> str:
        name = self.cleaned_data["time_zone"]
        if name not in time_zones():
            raise ValidationError("Pick a time zone such as Europe/Berlin or America/New_York.")
        ZoneInfo(name)  # the list above comes from the same tzdata, so this cannot fail
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        following = ("topics", "authors", "organizations", self.LIKED_FIELD)
        if (
            all(name not in self.errors for name in following)
            and not any(data.get(n) for n in following)
            and not self.liked_ids
        ):
            self.add_error("topics", "Add at least one topic, or an author or organization to follow.")
        return data

    @classmethod
    def subscriber_fields(cls) -> list[str]:
        return [name for name in PreferencesForm.base_fields if name != cls.LIKED_FIELD]

    def preferences(self) -> dict[str, Any]:
        """The cleaned values as Subscriber field names."""
        return {name: self.cleaned_data[name] for name in self.subscriber_fields()}

    def liked_papers(self) -> list[str]:
        """The arXiv ids given, in the order given."""
        return list(self.cleaned_data.get(self.LIKED_FIELD) or [])


def refuse_unreadable(form: forms.Form) -> None:
    """A body that was not UTF-8 (digest.http.form_data): each field holding bytes that
    could not be read says so, or the form does when they were in no field it reads.
    Call after ``is_valid()``; the form is invalid afterwards."""
    names = [name for name in form.fields if "\ufffd" in str(form.data.get(name, ""))]
    for name in names or [None]:
        if UNREADABLE_TEXT not in list(form.errors.get(name or NON_FIELD_ERRORS, [])):
            form.add_error(name, ValidationError(UNREADABLE_TEXT, code="bad_text"))


class SignupForm(PreferencesForm):
    email = SingleLineEmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "spellcheck": "false"}),
    )
    # Honeypot: hidden from people by CSS and from screen readers; bots fill every field.
    website = forms.CharField(required=False, label="Leave this field empty")

    field_order = ["email", *PreferencesForm.base_fields]

    def is_spam(self) -> bool:
        return bool(self.data.get("website"))
