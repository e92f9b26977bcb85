"""Parsing of saved Hugging Face Daily Papers data (tests/fixtures/hf/README.md)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from papers.feed import (
    FeedPaper,
    FeedShapeError,
    parse_abbreviated_count,
    parse_any,
    parse_api_items,
    parse_html_page,
)

EXCERPT = "html/papers_trending_2026-10-07.excerpts.html"
# The excerpt elides the middle of data-props: from the first item's authors up to the
# last item. Cutting exactly that span leaves the real, still-escaped last item.
FIRST_ITEM = "[{&quot;paper&quot;:{&quot;id&quot;:&quot;2610.05608&quot;"
LAST_ITEM = "{&quot;paper&quot;:{&quot;id&quot;:&quot;2606.03748&quot;"


def load(hf_fixtures: Path, name: str) -> object:
    return json.loads((hf_fixtures / name).read_text(encoding="utf-8"))


def by_id(papers: list[FeedPaper]) -> dict[str, FeedPaper]:
    return {p.arxiv_id: p for p in papers}


@pytest.fixture
def edge_cases(hf_fixtures: Path) -> dict[str, FeedPaper]:
    return by_id(parse_api_items(load(hf_fixtures, "api/daily_papers_edge_cases.json")))


@pytest.fixture
def nov7_items(hf_fixtures: Path) -> list[dict]:
    return load(hf_fixtures, "api/daily_papers_2025-11-07.subset.json")  # type: ignore[return-value]


@pytest.fixture
def excerpt(hf_fixtures: Path) -> str:
    return (hf_fixtures / EXCERPT).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- API items


def test_it_reads_every_field_of_a_full_item(nov7_items: list[dict]) -> None:
    """The top paper of 2025-11-07 comes out with exact, cleaned values."""
    paper = parse_api_items(nov7_items)[0]

    assert paper.arxiv_id == "2511.04570"
    assert paper.title == ("Thinking with Video: Video Generation as a Promising Multimodal Reasoning Paradigm")
    assert paper.abstract.startswith(
        '"Thinking with Text" and "Thinking with Images" paradigm significantly improve the '
        "reasoning ability of large language models (LLMs) and Vision Language Models (VLMs)."
    )
    assert paper.abstract.endswith('positions "thinking with video" as a unified multimodal reasoning paradigm.')
    assert paper.authors[:3] == ("Jingqi Tong", "Yurong Mou", "Hangcheng Li")
    assert len(paper.authors) == 14
    assert paper.authors[-1] == "Xipeng Qiu"
    assert paper.organization == "OpenMOSS"
    assert paper.published_at == datetime(2025, 11, 6, 17, 25, 23, tzinfo=UTC)
    assert paper.submitted_at == datetime(2025, 11, 7, tzinfo=UTC)
    assert paper.featured_on == date(2025, 11, 7)
    assert paper.upvotes == 242
    assert paper.num_comments == 5
    assert paper.github_repo == "https://github.com/tongjingqi/Thinking-with-Video"
    assert paper.github_stars == 309
    assert paper.project_page == "https://thinking-with-video.github.io/"
    assert paper.thumbnail == ("https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2511.04570.png")
    assert paper.ai_summary.startswith('The "Thinking with Video" paradigm enhances')
    assert paper.ai_keywords[:2] == ("Thinking with Text", "Thinking with Images")
    assert len(paper.ai_keywords) == 14
    assert paper.withdrawn_at is None


def test_it_normalizes_hard_line_breaks_everywhere(hf_fixtures: Path) -> None:
    """83 titles of the month carry "\\n  "; none survive, nor do double spaces."""
    items = load(hf_fixtures, "api/daily_papers_month-2025-11.json")
    assert isinstance(items, list)
    assert sum("\n" in item["paper"]["title"] for item in items) == 83

    for paper in parse_api_items(items):
        for text in (paper.title, paper.abstract):
            assert "\n" not in text
            assert "  " not in text
            assert text == text.strip()


def test_it_uses_the_utc_paper_published_at_not_the_outer_eastern_one(
    edge_cases: dict[str, FeedPaper], hf_fixtures: Path
) -> None:
    """Outer publishedAt is Eastern time mislabelled Z; here it even moves the date."""
    lumine = edge_cases["2511.08892"]
    # paper.publishedAt "2025-11-12T02:01:26.000Z", outer "2025-11-11T21:01:26.000Z".
    assert lumine.published_at == datetime(2025, 11, 12, 2, 1, 26, tzinfo=UTC)
    assert lumine.published_at.tzinfo is UTC

    items = load(hf_fixtures, "api/daily_papers_month-2025-11.json")
    assert isinstance(items, list)
    published = {p.arxiv_id: p.published_at for p in parse_api_items(items)}
    for item in items:
        paper_time = datetime.fromisoformat(item["paper"]["publishedAt"])
        outer_time = datetime.fromisoformat(item["publishedAt"])
        assert published[item["paper"]["id"]] == paper_time
        assert (paper_time - outer_time).total_seconds() in (4 * 3600, 5 * 3600)


def test_it_excludes_hidden_authors_and_keeps_order(edge_cases: dict[str, FeedPaper]) -> None:
    """2511.11793 lists 54 authors; "Shizun Wang" is hidden: true."""
    authors = edge_cases["2511.11793"].authors

    assert len(authors) == 53
    assert "Shizun Wang" not in authors
    assert authors[:3] == ("MiroMind Team", "Song Bai", "Lidong Bing")
    assert authors[38:41] == ("Letian Wang", "Weizhi Wang", "Zixuan Wang")
    assert authors[-1] == "Zhi Zhu"


def test_it_takes_the_organization_display_name(edge_cases: dict[str, FeedPaper]) -> None:
    """fullname wins over the handle: "ByteDance Seed", not "ByteDance-Seed"."""
    assert edge_cases["2511.08892"].organization == "ByteDance Seed"
    assert edge_cases["2511.13254"].organization == "AI at Meta"
    assert edge_cases["2511.11793"].organization == ""


def test_it_falls_back_to_the_org_handle_and_the_outer_organization(
    nov7_items: list[dict],
) -> None:
    """Without paper.organization the item's own organization is used."""
    item = copy.deepcopy(nov7_items[0])
    del item["paper"]["organization"]
    item["organization"] = {"name": "OpenMOSS-Team"}

    assert parse_api_items([item])[0].organization == "OpenMOSS-Team"


def test_it_keeps_zero_github_stars_without_a_repo(edge_cases: dict[str, FeedPaper]) -> None:
    """2511.01450 has githubStars: 0 but no githubRepo; 0 is not "unknown"."""
    paper = edge_cases["2511.01450"]

    assert paper.github_repo == ""
    assert paper.github_stars == 0
    assert edge_cases["2511.08892"].github_stars is None
    assert edge_cases["2511.08892"].project_page == "https://www.lumine-ai.org/"


def test_it_allows_missing_ai_summary_and_keywords(edge_cases: dict[str, FeedPaper]) -> None:
    """Optional keys absent on paper come out empty, not as errors."""
    for arxiv_id in ("2511.13254", "2511.11793"):
        assert edge_cases[arxiv_id].ai_summary == ""
        assert edge_cases[arxiv_id].ai_keywords == ()
    assert edge_cases["2511.13254"].github_stars == 73


def test_it_parses_an_item_without_submitted_by(edge_cases: dict[str, FeedPaper]) -> None:
    """2509.01396 has neither submittedBy nor paper.submittedOnDailyBy."""
    paper = edge_cases["2509.01396"]

    assert paper.title == ("DeepResearch Arena: The First Exam of LLMs' Research Abilities via Seminar-Grounded Tasks")
    assert paper.published_at == datetime(2025, 9, 1, 11, 42, 47, tzinfo=UTC)
    assert paper.featured_on == date(2025, 9, 5)
    assert paper.upvotes == 58
    assert paper.num_comments == 6
    assert paper.github_repo == ""
    assert paper.github_stars is None
    assert len(paper.authors) == 13


def test_it_parses_older_items_without_organization(hf_fixtures: Path) -> None:
    """2023-05-16 items predate organizations and mediaUrls."""
    papers = parse_api_items(load(hf_fixtures, "api/daily_papers_2023-05-16.subset.json"))

    assert len(papers) == 21
    assert {p.organization for p in papers} == {""}
    assert {p.featured_on for p in papers} == {date(2023, 5, 16)}
    tiny = papers[0]
    assert tiny.arxiv_id == "2305.07759"
    assert tiny.title == ("TinyStories: How Small Can Language Models Be and Still Speak Coherent English?")
    assert tiny.authors == ("Ronen Eldan", "Yuanzhi Li")
    assert (tiny.upvotes, tiny.num_comments) == (46, 10)
    assert tiny.published_at == datetime(2023, 5, 12, 20, 56, 48, tzinfo=UTC)


def test_it_sorts_the_month_globally_across_pages(hf_fixtures: Path) -> None:
    """Five concatenated pages are each sorted, not globally: item 100 beats item 99."""
    items = load(hf_fixtures, "api/daily_papers_month-2025-11.json")
    assert isinstance(items, list)
    assert items[99]["paper"]["upvotes"] < items[100]["paper"]["upvotes"]

    papers = parse_api_items(items)

    assert len(papers) == 412
    assert len({p.arxiv_id for p in papers}) == 412
    keys = [(-p.upvotes, p.arxiv_id) for p in papers]
    assert keys == sorted(keys)
    assert papers[0].arxiv_id == "2511.04570"


def test_it_breaks_upvote_ties_by_arxiv_id(nov7_items: list[dict]) -> None:
    """Equal upvotes (6 each) come out in arXiv id order, not feed order."""
    ids = [p.arxiv_id for p in parse_api_items(nov7_items)]

    assert [i for i in ids if i in ("2511.04668", "2511.03996")] == ["2511.03996", "2511.04668"]
    assert len(ids) == 15


def test_it_keeps_the_most_upvoted_copy_of_a_duplicate(nov7_items: list[dict]) -> None:
    """A paper that moved pages mid-paging shows up twice; the fresher count wins."""
    stale = copy.deepcopy(nov7_items[1])
    stale["paper"]["upvotes"] = 1
    fresh = copy.deepcopy(nov7_items[1])
    fresh["paper"]["upvotes"] = 500

    papers = parse_api_items([stale, *nov7_items, fresh])

    assert len(papers) == 15
    assert papers[0].arxiv_id == "2511.04460"
    assert papers[0].upvotes == 500


def test_it_reads_withdrawn_at(nov7_items: list[dict]) -> None:
    """withdrawnAt (in HF's OpenAPI type, not yet seen in data) becomes aware UTC."""
    item = copy.deepcopy(nov7_items[0])
    item["paper"]["withdrawnAt"] = "2025-11-20T08:00:00.000Z"

    assert parse_api_items([item])[0].withdrawn_at == datetime(2025, 11, 20, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (("paper", "id"), "item 3: missing required field 'paper.id'"),
        (("paper", "publishedAt"), "item 3 (2511.04670): missing or invalid required field"),
        (("paper",), "item 3: missing required field 'paper'"),
    ],
)
def test_it_names_the_item_and_field_when_a_required_field_is_missing(
    nov7_items: list[dict], remove: tuple[str, ...], message: str
) -> None:
    """The error says which item and which field, so a format change is easy to spot."""
    items = copy.deepcopy(nov7_items)
    target = items[3]
    for key in remove[:-1]:
        target = target[key]
    del target[remove[-1]]

    with pytest.raises(FeedShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_api_items(items)


def test_it_needs_a_title_on_either_the_paper_or_the_item(nov7_items: list[dict]) -> None:
    """The outer title is a fallback; only when both are missing is it an error."""
    items = copy.deepcopy(nov7_items[:2])
    del items[0]["paper"]["title"]
    del items[1]["paper"]["title"]
    del items[1]["title"]

    with pytest.raises(FeedShapeError, match=r"item 1 \(2511.04460\).*'title'"):
        parse_api_items(items)
    assert parse_api_items(items[:1])[0].title.startswith("Thinking with Video:")


@pytest.mark.parametrize("data", [{"error": "Rate limited"}, "oops", None, 42])
def test_it_rejects_data_that_is_not_a_list_of_items(data: object) -> None:
    """An error object or scalar is a shape error, never an empty day."""
    with pytest.raises(FeedShapeError, match="expected a list of daily paper items"):
        parse_api_items(data)


def test_it_returns_no_papers_for_an_empty_day() -> None:
    """[] is a valid answer (weekends have no papers)."""
    assert parse_api_items([]) == []


def test_it_accepts_a_single_trending_item(hf_fixtures: Path) -> None:
    """The trending page's item shape (with the extra key "upvoted") parses on its own."""
    [paper] = parse_api_items(load(hf_fixtures, "html/trending_item_2606.03748.decoded.json"))

    assert paper.arxiv_id == "2606.03748"
    assert paper.title == "Ultralytics YOLO26: Unified Real-Time End-to-End Vision Models"
    assert paper.authors == (
        "Glenn Jocher",
        "Jing Qiu",
        "Mengyu Liu",
        "Shuai Lyu",
        "Fatih Cagatay Akyon",
        "Muhammet Esat Kalfaoglu",
    )
    assert paper.organization == "Ultralytics"
    # Outer publishedAt is 2026-06-01T20:00Z, the Eastern shift of midnight UTC.
    assert paper.published_at == datetime(2026, 6, 2, tzinfo=UTC)
    assert paper.featured_on == date(2026, 6, 3)
    assert (paper.upvotes, paper.num_comments) == (23, 1)
    assert paper.github_repo == "https://github.com/ultralytics/ultralytics"
    assert paper.github_stars == 62246
    assert paper.project_page == "https://docs.ultralytics.com/models/yolo26"
    assert len(paper.ai_keywords) == 15


# --------------------------------------------------------------------------- HTML pages


def test_it_reads_data_props_of_the_trending_page(excerpt: str, hf_fixtures: Path) -> None:
    """With the elided span cut out, the real escaped data-props parses like the API."""
    start = excerpt.index(FIRST_ITEM)
    page = excerpt[:start] + "[" + excerpt[excerpt.index(LAST_ITEM) :]

    papers = parse_html_page(page)

    expected = parse_api_items(load(hf_fixtures, "html/trending_item_2606.03748.decoded.json"))
    assert papers == expected


def test_it_falls_back_to_cards_when_data_props_is_broken(excerpt: str) -> None:
    """The excerpt's data-props is not JSON (it was elided), so the cards are read."""
    papers = parse_html_page(excerpt)

    assert [p.arxiv_id for p in papers] == ["2609.33439", "2610.02193", "2609.20519"]
    raven, hc_dlm, sol_pi = papers
    assert raven.title == "Raven: The Harness of Harnesses for Composable Agentic Intelligence"
    assert raven.abstract.startswith("As large language models advance, AI agents are moving")
    assert raven.upvotes == 566
    assert raven.github_repo == "https://github.com/EverMind-AI/Raven"
    assert raven.github_stars == 5240  # rendered "5.24k"
    assert raven.organization == "EverMind"
    assert raven.published_at == datetime(2026, 9, 27, tzinfo=UTC)  # "Published on Sep 27, 2026"
    assert raven.thumbnail == ("https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2609.33439.png")
    assert raven.submitted_at is None
    assert raven.authors == ()

    # Only the mobile half of this card survived in the excerpt.
    assert hc_dlm.title == "Hierarchical Continuous Diffusion Language Models"
    assert (hc_dlm.upvotes, hc_dlm.github_stars) == (89, 57)
    assert hc_dlm.organization == "University of Illinois at Urbana-Champaign"
    assert hc_dlm.published_at == datetime(2026, 10, 1, tzinfo=UTC)

    # Only a title survived (its media is a <video>): the arXiv month stands in for the date.
    assert sol_pi.title == ("SoL-Pi: Recursively Scaling Auto-Research Loops for Efficient Agent Harness")
    assert (sol_pi.upvotes, sol_pi.github_stars, sol_pi.thumbnail) == (0, None, "")
    assert sol_pi.published_at == datetime(2026, 9, 1, tzinfo=UTC)


def test_it_reads_each_twice_rendered_card_once(excerpt: str) -> None:
    """Desktop and mobile halves link the same paper; the card counts once."""
    assert excerpt.count('href="/papers/2609.33439"') == 4

    papers = parse_html_page(excerpt)

    assert [p.arxiv_id for p in papers].count("2609.33439") == 1


def test_it_reads_abbreviated_star_counts_like_the_cards_show(excerpt: str) -> None:
    """The last card shows "62.2k" for YOLO26, whose data-props says 62246 stars."""
    assert "62.2k</span>" in excerpt
    assert "&quot;githubStars&quot;:62246" in excerpt

    assert parse_abbreviated_count("62.2k") == 62200


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("62.2k", 62200),
        ("5.24k", 5240),
        ("1.2M", 1_200_000),
        ("812", 812),
        (" 57 ", 57),
        ("1,234", 1234),
        ("3K", 3000),
        ("", None),
        ("GitHub", None),
        ("1.2.3k", None),
    ],
)
def test_it_parses_abbreviated_counts(text: str, count: int | None) -> None:
    """Counts are exact integers: no float rounding on "5.24k"."""
    assert parse_abbreviated_count(text) == count


def test_it_returns_no_papers_for_a_page_with_empty_data_props() -> None:
    """A day without papers still has its DailyPapers div; that is not an error."""
    page = (
        '<html><body><div class="SVELTE_HYDRATER contents" data-target="DailyPapers" '
        'data-props="{&quot;canSubmit&quot;:false,&quot;dailyPapers&quot;:[]}"></div>'
        "</body></html>"
    )

    assert parse_html_page(page) == []


@pytest.mark.parametrize(
    "page",
    [
        "<!doctype html><html><head><title>Error</title></head>"
        "<body><h1>500</h1><p>Internal Error - We're working hard to fix this</p></body></html>",
        "<!DOCTYPE html><html lang='en-US'><head><title>Just a moment...</title></head>"
        "<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>",
        "<html><head><title>Hugging Face - Maintenance</title></head>"
        '<body><a href="/papers">Papers</a> <a href="/papers/trending">Trending</a></body></html>',
        "",
    ],
    ids=["error", "challenge", "maintenance", "empty"],
)
def test_it_raises_on_an_error_page_instead_of_returning_nothing(page: str) -> None:
    """A 200 error page must not look like a day without papers."""
    with pytest.raises(FeedShapeError, match="no DailyPapers data-props and no paper cards"):
        parse_html_page(page)


def test_it_says_why_data_props_was_unusable(excerpt: str) -> None:
    """Broken props and no cards: the message carries both facts and the page title."""
    page = excerpt[: excerpt.index("<!-- ===== D.")]

    with pytest.raises(FeedShapeError) as caught:
        parse_html_page(page)

    message = str(caught.value)
    assert "DailyPapers data-props is not valid JSON" in message
    assert "'Trending Papers - Hugging Face'" in message
    assert "\n" not in message


# --------------------------------------------------------------------------- parse_any


def test_it_sniffs_json_and_html(hf_fixtures: Path, excerpt: str) -> None:
    """`scrape --file` hands over bytes with or without a content type."""
    raw = (hf_fixtures / "api/daily_papers_2025-11-07.subset.json").read_bytes()

    papers, source = parse_any(raw)
    assert (len(papers), source) == (15, "api")
    assert parse_any(b"\xef\xbb\xbf" + raw, "application/json")[1] == "api"

    papers, source = parse_any(excerpt.encode(), "text/html; charset=utf-8")
    assert (len(papers), source) == (3, "html")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"paper": {"id": "2511.04570", "title": "Thinking', "invalid JSON"),
        (b"Service Unavailable", "neither JSON nor HTML"),
        (b"<html><title>Error</title></html>", "no DailyPapers data-props"),
    ],
)
def test_it_raises_shape_errors_for_unusable_bodies(body: bytes, message: str) -> None:
    """Truncated JSON, plain text and error pages are all FeedShapeError."""
    with pytest.raises(FeedShapeError, match=message):
        parse_any(body)
