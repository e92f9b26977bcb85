"""Papers, pins and scrapes in the console."""

from datetime import date
from pathlib import Path

import pytest
from django.contrib.messages import get_messages

from papers.models import Paper, Pin, ScrapeRun
from tests.console.conftest import console
from tests.factories import PaperFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "papers/paper/"


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_it_lists_papers_with_thumbnail_keywords_and_pins_in_fixed_queries(
    curator_client, django_assert_max_num_queries
) -> None:
    papers = PaperFactory.create_batch(
        50, thumbnail="https://cdn.example.org/t.png", ai_keywords=["diffusion", "video"], github_stars=42
    )
    Pin.objects.create(paper=papers[0], day=date(2025, 11, 7))
    curator_client.get(console(CHANGELIST))  # warm the session and permission caches

    with django_assert_max_num_queries(8):
        response = curator_client.get(console(CHANGELIST))

    html = response.content.decode()
    assert html.count('src="https://cdn.example.org/t.png"') == 50
    assert "diffusion, video" in html
    assert papers[0].title in html


@pytest.mark.parametrize(
    ("term", "found"),
    [("Lovelace", True), ("Jürgen", True), ("2511.99999", True), ("speculative", True), ("nothing-like-it", False)],
)
def test_it_searches_title_abstract_arxiv_id_and_authors(curator_client, term: str, found: bool) -> None:
    PaperFactory(
        arxiv_id="2511.99999",
        title="Speculative decoding at scale",
        abstract="We draft tokens.",
        authors=["Ada Lovelace", "Jürgen Schmidhuber"],
    )
    PaperFactory(title="Another paper", authors=["Someone Else"])

    html = curator_client.get(console(CHANGELIST), {"q": term}).content.decode()

    assert ("Speculative decoding at scale" in html) is found
    assert "Another paper" not in html


def test_it_filters_pinned_and_hidden(curator_client) -> None:
    pinned = PaperFactory(title="Pinned one")
    PaperFactory(title="Hidden one", hidden=True)
    PaperFactory(title="Plain one")
    Pin.objects.create(paper=pinned, day=date(2025, 11, 7))

    pinned_page = curator_client.get(console(CHANGELIST), {"pinned": "yes"}).content.decode()
    hidden_page = curator_client.get(console(CHANGELIST), {"hidden__exact": "1"}).content.decode()

    assert "Pinned one" in pinned_page and "Plain one" not in pinned_page
    assert "Hidden one" in hidden_page and "Plain one" not in hidden_page


def test_it_pins_papers_for_a_date_with_a_note(curator, curator_client, run_action) -> None:
    first, second = PaperFactory.create_batch(2)

    form = run_action(curator_client, CHANGELIST, "pin_for_day", [first.pk, second.pk])
    assert form.status_code == 200
    assert b'name="day"' in form.content and first.title.encode() in form.content

    done = run_action(
        curator_client, CHANGELIST, "pin_for_day", [first.pk, second.pk], apply="Pin", day="2025-11-08", note="Read it"
    )

    assert done.status_code == 302
    pins = Pin.objects.order_by("paper_id")
    assert [(p.paper_id, p.day, p.note, p.created_by) for p in pins] == [
        (first.pk, date(2025, 11, 8), "Read it", curator),
        (second.pk, date(2025, 11, 8), "Read it", curator),
    ]
    assert messages_of(done) == ["Pinned 2 paper(s) for 2025-11-08."]


def test_it_shows_the_form_again_on_a_bad_date(curator_client, run_action) -> None:
    paper = PaperFactory()

    response = run_action(curator_client, CHANGELIST, "pin_for_day", [paper.pk], apply="Pin", day="next tuesday")

    assert response.status_code == 200
    assert b"Enter a valid date." in response.content
    assert not Pin.objects.exists()


def test_it_refuses_to_pin_a_hidden_paper(curator_client, run_action) -> None:
    paper = PaperFactory(hidden=True, arxiv_id="2511.00042")

    response = run_action(curator_client, CHANGELIST, "pin_for_day", [paper.pk], apply="Pin", day="2025-11-08")

    assert not Pin.objects.exists()
    assert messages_of(response) == ["hidden papers cannot be pinned (unhide them first): 2511.00042"]


def test_it_hides_and_unhides(curator_client, run_action) -> None:
    paper = PaperFactory()

    run_action(curator_client, CHANGELIST, "hide", [paper.pk])
    paper.refresh_from_db()
    assert paper.hidden

    run_action(curator_client, CHANGELIST, "unhide", [paper.pk])
    paper.refresh_from_db()
    assert not paper.hidden


def test_it_keeps_feed_fields_read_only(curator_client) -> None:
    paper = PaperFactory()

    html = curator_client.get(console(f"papers/paper/{paper.pk}/change/")).content.decode()

    assert 'name="hidden"' in html
    assert 'name="title"' not in html


def test_it_refuses_paper_actions_to_someone_without_the_role(client, django_user_model, run_action) -> None:
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(staff)
    paper = PaperFactory()

    response = run_action(client, CHANGELIST, "hide", [paper.pk])

    assert response.status_code == 403
    assert not Paper.objects.get().hidden


# --- scrapes ----------------------------------------------------------------------


@pytest.fixture
def feed(settings, feed_server, hf_fixtures: Path):
    settings.HF_BASE_URL = feed_server.url
    settings.HF_MAX_RETRIES = 0
    body = (hf_fixtures / "api" / "daily_papers_2025-11-07.subset.json").read_bytes()
    feed_server.route("/api/daily_papers", [(200, {"Content-Type": "application/json"}, body)])
    return feed_server


def test_it_scrapes_a_day_now_on_a_worker(curator_client, feed) -> None:
    """Tests run Celery eagerly: the queued task runs the real scrape against the local feed."""
    page = curator_client.get(console("papers/scraperun/"))
    assert b"Scrape a day now" in page.content

    response = curator_client.post(console("papers/scraperun/scrape/"), {"day": "2025-11-07"})

    assert response.status_code == 302
    run = ScrapeRun.objects.get()
    assert (run.day, run.status, run.papers_new) == (date(2025, 11, 7), ScrapeRun.Status.OK, 15)
    assert messages_of(response) == ["Scrape of 2025-11-07 queued; its run appears here when it starts."]


def test_it_refuses_to_scrape_the_future(curator_client) -> None:
    response = curator_client.post(console("papers/scraperun/scrape/"), {"day": "2999-01-01"})

    assert response.status_code == 200
    assert b"That day is in the future" in response.content
    assert not ScrapeRun.objects.exists()


def test_it_reruns_failed_days_only(curator_client, feed, run_action) -> None:
    failed = ScrapeRun.objects.create(source="daily", day=date(2025, 11, 7), status="failed", error="HTTP 503")
    ok = ScrapeRun.objects.create(source="daily", day=date(2025, 11, 6), status="ok")

    run_action(curator_client, "papers/scraperun/", "rerun", [failed.pk, ok.pk])

    new = ScrapeRun.objects.exclude(pk__in=[failed.pk, ok.pk]).get()
    assert (new.day, new.status) == (date(2025, 11, 7), ScrapeRun.Status.OK)


def test_it_lists_scrapes_with_their_error(curator_client, django_assert_max_num_queries) -> None:
    for n in range(50):
        ScrapeRun.objects.create(source="daily", day=date(2025, 10, 1), status="failed", error=f"HTTP 50{n % 10}")
    curator_client.get(console("papers/scraperun/"))

    with django_assert_max_num_queries(8):
        response = curator_client.get(console("papers/scraperun/"))

    assert b"HTTP 503" in response.content


def test_it_hides_scraping_from_someone_without_the_role(client, django_user_model) -> None:
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(staff)

    assert client.post(console("papers/scraperun/scrape/"), {"day": "2025-11-07"}).status_code == 403


def test_it_keeps_the_filters_when_searching_for_a_non_ascii_author(curator_client) -> None:
    PaperFactory(title="Visible one", authors=["Jürgen Schmidhuber"])
    PaperFactory(title="Hidden one", authors=["Jürgen Schmidhuber"], hidden=True)

    html = curator_client.get(console(CHANGELIST), {"q": "Jürgen", "hidden__exact": "0"}).content.decode()

    assert "Visible one" in html
    assert "Hidden one" not in html


def test_it_lists_papers_fetched_for_readers_which_are_on_no_day(curator_client) -> None:
    """A paper a reader named and we fetched has no featured day: the list, its date
    drill-down and the change page still work, and the day filter leaves it out."""
    listed = PaperFactory(featured_on=date(2025, 11, 7))
    fetched = PaperFactory(featured_on=None, title="Attention Is All You Need")

    everything = curator_client.get(console(CHANGELIST)).content.decode()
    one_day = curator_client.get(console(CHANGELIST), {"featured_on__year": "2025", "featured_on__month": "11"})
    change = curator_client.get(console(f"{CHANGELIST}{fetched.pk}/change/"))

    assert fetched.title in everything and listed.title in everything
    assert one_day.status_code == 200
    assert listed.title in one_day.content.decode() and fetched.title not in one_day.content.decode()
    assert change.status_code == 200
