"""The digest email: assembled from pre-inlined parts, equal to inlining it whole."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from digest.mail import MessageBuilder, list_unsubscribe
from digest.rendering import CARD_FIELDS, READER_FIELDS, DayRenderer, NaiveRenderer, Reader, inline_css
from papers.feed import parse_api_items

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "digest.txt"
MONTH = HERE.parent / "fixtures" / "hf" / "api" / "daily_papers_month-2025-11.json"
TEMPLATE = HERE.parents[1] / "templates" / "emails" / "digest.html"
DAY = date(2025, 11, 7)


@dataclass
class StandIn:
    """The Paper fields a card reads, without a database."""

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


@dataclass
class Pick:
    paper_id: int
    reason: str


def papers(count: int = 40) -> list[StandIn]:
    items = parse_api_items(json.loads(MONTH.read_text()))[:count]
    return [
        StandIn(
            id=n,
            arxiv_id=p.arxiv_id,
            title=p.title,
            abstract=p.abstract,
            ai_summary=p.ai_summary,
            authors=list(p.authors),
            organization=p.organization,
            upvotes=p.upvotes,
            num_comments=p.num_comments,
            github_repo=p.github_repo,
            github_stars=p.github_stars,
            project_page=p.project_page,
            thumbnail=p.thumbnail,
        )
        for n, p in enumerate(items, start=1)
    ]


@dataclass(frozen=True)
class Links:
    """Stands in for tokens.FeedbackLinks: one link per reader, paper and signal."""

    base: str

    def urls(self, arxiv_id: str) -> tuple[str, str]:
        return f"{self.base}-{arxiv_id}-more?p={arxiv_id}&v=1", f"{self.base}-{arxiv_id}-less?p={arxiv_id}&v=-1"


def reader(n: int = 1, *, topics: tuple[str, ...] = ("LLM agents", "speculative decoding")) -> Reader:
    base = "https://digest.example.org"
    return Reader(
        email=f"reader{n}@example.org",
        topics=topics,
        frequency="daily",
        webview_url=f"{base}/view/web-token-{n}",
        manage_url=f"{base}/manage/manage-token-{n}",
        unsubscribe_url=f"{base}/unsubscribe/unsub-token-{n}",
        feedback_links=Links(f"{base}/feedback/feedback-token-{n}"),
    )


@pytest.fixture(autouse=True)
def _site(settings) -> None:
    settings.SITE_URL = "https://digest.example.org"
    settings.SITE_NAME = "Paper Digest"
    settings.HF_BASE_URL = "https://huggingface.co"
    settings.POSTAL_ADDRESS = "1 Example Street, 10115 Berlin, Germany"


def test_it_assembles_each_email_equal_to_inlining_the_whole_email() -> None:
    """Cutting one inlined document into parts loses nothing: for readers with different
    papers, orders, reasons and characters that need escaping, the assembled email is
    byte-identical to premailer run on that reader's whole rendered email."""
    day_papers = papers(40)
    fast = DayRenderer(day=DAY, papers=day_papers)
    reference = NaiveRenderer(day=DAY, papers=day_papers)
    readers = [
        (reader(1), [Pick(p.id, "matches: LLM agents") for p in day_papers[:10]]),
        (reader(2, topics=()), [Pick(p.id, "trending today") for p in day_papers[::-4]]),
        (reader(3, topics=("R&D <tools>", 'say "hi"')), [Pick(day_papers[7].id, "matches: R&D <tools>")]),
        (reader(4), [Pick(p.id, "curator's pick: don't miss “this” — é") for p in day_papers[20:25]]),
        (reader(5), [Pick(p.id, f"follows: {p.organization or 'x'}") for p in day_papers[30:40]]),
    ]
    for who, picks in readers:
        assembled = fast.render(who, picks)
        whole = reference.render(who, picks)

        assert assembled.html == whole.html, who.email
        assert assembled.text == whole.text, who.email
        assert assembled.subject == whole.subject
        assert assembled.paper_ids == tuple(p.paper_id for p in picks)


def test_it_renders_the_golden_plain_text_digest() -> None:
    """The plain-text part, word for word (UPDATE_GOLDEN=1 rewrites the file after a deliberate change)."""
    day_papers = papers(3)
    digest = DayRenderer(day=DAY, papers=day_papers).render(
        reader(7),
        [
            Pick(day_papers[1].id, "matches: speculative decoding"),
            Pick(day_papers[0].id, "curator's pick: read this first"),
            Pick(day_papers[2].id, "follows: Alan Turing"),
        ],
    )
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(digest.text)
    assert digest.text == GOLDEN.read_text()


def test_it_names_the_date_and_the_top_paper_in_the_subject() -> None:
    """Subject: site, date, the first paper's title (one line, truncated) and how many more."""
    day_papers = papers(3)
    digest = DayRenderer(day=DAY, papers=day_papers).render(
        reader(), [Pick(p.id, "trending today") for p in day_papers]
    )
    title = " ".join(day_papers[0].title.split())
    assert digest.subject.startswith("Paper Digest, Fri 7 Nov: ")
    assert digest.subject.endswith("(+2 more)")
    assert title[:40] in digest.subject
    assert "\n" not in digest.subject


def test_it_shows_every_part_of_a_card_and_the_reader_links() -> None:
    """Title to HF, authors or organization, counts, thumbnail, summary, arXiv/PDF/code links,
    reason, feedback links; a web-view link on top; preferences, unsubscribe, address and why below."""
    paper = next(p for p in papers(40) if p.github_repo and p.thumbnail and p.organization)
    digest = DayRenderer(day=DAY, papers=[paper]).render(reader(9), [Pick(paper.id, "matches: agents")])
    html, text = digest.html, digest.text
    for part in (
        f'href="https://huggingface.co/papers/{paper.arxiv_id}"',
        f'href="https://arxiv.org/abs/{paper.arxiv_id}"',
        f'href="https://arxiv.org/pdf/{paper.arxiv_id}"',
        f'href="{paper.github_repo}"',
        f'src="{paper.thumbnail}"',
        f'href="https://digest.example.org/feedback/feedback-token-9-{paper.arxiv_id}-more?p={paper.arxiv_id}&amp;v=1"',
        f'href="https://digest.example.org/feedback/feedback-token-9-{paper.arxiv_id}-less?p={paper.arxiv_id}&amp;v=-1"',
        'href="https://digest.example.org/view/web-token-9"',
        'href="https://digest.example.org/manage/manage-token-9"',
        'href="https://digest.example.org/unsubscribe/unsub-token-9"',
    ):
        assert part in html
    for fragment in (
        paper.organization,
        f"{paper.upvotes} upvotes",
        "GitHub stars",
        "Matches: agents",
        "1 Example Street, 10115 Berlin, Germany",
        "reader9@example.org subscribed to the daily Paper Digest",
        "Read it in your browser",
    ):
        assert fragment in text or fragment.replace("Read it", "Read it in your browser") in text
        assert fragment in html


def test_it_is_safe_for_mail_clients() -> None:
    """Tables and inline CSS; no flexbox, grid, external CSS or scripts; images sized with alt
    text; dark-mode and mobile rules kept with !important; under Gmail's clipping size."""
    day_papers = papers(40)
    digest = DayRenderer(day=DAY, papers=day_papers).render(
        reader(), [Pick(p.id, "trending today") for p in day_papers[:10]]
    )
    html = digest.html
    assert html.startswith("<!DOCTYPE html>")
    assert '<table role="presentation"' in html
    for banned in ("display:flex", "display: flex", "display:grid", "display: grid", "<script", "<link"):
        assert banned not in html
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) == sum(1 for p in day_papers[:10] if p.thumbnail)
    for img in images:
        assert re.search(r'\bwidth="\d+"', img) and re.search(r'\bheight="\d+"', img)
        assert re.search(r'\balt="[^"]+"', img)
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "color: #e6edf3 !important" in html  # premailer's strip_important=False at work
    assert "width: 100% !important" in html
    assert 'style="' in html and "class=" in html
    assert len(html.encode()) < 100_000


def test_it_drops_cards_rather_than_let_gmail_clip_the_email() -> None:
    """A reader asking for many papers gets as many as fit: the whole message stays under 100 KB."""
    day_papers = papers(80)
    digest = DayRenderer(day=DAY, papers=day_papers).render(
        reader(), [Pick(p.id, "trending today") for p in day_papers]
    )
    _, data = MessageBuilder().build(
        to="reader1@example.org",
        subject=digest.subject,
        text=digest.text,
        html=digest.html,
        unsubscribe=list_unsubscribe(url=digest.unsubscribe_url, token="token"),
    )
    assert 10 < len(digest.paper_ids) < 80
    assert len(data) < 100_000


def test_it_keeps_the_css_free_of_sibling_and_structural_selectors() -> None:
    """Cards are inlined once and reassembled per reader: selectors that depend on a card's
    neighbours or position would match differently in each email."""
    style = TEMPLATE.read_text().split("<style>", 1)[1].split("</style>", 1)[0]
    selectors = re.findall(r"([^{}]+)\{", style)
    for selector in selectors:
        selector = selector.strip()
        if selector.startswith("@media"):
            continue
        assert not re.search(r"[+~>]|:(first|last|nth|only)-", selector), selector


def test_it_inlines_with_important_kept_in_media_rules() -> None:
    """premailer's default would strip !important from the @media rules it keeps."""
    html = (
        "<html><head><style>.a{color:red} @media (max-width:600px){.a{color:blue !important}}</style>"
        "</head><body><p class='a'>x</p></body></html>"
    )
    out = inline_css(html)
    assert 'style="color:red"' in out
    assert "color: blue !important" in out


SLOT_NAMES = [*READER_FIELDS, *CARD_FIELDS]


def slot_spellings(renderer: DayRenderer, name: str) -> list[str]:
    """Ways a reader might write a slot: the old fixed marker, and this renderer's own."""
    return [f"%%{name.upper()}%%", f"%%{name}%%", renderer.placeholder(name)]


@pytest.mark.parametrize("name", SLOT_NAMES)
def test_it_never_fills_a_placeholder_written_in_a_topic_or_a_reason(name: str) -> None:
    """The review's case: a topic "%%MANAGE_URL%%" became the reader's manage URL in the
    intro of both parts. Every placeholder name, as a topic and in a reason line, stays text."""
    day_papers = papers(4)
    fast = DayRenderer(day=DAY, papers=day_papers)
    reference = NaiveRenderer(day=DAY, papers=day_papers)
    spellings = slot_spellings(fast, name)
    who = reader(5, topics=tuple(spellings))
    picks = [Pick(p.id, f"matches: {' '.join(spellings)}") for p in day_papers]

    digest = fast.render(who, picks)

    for spelling in spellings:
        assert spelling in digest.text
        assert spelling in digest.html
    intro = next(line for line in digest.text.splitlines() if "for your topics" in line)
    assert intro.endswith(f"for your topics: {', '.join(spellings)}.")
    for url in (who.manage_url, who.unsubscribe_url, who.webview_url):
        assert digest.text.count(url) == 1
        assert digest.html.count(url) == 1
    assert digest.text.count("-more?p=") == len(day_papers)
    whole = reference.render(who, picks)
    assert (digest.text, digest.html) == (whole.text, whole.html)


def test_it_never_fills_a_placeholder_written_in_a_paper() -> None:
    """Titles, summaries and names are in the pre-rendered template itself: a paper titled
    with a placeholder name stays as titled."""
    day_papers = papers(2)
    for paper in day_papers:
        paper.title = " ".join(f"%%{name.upper()}%%" for name in SLOT_NAMES)
        paper.ai_summary = paper.title
        paper.organization = "%%MANAGE_URL%%"
    fast = DayRenderer(day=DAY, papers=day_papers)
    who = reader(6)
    digest = fast.render(who, [Pick(p.id, "trending today") for p in day_papers])
    assert digest.text.count(who.manage_url) == 1
    assert digest.html.count(who.manage_url) == 1
    assert digest.text.count("%%MANAGE_URL%%") == 3 * len(day_papers)
    whole = NaiveRenderer(day=DAY, papers=day_papers).render(who, [Pick(p.id, "trending today") for p in day_papers])
    assert (digest.text, digest.html) == (whole.text, whole.html)
