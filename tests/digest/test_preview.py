"""The live preview: which recent papers a digest would contain, and why (the emails' ranking)."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client

from digest import selectors
from papers.models import Paper
from tests.factories import PaperFactory, signup_data

pytestmark = pytest.mark.django_db


def test_it_matches_topics_as_whole_phrases_with_a_reason(hf_papers: None) -> None:
    """'reinforcement learning' finds the papers about it and says so."""
    items = selectors.preview_papers(
        topics=["Reinforcement Learning"], excludes=[], authors=[], organizations=[], limit=10
    )
    ids = [paper.arxiv_id for paper, _ in items]
    assert {"2511.03773", "2511.03996", "2511.02280"} <= set(ids)
    assert all(reason == "matches: Reinforcement Learning" for _, reason in items)


def test_it_respects_word_boundaries(hf_papers: None) -> None:
    """'RL' matches the word RL, not the letters inside 'world'."""
    items = selectors.preview_papers(topics=["orld"], excludes=[], authors=[], organizations=[], limit=30)
    assert items == []


def test_it_leaves_out_excluded_phrases_hidden_and_withdrawn_papers(hf_papers: None) -> None:
    """Excludes win over topics; curators' hidden papers and withdrawn ones never show."""
    args = {"topics": ["reinforcement learning"], "authors": [], "organizations": [], "limit": 30}
    everything = {p.arxiv_id for p, _ in selectors.preview_papers(excludes=[], **args)}
    without_robots = {p.arxiv_id for p, _ in selectors.preview_papers(excludes=["humanoid"], **args)}
    assert "2511.03996" in everything - without_robots
    Paper.objects.filter(arxiv_id="2511.03773").update(hidden=True)
    Paper.objects.filter(arxiv_id="2511.02280").update(withdrawn_at="2025-11-08T00:00:00Z")
    left = {p.arxiv_id for p, _ in selectors.preview_papers(excludes=[], **args)}
    assert not {"2511.03773", "2511.02280"} & left


def test_it_follows_authors_and_organizations(hf_papers: None) -> None:
    """Authors match by full name, organizations as phrases; the reason names them."""
    [(paper, reason)] = selectors.preview_papers(
        topics=[], excludes=[], authors=["jingqi tong"], organizations=[], limit=10
    )
    assert paper.arxiv_id == "2511.04570"
    assert reason == "follows: Jingqi Tong"
    items = selectors.preview_papers(topics=[], excludes=[], authors=[], organizations=["nvidia"], limit=10)
    assert [(p.arxiv_id, r) for p, r in items] == [("2511.03929", "follows: NVIDIA")]


def test_it_ranks_more_matches_first_and_honours_the_limit(hf_papers: None) -> None:
    """A paper matching several topics comes first and names them all."""
    items = selectors.preview_papers(
        topics=["reinforcement learning", "multimodal large language models"],
        excludes=[],
        authors=[],
        organizations=[],
        limit=2,
    )
    assert len(items) == 2
    assert items[0][0].arxiv_id == "2511.02280"
    assert items[0][1] == "matches: multimodal large language models, reinforcement learning"


def test_it_looks_at_the_latest_seven_days_that_have_papers() -> None:
    """Old papers drop out once seven newer days have papers, however long ago those were."""
    old = PaperFactory(title="Diffusion of old", featured_on=PaperFactory._meta.declarations["featured_on"])
    for n in range(1, 8):
        PaperFactory(title=f"Diffusion day {n}", featured_on=old.featured_on + timedelta(days=30 + n))
    titles = [
        p.title
        for p, _ in selectors.preview_papers(topics=["diffusion"], excludes=[], authors=[], organizations=[], limit=30)
    ]
    assert len(titles) == 7
    assert "Diffusion of old" not in titles


def test_it_serves_the_preview_fragment(client: Client, hf_papers: None) -> None:
    """GET /preview answers an HTML fragment with titles and reasons."""
    response = client.get("/preview", {"topics": "humanoid", "max_papers": "3"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert "Learning Vision-Driven Reactive Soccer Skills for Humanoid Robots" in page
    assert "matches: humanoid" in page


def test_it_treats_garbage_in_the_preview_leniently(client: Client, hf_papers: None) -> None:
    """Half-typed or hostile input never breaks the preview."""
    response = client.get("/preview", {"topics": "a\r\n\x00," * 5000, "max_papers": "lots"})
    assert response.status_code == 200


def test_it_limits_previews_per_ip(client: Client, settings) -> None:
    settings.PREVIEW_PER_IP_PER_MINUTE = 2
    assert [client.get("/preview", {"topics": "x"}).status_code for _ in range(3)] == [200, 200, 429]


def test_it_previews_without_javascript(signup: Callable, hf_papers: None) -> None:
    """The Preview button re-renders the page with the typed values and the matches; nothing is stored."""
    response = signup(action="preview", topics="humanoid", email="ada@example.org")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'value="humanoid"' in page
    assert 'value="ada@example.org"' in page
    assert "Learning Vision-Driven Reactive Soccer Skills for Humanoid Robots" in page
    assert "error-summary" not in page
    from digest.models import Subscriber

    assert not Subscriber.objects.exists()


def test_it_suggests_recent_keywords_on_the_signup_page(client: Client, hf_papers: None) -> None:
    """The most common keywords of recent papers are offered as topics."""
    assert selectors.topic_suggestions()[0] == "reinforcement learning"
    page = client.get("/").content.decode()
    assert 'data-add-topic="reinforcement learning"' in page
    assert "Popular in recent papers: reinforcement learning," in page


def test_it_renders_the_signup_page_with_accessible_labels(client: Client) -> None:
    """Every visible input has a label; the page loads nothing from elsewhere."""
    page = client.get("/").content.decode()
    for name in ("email", "topics", "excludes", "authors", "organizations", "send_hour", "time_zone",
                 "max_papers"):  # fmt: skip
        assert f'<label for="id_{name}"' in page, name
    assert 'name="csrfmiddlewaretoken"' in page
    assert "http://" not in page.replace("http://127.0.0.1", "").replace("http://testserver", "")
    assert "https://" not in page


def test_it_keeps_signup_data_helper_in_sync_with_the_form() -> None:
    """The tests' signup_data posts every field of the form."""
    from digest.forms import SignupForm

    assert set(SignupForm.base_fields) <= set(signup_data())


def test_it_never_caches_what_a_visitor_typed_into_the_next_visitors_form(signup: Callable, client: Client) -> None:
    """A no-JavaScript preview with no topics showed the typed values as the form's initial
    ones, and the page cached that as the empty form for ten minutes: the next visitors saw
    someone's email, excludes, channel and count."""
    typed = signup(
        action="preview", topics="", email="stranger@example.org", excludes="secret hobby", channel="feed",
        max_papers="27",
    )  # fmt: skip
    assert 'value="stranger@example.org"' in typed.content.decode()  # the visitor sees what they typed
    page = client.get("/").content.decode()
    for leaked in ("stranger@example.org", "secret hobby", 'value="27"'):
        assert leaked not in page
    assert 'value="feed" id="id_channel_1" checked' not in page and 'data-fresh="1"' in page
