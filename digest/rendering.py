"""Turn a reader's ranked papers into the digest's subject, plain text and HTML.

CSS inlining is the expensive step (premailer costs about 20 ms per email here, see
the naive path in docs/benchmarks.md), so it happens once per day, not once per email:
:class:`DayRenderer` renders the shell and every paper card of the day once, with
``%%PLACEHOLDER%%`` tokens where per-reader values go, inlines that single document
(so descendant selectors such as ``.footer a`` match exactly as they would in a real
email), and cuts it at marker comments into a prefix, one fragment per card and a
suffix. Each fragment is split once, at build, into literal text and named slots; a
reader's email is then those pieces with the reader's values in the slots, joined:
about 0.1 ms.

Reader-supplied text (topics in the intro, the reason lines) goes into slots and is
never scanned again, so a topic such as ``%%MANAGE_URL%%`` stays text. The slot markers
carry a nonce drawn when the renderer is built, so no paper text rendered into the
template (titles, summaries, names: all fetched before the nonce exists) can contain one.

:class:`NaiveRenderer` renders and inlines the whole email per reader. It is the
reference the assembled output must equal byte for byte (tests/digest/test_rendering.py)
and the slow path benchdigest compares against.

No database access; settings are read for the site name, URLs and postal address.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from django.conf import settings
from django.template.loader import get_template

from digest.mail import templated

# Gmail clips a message over about 102 KB: the whole message (headers, text and HTML
# parts) stays under this, dropping the reader's last cards if need be.
MAX_MESSAGE_BYTES = 95_000
# Room for headers, MIME boundaries and the per-reader values (URLs, intro, why line).
READER_HEADROOM = 4_000
SUMMARY_CHARS = 320
BYLINE_AUTHORS = 3

# Per-reader values, set once per email (links, intro) or per card (reason, feedback links).
READER_FIELDS = ("intro", "why", "webview_url", "manage_url", "unsubscribe_url")
CARD_FIELDS = ("reason", "more_url", "less_url")
# Where each value lands in the HTML: attribute values and text escape differently.
ATTRIBUTE_FIELDS = frozenset({"webview_url", "manage_url", "unsubscribe_url", "more_url", "less_url"})
# A card carries four feedback links (two in each part), each longer than its slot marker
# by the site URL plus up to this many bytes: the feedback path, a subscriber id, the
# 16-character MAC, the paper id and "&amp;v=-1", with quoted-printable's "=3D".
FEEDBACK_LINK_EXTRA = 45

HTML_CARD = re.compile(r"<!--pd:card [^>]*?-->.*?<!--pd:/card-->", re.S)
# Marker lines of the text template: never in a sent email (the text is cut at them).
TEXT_CARD_START = "\x00card\x00"
TEXT_CARD_END = "\x00/card\x00"


# lxml serializes text with & < > escaped and attribute values with & < > " escaped; the
# assembled email must escape its substituted values the same way to equal the inlined one.
def escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attribute(value: str) -> str:
    return escape_text(value).replace('"', "&quot;")


def encoded_size(text: str) -> int:
    """Bytes ``text`` takes in the sent message: both parts go quoted-printable, which
    turns every "=" of the HTML's attributes into "=3D" and adds soft line breaks."""
    return len(binascii.b2a_qp(text.encode(), istext=True))


def one_line(value: str) -> str:
    """Scraped titles carry hard line breaks; a header or a card line must not."""
    return " ".join(value.split())


def inline_css(html: str) -> str:
    """The project's one premailer call (digest.mail.inline_css: strip_important=False,
    so the mobile and dark-mode @media overrides keep their !important), plus the doctype
    lxml may drop; without it some clients render in quirks mode."""
    inlined = templated.inline_css(html)
    if not inlined.lstrip().upper().startswith("<!DOCTYPE"):
        inlined = "<!DOCTYPE html>\n" + inlined
    return inlined


class Paperish(Protocol):
    """The fields of papers.models.Paper a card shows (a Paper or a stand-in in tests)."""

    id: int
    arxiv_id: str
    title: str
    abstract: str
    ai_summary: str
    authors: list[str]
    organization: str
    upvotes: int
    num_comments: int
    github_repo: str
    github_stars: int | None
    project_page: str
    thumbnail: str


class FeedbackLinker(Protocol):
    """Makes a reader's "more / less like this" links (tokens.FeedbackLinks)."""

    def urls(self, arxiv_id: str) -> tuple[str, str]: ...


class Pickish(Protocol):
    """A ranked paper for one reader (ranking.RankedItem fits)."""

    paper_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Card:
    """What one paper's card shows, the same for every reader."""

    paper_id: int
    arxiv_id: str
    title: str
    byline: str
    stats: str
    summary: str
    hf_url: str
    arxiv_url: str
    pdf_url: str
    code_url: str
    project_url: str
    thumbnail: str
    thumb_alt: str

    @classmethod
    def from_paper(cls, paper: Paperish) -> Card:
        title = one_line(paper.title)
        authors = [one_line(a) for a in paper.authors if a.strip()]
        names = ", ".join(authors[:BYLINE_AUTHORS])
        if len(authors) > BYLINE_AUTHORS:
            names += f" and {len(authors) - BYLINE_AUTHORS} more"
        organization = one_line(paper.organization)
        byline = " · ".join(part for part in (organization, names) if part) or "Authors not listed"
        stats = [f"{paper.upvotes:,} upvote{'' if paper.upvotes == 1 else 's'}"]
        if paper.num_comments:
            stats.append(f"{paper.num_comments:,} comment{'' if paper.num_comments == 1 else 's'}")
        if paper.github_stars is not None and paper.github_repo:
            stats.append(f"{paper.github_stars:,} GitHub stars")
        arxiv_id = paper.arxiv_id
        return cls(
            paper_id=paper.id,
            arxiv_id=arxiv_id,
            title=title,
            byline=byline,
            stats=" · ".join(stats),
            summary=_summary(paper.ai_summary, paper.abstract),
            hf_url=f"{settings.HF_BASE_URL}/papers/{arxiv_id}",
            arxiv_url=f"https://arxiv.org/abs/{arxiv_id}",
            pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
            code_url=paper.github_repo,
            project_url=paper.project_page,
            thumbnail=paper.thumbnail,
            thumb_alt=f"Thumbnail: {title}",
        )


def _summary(ai_summary: str, abstract: str) -> str:
    text = one_line(ai_summary) or one_line(abstract)
    if len(text) <= SUMMARY_CHARS:
        return text
    cut = text[:SUMMARY_CHARS].rsplit(" ", 1)[0]
    return cut.rstrip(",;:.") + "…"


@dataclass(frozen=True, slots=True)
class Reader:
    """Who a digest is for and the signed links it carries."""

    email: str
    topics: tuple[str, ...]
    frequency: str  # "daily" or "weekly"
    webview_url: str
    manage_url: str
    unsubscribe_url: str
    feedback_links: FeedbackLinker


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    subject: str
    text: str
    html: str
    paper_ids: tuple[int, ...]  # the cards in the email, in order (the size cap may drop some)
    unsubscribe_url: str  # the List-Unsubscribe header repeats the footer's link


def day_label(day: date, *, weekly: bool) -> str:
    if weekly:
        return f"The week to {day:%A} {day.day} {day:%B %Y}"
    return f"{day:%A} {day.day} {day:%B %Y}"


def reason_line(reason: str) -> str:
    reason = one_line(reason)
    return reason[:1].upper() + reason[1:]


def intro_line(reader: Reader, *, count: int, weekly: bool) -> str:
    papers = f"{count} paper{'' if count == 1 else 's'}"
    period = "this week" if weekly else "today"
    if not reader.topics:
        return f"The {papers} most upvoted on Hugging Face {period}."
    topics = ", ".join(reader.topics[:4]) + (" and more" if len(reader.topics) > 4 else "")
    return f"{papers.capitalize()} {period} for your topics: {topics}."


def why_line(reader: Reader) -> str:
    return (
        f"{reader.email} subscribed to the {reader.frequency} {settings.SITE_NAME} at "
        f"{settings.SITE_URL} and confirmed the address."
    )


def _context(
    *, day: date, weekly: bool, cards: list[dict[str, Any]], values: dict[str, str], markers: bool
) -> dict[str, Any]:
    return {
        "site_name": settings.SITE_NAME,
        "postal_address": settings.POSTAL_ADDRESS,
        "day": day,
        "day_label": day_label(day, weekly=weekly),
        "cards": cards,
        "markers": markers,
        "card_start": TEXT_CARD_START,
        "card_end": TEXT_CARD_END,
        **values,
    }


def _card_context(card: Card, reason: str, more_url: str, less_url: str) -> dict[str, Any]:
    return {
        **{f: getattr(card, f) for f in Card.__slots__},
        "reason": reason,
        "more_url": more_url,
        "less_url": less_url,
    }


def reader_values(reader: Reader, *, count: int, weekly: bool) -> dict[str, str]:
    return {
        "intro": intro_line(reader, count=count, weekly=weekly),
        "why": why_line(reader),
        "webview_url": reader.webview_url,
        "manage_url": reader.manage_url,
        "unsubscribe_url": reader.unsubscribe_url,
    }


def render_subject(*, day: date, top: Card, more: int) -> str:
    subject = get_template("emails/digest.subject.txt").render(
        {"site_name": settings.SITE_NAME, "day": day, "top_title": top.title, "more": more}
    )
    return one_line(subject)


def render_full(
    *,
    day: date,
    weekly: bool,
    cards: Sequence[Card],
    reasons: Sequence[str],
    reader: Reader,
    web_copy: bool = False,
) -> tuple[str, str]:
    """The whole email (text, HTML before inlining) rendered by the templates in one go;
    ``web_copy``: the HTML for the browser, without the reader's links (see DayRenderer.web_copy)."""
    values = reader_values(reader, count=len(cards), weekly=weekly)
    card_contexts = [
        _card_context(c, reason_line(r), *reader.feedback_links.urls(c.arxiv_id))
        for c, r in zip(cards, reasons, strict=True)
    ]
    context = _context(day=day, weekly=weekly, cards=card_contexts, values=values, markers=False)
    if web_copy:
        context.update(web_copy=True, site_url=settings.SITE_URL)
    text = get_template("emails/digest.txt").render(context)
    html = get_template("emails/digest.html").render(context)
    return text, html


@dataclass(frozen=True, slots=True)
class _Slotted:
    """Pre-rendered text cut at its slots once: literal, slot name, literal, ..., literal.
    Filling joins the literals with the values (one pass; the values are never read)."""

    parts: tuple[str, ...]

    def fill(self, values: dict[str, str]) -> str:
        parts = list(self.parts)
        for i in range(1, len(parts), 2):
            parts[i] = values[parts[i]]
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class _Fragment:
    arxiv_id: str
    html: _Slotted
    text: _Slotted
    size: int  # bytes of both parts as sent (quoted-printable)


class DayRenderer:
    """Renders every reader's digest of one day (or week) from pre-inlined fragments.

    Build it once per (day, papers) and reuse it for every reader of that day.
    """

    def __init__(self, *, day: date, papers: Sequence[Paperish], weekly: bool = False) -> None:
        self.day = day
        self.weekly = weekly
        self.cards = {p.id: Card.from_paper(p) for p in papers}
        self._subjects: dict[tuple[int, int], str] = {}
        self._nonce = secrets.token_hex(8)
        self._slot = re.compile(rf"%%([a-z_]+)\.{self._nonce}%%")
        self._build()

    def placeholder(self, name: str) -> str:
        """The slot marker of ``name`` in this renderer's pre-rendered template."""
        return f"%%{name}.{self._nonce}%%"

    def _slotted(self, text: str) -> _Slotted:
        return _Slotted(tuple(self._slot.split(text)))

    def _build(self) -> None:
        values = {name: self.placeholder(name) for name in READER_FIELDS}
        slots = [self.placeholder(name) for name in CARD_FIELDS]
        cards = [_card_context(c, *slots) for c in self.cards.values()]
        context = _context(day=self.day, weekly=self.weekly, cards=cards, values=values, markers=True)
        html = inline_css(get_template("emails/digest.html").render(context))
        text = get_template("emails/digest.txt").render(context)

        html_cards = list(HTML_CARD.finditer(html))
        text_cards = text.split(TEXT_CARD_START)
        if len(html_cards) != len(self.cards) or len(text_cards) != len(self.cards) + 1:
            raise RuntimeError("the digest templates lost a card marker; check templates/emails/")
        # With no cards the renderer is never asked for an email (render refuses), so the
        # cut points only matter when there are cards.
        html_prefix = html[: html_cards[0].start()] if html_cards else html
        html_suffix = html[html_cards[-1].end() :] if html_cards else ""
        text_prefix = text_cards[0]
        text_bodies = [chunk.split(TEXT_CARD_END, 1) for chunk in text_cards[1:]]
        text_suffix = text_bodies[-1][1] if text_bodies else ""
        self._html_prefix, self._html_suffix = self._slotted(html_prefix), self._slotted(html_suffix)
        self._text_prefix, self._text_suffix = self._slotted(text_prefix), self._slotted(text_suffix)
        self._fragments = {
            paper_id: _Fragment(
                arxiv_id=self.cards[paper_id].arxiv_id,
                html=self._slotted(m.group(0)),
                text=self._slotted(body[0]),
                size=encoded_size(m.group(0) + body[0]) + 4 * (FEEDBACK_LINK_EXTRA + len(settings.SITE_URL)),
            )
            for paper_id, m, body in zip(self.cards, html_cards, text_bodies, strict=True)
        }
        self._base_size = encoded_size(html_prefix + html_suffix + text_prefix + text_suffix) + READER_HEADROOM

    def fit(self, picks: Sequence[Pickish]) -> list[Pickish]:
        """The picks whose cards fit under MAX_MESSAGE_BYTES, best first (unknown papers dropped)."""
        kept = []
        size = self._base_size
        for pick in picks:
            fragment = self._fragments.get(pick.paper_id)
            if fragment is None:
                continue
            size += fragment.size + 2 * len(pick.reason)
            if size > MAX_MESSAGE_BYTES:
                break
            kept.append(pick)
        return kept

    def web_copy(self, reader: Reader, picks: Sequence[Pickish]) -> str:
        """The digest's HTML for the browser ("Read it in your browser"): the cards the
        email carried with their reasons, and no link that acts for the reader (preferences,
        unsubscribe, more / less like this) nor their address, since that link travels with
        every forwarded copy of the email. ``reader``: see web_copy_reader."""
        picks = self.fit(picks)
        if not picks:
            raise ValueError("a digest needs at least one paper")
        _, html = render_full(
            day=self.day,
            weekly=self.weekly,
            cards=[self.cards[p.paper_id] for p in picks],
            reasons=[p.reason for p in picks],
            reader=reader,
            web_copy=True,
        )
        return inline_css(html)

    def subject(self, top: Card, count: int) -> str:
        key = (top.paper_id, count)
        subject = self._subjects.get(key)
        if subject is None:
            subject = self._subjects[key] = render_subject(day=self.day, top=top, more=count - 1)
        return subject

    def render(self, reader: Reader, picks: Sequence[Pickish]) -> RenderedDigest:
        picks = self.fit(picks)
        if not picks:
            raise ValueError("a digest needs at least one paper")
        text_values = reader_values(reader, count=len(picks), weekly=self.weekly)
        html_values = {
            k: escape_attribute(v) if k in ATTRIBUTE_FIELDS else escape_text(v) for k, v in text_values.items()
        }
        html_parts = [self._html_prefix.fill(html_values)]
        text_parts = [self._text_prefix.fill(text_values)]
        links = reader.feedback_links
        for pick in picks:
            fragment = self._fragments[pick.paper_id]
            reason = reason_line(pick.reason)
            more, less = links.urls(fragment.arxiv_id)
            html_parts.append(
                fragment.html.fill(
                    {
                        "reason": escape_text(reason),
                        "more_url": escape_attribute(more),
                        "less_url": escape_attribute(less),
                    }
                )
            )
            text_parts.append(fragment.text.fill({"reason": reason, "more_url": more, "less_url": less}))
        html_parts.append(self._html_suffix.fill(html_values))
        text_parts.append(self._text_suffix.fill(text_values))
        top = self.cards[picks[0].paper_id]
        return RenderedDigest(
            subject=self.subject(top, len(picks)),
            text="".join(text_parts),
            html="".join(html_parts),
            paper_ids=tuple(p.paper_id for p in picks),
            unsubscribe_url=reader.unsubscribe_url,
        )


class _NoFeedbackLinks:
    def urls(self, arxiv_id: str) -> tuple[str, str]:
        return "", ""


def web_copy_reader(*, topics: Sequence[str], frequency: str) -> Reader:
    """A reader for the web copy: what shapes the digest's text, and no address or links."""
    return Reader(
        email="",
        topics=tuple(topics),
        frequency=frequency,
        webview_url="",
        manage_url="",
        unsubscribe_url="",
        feedback_links=_NoFeedbackLinks(),
    )


class NaiveRenderer(DayRenderer):
    """Render and inline each reader's whole email: the reference, and the slow path.

    Same card selection and subject as DayRenderer, so the two must agree byte for byte.
    """

    def render(self, reader: Reader, picks: Sequence[Pickish]) -> RenderedDigest:
        picks = self.fit(picks)
        if not picks:
            raise ValueError("a digest needs at least one paper")
        cards = [self.cards[p.paper_id] for p in picks]
        text, html = render_full(
            day=self.day, weekly=self.weekly, cards=cards, reasons=[p.reason for p in picks], reader=reader
        )
        return RenderedDigest(
            subject=self.subject(cards[0], len(picks)),
            text=text,
            html=inline_css(html),
            paper_ids=tuple(p.paper_id for p in picks),
            unsubscribe_url=reader.unsubscribe_url,
        )
