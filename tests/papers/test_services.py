import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from papers import services
from papers.feed import parse_api_items
from papers.models import Paper, PaperSnapshot, ScrapeRun

pytestmark = pytest.mark.django_db

DAY = date(2025, 11, 7)


@pytest.fixture
def day_file(fixtures_dir: Path) -> Path:
    return fixtures_dir / "hf" / "api" / "daily_papers_2025-11-07.subset.json"


def test_it_stores_every_paper_of_a_saved_day_with_exact_fields(day_file: Path) -> None:
    """`scrape --file` stores all 15 papers of 2025-11-07 with normalized fields and links."""
    run = services.scrape_file(path=day_file)

    assert run.status == ScrapeRun.Status.OK
    assert (run.day, run.papers_seen, run.papers_new, run.papers_updated) == (DAY, 15, 15, 0)
    assert Paper.objects.filter(featured_on=DAY).count() == 15
    paper = Paper.objects.get(arxiv_id="2511.04570")
    assert paper.title == "Thinking with Video: Video Generation as a Promising Multimodal Reasoning Paradigm"
    assert paper.abstract.startswith('"Thinking with Text" and "Thinking with Images" paradigm significantly improve')
    assert "\n" not in paper.abstract
    assert paper.authors[:3] == ["Jingqi Tong", "Yurong Mou", "Hangcheng Li"]
    assert len(paper.authors) == 14
    assert paper.organization == "OpenMOSS"
    # paper.publishedAt (arXiv, UTC), not the outer field that is shifted to US Eastern.
    assert paper.published_at == datetime(2025, 11, 6, 17, 25, 23, tzinfo=UTC)
    assert (paper.upvotes, paper.num_comments, paper.github_stars) == (242, 5, 309)
    assert paper.github_repo == "https://github.com/tongjingqi/Thinking-with-Video"
    assert paper.project_page == "https://thinking-with-video.github.io/"
    assert paper.thumbnail == "https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/2511.04570.png"
    assert paper.ai_keywords[:2] == ["Thinking with Text", "Thinking with Images"]
    assert paper.ai_summary.startswith('The "Thinking with Video" paradigm enhances multimodal reasoning')
    assert paper.arxiv_url == "https://arxiv.org/abs/2511.04570"
    assert paper.pdf_url == "https://arxiv.org/pdf/2511.04570"
    assert paper.hf_url.endswith("/papers/2511.04570")
    assert not paper.is_withdrawn
    assert PaperSnapshot.objects.filter(run=run).count() == 15


def test_it_updates_counts_and_never_duplicates_on_a_rescrape(day_file: Path, tmp_path: Path) -> None:
    """Scraping the same day twice leaves the same rows, with the newer counts and a second snapshot."""
    services.scrape_file(path=day_file)
    items = json.loads(day_file.read_text())
    items[0]["paper"]["upvotes"] = 300
    changed = tmp_path / "again.json"
    changed.write_text(json.dumps(items))

    run = services.scrape_file(path=changed)

    assert (run.papers_seen, run.papers_new, run.papers_updated) == (15, 0, 1)
    assert Paper.objects.count() == 15
    assert Paper.objects.get(arxiv_id="2511.04570").upvotes == 300
    assert list(
        PaperSnapshot.objects.filter(paper__arxiv_id="2511.04570").order_by("run_id").values_list("upvotes", flat=True)
    ) == [242, 300]


def test_it_keeps_curator_decisions_across_scrapes(day_file: Path) -> None:
    services.scrape_file(path=day_file)
    Paper.objects.filter(arxiv_id="2511.04570").update(hidden=True)

    services.scrape_file(path=day_file)

    assert Paper.objects.get(arxiv_id="2511.04570").hidden is True


def test_it_marks_withdrawn_papers_but_keeps_them(day_file: Path, tmp_path: Path) -> None:
    items = json.loads(day_file.read_text())
    items[1]["paper"]["withdrawnAt"] = "2025-11-09T08:00:00.000Z"
    path = tmp_path / "withdrawn.json"
    path.write_text(json.dumps(items))

    services.scrape_file(path=path)

    paper = Paper.objects.get(arxiv_id=items[1]["paper"]["id"])
    assert paper.is_withdrawn
    assert paper.withdrawn_at == datetime(2025, 11, 9, 8, 0, tzinfo=UTC)


def test_it_fails_and_alerts_on_a_file_that_is_not_the_feed(tmp_path: Path) -> None:
    """A saved error page gives a failed run, an email to ADMINS and stores nothing."""
    page = tmp_path / "error.html"
    page.write_text("<html><head><title>503 Service Unavailable</title></head><body>Try later</body></html>")

    run = services.scrape_file(path=page)

    assert run.status == ScrapeRun.Status.FAILED
    assert run.error
    assert Paper.objects.count() == 0
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["curators@example.org"]
    assert "Scrape failed" in mail.outbox[0].subject


def _fake_day_runs(counts: dict[date, int]) -> None:
    for day, count in counts.items():
        ScrapeRun.objects.create(source=ScrapeRun.Source.DAILY, day=day, status=ScrapeRun.Status.OK, papers_seen=count)


def _run_for(day: date, seen: int) -> ScrapeRun:
    return ScrapeRun(source=ScrapeRun.Source.DAILY, day=day, papers_seen=seen)


def test_it_judges_an_empty_past_weekday_broken_but_not_a_weekend() -> None:
    assert "no papers" in services.judge_day(_run_for(date(2025, 11, 7), 0))  # a Friday
    assert services.judge_day(_run_for(date(2025, 11, 8), 0)) == ""  # a Saturday


def test_it_judges_a_count_far_below_the_recent_average_broken() -> None:
    _fake_day_runs({date(2025, 11, d): 40 for d in (3, 4, 5, 6)})

    assert "far below the recent average of 40" in services.judge_day(_run_for(DAY, 5))
    assert services.judge_day(_run_for(DAY, 30)) == ""


def test_it_does_not_judge_a_day_that_is_still_filling() -> None:
    """Early scrapes of today are partial by nature: no alert for a short list."""
    today = services.local_today()
    _fake_day_runs({today - timedelta(days=d): 40 for d in range(1, 8)})
    assert services.judge_day(_run_for(today, 1)) == ""


def test_the_scrape_command_prints_one_summary_line(day_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("scrape", "--file", str(day_file))

    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "scrape file 2025-11-07: ok via daily_papers_2025-11-07.subset.json, 15 papers (15 new, 0 updated), 0 requests"
    ]


def test_the_scrape_command_exits_nonzero_with_one_readable_line(tmp_path: Path) -> None:
    broken = tmp_path / "truncated.json"
    broken.write_text('[{"paper": {"id": "2511.04570", "title": "x"')

    with pytest.raises(CommandError) as excinfo:
        call_command("scrape", "--file", str(broken))

    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("scrape file: failed via truncated.json")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--date", "07-11-2025"], "--date must be YYYY-MM-DD"),
        (["--file", "/nonexistent/day.json"], "no such file"),
        (["--backfill", "0"], "--backfill must be between 1 and 365"),
        (["--trending", "--backfill", "3"], "--trending cannot be combined"),
    ],
)
def test_the_scrape_command_refuses_bad_arguments(args: list[str], expected: str) -> None:
    with pytest.raises(CommandError, match=expected):
        call_command("scrape", *args)
    assert ScrapeRun.objects.count() == 0


def test_it_stores_the_month_file_sorted_and_deduplicated(fixtures_dir: Path) -> None:
    path = fixtures_dir / "hf" / "api" / "daily_papers_month-2025-11.json"
    items = parse_api_items(json.loads(path.read_text()))

    run = services.scrape_file(path=path, day=date(2025, 11, 30))

    assert run.papers_seen == len(items) == Paper.objects.count()
    assert len({p.arxiv_id for p in items}) == len(items)
