"""Papers a reader likes: named on the forms, fetched when we lack them, voted on, never sent back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from digest import liked, selectors, sending, tokens
from digest.models import Delivery, LikedPaper, Subscriber
from papers.models import Paper
from tests.digest.conftest import ARXIV_ONLY, DIGEST_DAY, HF_ONLY, NOWHERE
from tests.factories import PaperFactory, SubscriberFactory, signup_data

pytestmark = pytest.mark.django_db

VIDEO = "2511.04570"  # on the 2025-11-07 list: "Thinking with Video"
State, Source = LikedPaper.State, LikedPaper.Source


def states(subscriber: Subscriber) -> dict[str, str]:
    return dict(subscriber.liked_papers.values_list("arxiv_id", "state"))


def manage_path(subscriber: Subscriber) -> str:
    return urlsplit(tokens.manage_url(subscriber)).path


def preferences(**overrides: str) -> dict[str, str]:
    data = signup_data(**overrides)
    for name in ("email", "website", "action"):
        data.pop(name)
    return data


# --------------------------------------------------------------------------- the signup form


def test_it_takes_papers_in_every_spelling_on_signup_and_needs_no_topic(
    signup: Callable, client: Client, hf_papers, paper_sources
):
    pasted = (
        f"{VIDEO}v2\n"
        f"https://arxiv.org/abs/{HF_ONLY[0]}v1, huggingface.co/papers/{ARXIV_ONLY[0]}\n"
        f"arxiv.org/pdf/{ARXIV_ONLY[1]}  doi.org/10.48550/arXiv.{NOWHERE}"
    )

    response = signup(topics="", seed_papers=pasted)

    assert response.status_code == 302
    subscriber = Subscriber.objects.get()
    assert subscriber.topics == []
    assert states(subscriber) == {
        VIDEO: State.FOUND,  # ours already
        HF_ONLY[0]: State.FOUND,  # from the Hugging Face paper API
        ARXIV_ONLY[0]: State.FOUND,  # from arXiv
        ARXIV_ONLY[1]: State.FOUND,
        NOWHERE: State.NOT_FOUND,
    }
    assert set(subscriber.liked_papers.values_list("source", flat=True)) == {Source.TYPED}
    fetched = Paper.objects.get(arxiv_id=HF_ONLY[0])
    assert fetched.title.startswith("Kandinsky 5.0") and fetched.featured_on is None
    assert Paper.objects.get(arxiv_id=ARXIV_ONLY[0]).title == "Attention Is All You Need"
    page = client.get(response["Location"]).content.decode()
    assert "Check your inbox" in page
    assert f"Not found on arXiv or Hugging Face: {NOWHERE}" in page


def test_it_names_a_malformed_id_in_the_field_error_and_stores_nothing(signup: Callable, paper_sources):
    response = signup(seed_papers=f"{HF_ONLY[0]}\nnot-a-paper, 2511.4570")

    assert response.status_code == 400
    page = response.content.decode()
    assert "Not an arXiv id: “not-a-paper”, “2511.4570”" in page
    assert not Subscriber.objects.exists()
    assert not LikedPaper.objects.exists()
    assert paper_sources.requests == []  # nothing fetched either


def test_it_refuses_more_than_1000_papers_with_the_limit_stated(signup: Callable, paper_sources):
    ids = "\n".join(f"2511.{n:05d}" for n in range(10000, 11001))

    response = signup(seed_papers=ids)

    assert response.status_code == 400
    assert "At most 1,000 papers in total, please (this would make 1,001)." in response.content.decode()
    assert not Subscriber.objects.exists()
    assert paper_sources.requests == []


def test_it_still_wants_a_topic_or_a_paper(signup: Callable):
    response = signup(topics="", seed_papers="")

    assert response.status_code == 400
    assert "Add at least one topic" in response.content.decode()


def test_it_fetches_30_ids_at_once_and_leaves_the_rest_to_the_background(
    signup: Callable, client: Client, paper_sources
):
    unknown = [f"2511.{n:05d}" for n in range(10000, 10032)]  # Hugging Face and arXiv know none
    pasted = "\n".join([*unknown, HF_ONLY[1], HF_ONLY[2]])

    response = signup(seed_papers=pasted)

    # The answer counted the 4 ids past the first 30 as still to come...
    assert "later=4" in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "4 of your papers are still being fetched in the background" in page
    # ...and the task the signup enqueued fetched them once it committed.
    subscriber = Subscriber.objects.get()
    assert states(subscriber)[HF_ONLY[1]] == State.FOUND
    assert states(subscriber)[HF_ONLY[2]] == State.FOUND
    assert not subscriber.liked_papers.filter(state=State.PENDING).exists()
    assert subscriber.liked_papers.filter(state=State.NOT_FOUND).count() == 32
    hf_asked = [r.path for r in paper_sources.requests if r.path.startswith("/api/papers/")]
    assert len(hf_asked) == len(set(hf_asked)) == 34  # each id asked once


def test_a_signup_of_a_subscribed_address_adds_no_papers(signup: Callable, hf_papers, paper_sources):
    active = SubscriberFactory(email="ada@example.org")

    signup(seed_papers=VIDEO)

    assert not active.liked_papers.exists()


# --------------------------------------------------------------------------- the manage page


def test_it_lists_your_papers_with_their_source_state_and_what_is_still_being_fetched(client: Client, hf_papers):
    ann = SubscriberFactory()
    video = Paper.objects.get(arxiv_id=VIDEO)
    LikedPaper.objects.create(subscriber=ann, arxiv_id=VIDEO, paper=video, source=Source.TYPED, state=State.FOUND)
    other = Paper.objects.get(arxiv_id="2511.03996")
    LikedPaper.objects.create(
        subscriber=ann, arxiv_id=other.arxiv_id, paper=other, liked=False, source=Source.VOTE, state=State.FOUND
    )
    LikedPaper.objects.create(subscriber=ann, arxiv_id=HF_ONLY[0], source=Source.FILE)
    LikedPaper.objects.create(subscriber=ann, arxiv_id=NOWHERE, source=Source.ZOTERO, state=State.NOT_FOUND)

    page = client.get(manage_path(ann)).content.decode()

    section = page[page.index('id="papers-title"') : page.index("<h2>Your data</h2>")]
    assert video.title in section and "6 Nov 2025" in section
    assert "Typed · liked" in section
    assert other.title in section and "Vote · disliked" in section
    assert f"<span>{HF_ONLY[0]}</span>" in section and "being fetched · Library file" in section
    assert "1 still being fetched." in section
    assert "Not found on arXiv or Hugging Face:" in section and NOWHERE in section
    assert section.count(">Remove</button>") == 4


def test_it_adds_papers_from_the_manage_page_and_then_a_topic_is_optional(client: Client, hf_papers, paper_sources):
    ann = SubscriberFactory(topics=["video generation"])

    response = client.post(manage_path(ann), preferences(topics="", seed_papers=f"{VIDEO} {HF_ONLY[0]}"))

    assert response.status_code == 302 and "done=papers-added" in response["Location"]
    assert states(ann) == {VIDEO: State.FOUND, HF_ONLY[0]: State.FOUND}
    ann.refresh_from_db()
    assert ann.topics == []
    # With papers liked, saving without a topic and without new papers is fine too.
    again = client.post(manage_path(ann), preferences(topics="", seed_papers=""))
    assert again.status_code == 302


def test_it_counts_the_papers_liked_already_towards_the_limit(client: Client):
    ann = SubscriberFactory()
    LikedPaper.objects.bulk_create(
        LikedPaper(subscriber=ann, arxiv_id=f"2511.{n:05d}", source=Source.FILE, state=State.NOT_FOUND)
        for n in range(10000, 10999)
    )

    response = client.post(manage_path(ann), preferences(seed_papers="2511.10000 2511.20000 2511.20001"))

    assert response.status_code == 400
    assert "At most 1,000 papers in total, please (this would make 1,001)." in response.content.decode()
    assert ann.liked_papers.count() == 999


def test_it_removes_a_paper_with_its_button_but_not_the_last_one_without_a_topic(client: Client, hf_papers):
    ann = SubscriberFactory(topics=[])
    one = LikedPaper.objects.create(subscriber=ann, arxiv_id=VIDEO, source=Source.TYPED)
    two = LikedPaper.objects.create(subscriber=ann, arxiv_id=NOWHERE, source=Source.TYPED, state=State.NOT_FOUND)

    response = client.post(manage_path(ann), {"action": "remove-paper", "paper": str(two.pk)})

    assert response.status_code == 302 and "done=paper-removed" in response["Location"]
    assert list(ann.liked_papers.values_list("pk", flat=True)) == [one.pk]
    last = client.post(manage_path(ann), {"action": "remove-paper", "paper": str(one.pk)})
    assert "done=keep-one" in last["Location"]
    assert ann.liked_papers.count() == 1
    assert "add a topic before removing it" in client.get(last["Location"]).content.decode()


def test_it_removes_only_the_subscribers_own_papers(client: Client):
    ann, bob = SubscriberFactory(), SubscriberFactory()
    bobs = LikedPaper.objects.create(subscriber=bob, arxiv_id=VIDEO, source=Source.TYPED)

    client.post(manage_path(ann), {"action": "remove-paper", "paper": str(bobs.pk)})

    assert LikedPaper.objects.filter(pk=bobs.pk).exists()


def test_my_data_holds_my_papers(client: Client):
    ann = SubscriberFactory()
    LikedPaper.objects.create(subscriber=ann, arxiv_id=VIDEO, source=Source.VOTE, liked=False)

    data = client.get(manage_path(ann) + "/data.json").json()

    [row] = data["liked_papers"]
    assert (row["arxiv_id"], row["liked"], row["source"], row["state"]) == (VIDEO, False, "vote", "pending")


# --------------------------------------------------------------------------- votes


def test_more_like_this_adds_a_liked_paper_and_less_like_this_makes_it_disliked(client: Client, ready_day):
    ann = SubscriberFactory(topics=["video generation"])
    url = tokens.url_for(ann, "feedback").replace(tokens.settings.SITE_URL, "")

    client.post(url, {"p": VIDEO, "v": "1"})

    row = ann.liked_papers.get()
    assert (row.arxiv_id, row.liked, row.source, row.state) == (VIDEO, True, Source.VOTE, State.FOUND)
    assert row.paper.arxiv_id == VIDEO
    client.post(url, {"p": VIDEO, "v": "1"})  # a repeated click changes nothing
    client.post(url, {"p": VIDEO, "v": "-1"})
    row = ann.liked_papers.get()
    assert (row.liked, row.source) == (False, Source.VOTE)


def test_a_vote_on_a_typed_paper_keeps_where_it_came_from(client: Client, ready_day):
    ann = SubscriberFactory(topics=["video generation"])
    LikedPaper.objects.create(subscriber=ann, arxiv_id=VIDEO, source=Source.TYPED)
    url = tokens.url_for(ann, "feedback").replace(tokens.settings.SITE_URL, "")

    client.post(url, {"p": VIDEO, "v": "-1"})

    row = ann.liked_papers.get()
    assert (row.liked, row.source, row.state) == (False, Source.TYPED, State.FOUND)


# --------------------------------------------------------------------------- digests


def senddigests() -> str:
    out = StringIO()
    call_command("senddigests", "--date", DIGEST_DAY.isoformat(), stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_named_paper_never_comes_back_in_a_digest(smtp_server, ready_day):
    ann = SubscriberFactory(email="ann@example.org", topics=["video generation"])
    bob = SubscriberFactory(email="bob@example.org", topics=["video generation"])
    video = Paper.objects.get(arxiv_id=VIDEO)
    LikedPaper.objects.create(subscriber=ann, arxiv_id=VIDEO, paper=video, source=Source.TYPED, state=State.FOUND)

    senddigests()

    bobs = Delivery.objects.get(subscriber=bob)
    assert VIDEO in [p["arxiv_id"] for p in bobs.papers]  # the paper is a pick for this topic...
    anns = Delivery.objects.get(subscriber=ann)
    assert VIDEO not in [p["arxiv_id"] for p in anns.papers]  # ...but never for the reader who named it
    for message in smtp_server.to("ann@example.org"):
        assert video.title not in message.message().as_string()


def test_a_disliked_paper_is_not_sent_in_a_quiet_days_note_either(smtp_server, ready_day):
    ann = SubscriberFactory(topics=["quantum chemistry"], quiet_day=Subscriber.QuietDay.NOTE)
    top = Paper.objects.filter(featured_on=date(2025, 11, 7)).order_by("-upvotes").first()
    LikedPaper.objects.create(subscriber=ann, arxiv_id=top.arxiv_id, paper=top, liked=False, source=Source.VOTE)

    senddigests()

    delivery = Delivery.objects.get(subscriber=ann)
    assert delivery.outcome == Delivery.Outcome.NOTE
    assert top.arxiv_id not in [p["arxiv_id"] for p in delivery.papers]


def test_the_batch_fetches_pending_papers_before_it_ranks(smtp_server, ready_day, paper_sources):
    ann = SubscriberFactory(topics=["video generation"])
    LikedPaper.objects.create(subscriber=ann, arxiv_id=HF_ONLY[0], source=Source.TYPED)
    LikedPaper.objects.create(subscriber=ann, arxiv_id=NOWHERE, source=Source.TYPED)

    senddigests()

    assert states(ann) == {HF_ONLY[0]: State.FOUND, NOWHERE: State.NOT_FOUND}
    assert ann.liked_papers.get(arxiv_id=HF_ONLY[0]).paper.featured_on is None
    assert Delivery.objects.get(subscriber=ann).status == Delivery.Status.SENT


def test_the_background_fetch_links_papers_another_reader_brought_in(paper_sources):
    ann, bob = SubscriberFactory(), SubscriberFactory()
    LikedPaper.objects.create(subscriber=ann, arxiv_id=HF_ONLY[0], source=Source.TYPED)
    LikedPaper.objects.create(subscriber=bob, arxiv_id=HF_ONLY[0], source=Source.FILE)

    liked.liked_papers_fetch(subscriber_ids=[ann.pk])
    requests = len(paper_sources.requests)
    liked.liked_papers_fetch(subscriber_ids=[bob.pk])

    assert states(bob) == {HF_ONLY[0]: State.FOUND}
    assert len(paper_sources.requests) == requests  # bob's came from our store


# --------------------------------------------------------------------------- the live preview


def test_the_preview_leaves_out_pasted_papers(client: Client, hf_papers):
    title = Paper.objects.get(arxiv_id=VIDEO).title

    plain = client.get("/preview", {"topics": "video generation"}).content.decode()
    pasted = client.get("/preview", {"topics": "video generation", "seed_papers": f"arxiv.org/abs/{VIDEO}"})

    assert title in plain
    page = pasted.content.decode()
    assert title not in page
    assert "1 of your papers is ours already and never shown back to you." in page


def test_the_preview_works_from_papers_alone_and_says_what_it_cannot_read(client: Client, hf_papers):
    response = client.get("/preview", {"seed_papers": f"{VIDEO}\n{HF_ONLY[0]} nonsense"})

    page = response.content.decode()
    assert response.status_code == 200
    assert '<ol class="preview-list">' in page
    assert "1 we fetch once you subscribe." in page
    assert "Not an arXiv id: “nonsense”." in page


def test_recent_days_leave_out_papers_fetched_for_readers(hf_papers):
    PaperFactory(arxiv_id=HF_ONLY[0], featured_on=None)

    assert selectors.recent_days() == [date(2025, 11, 7)]
    day, _ = selectors.latest_day_papers(limit=3)
    assert day == date(2025, 11, 7)


def test_any_change_links_papers_that_reached_the_store_and_hands_the_rest_to_the_background(
    hf_papers, django_capture_on_commit_callbacks
):
    ann = SubscriberFactory()
    LikedPaper.objects.create(subscriber=ann, arxiv_id=VIDEO, source=Source.FILE)  # a scrape stored it since

    with django_capture_on_commit_callbacks() as nothing_left:
        assert liked.liked_papers_changed(ann) == 0
    LikedPaper.objects.create(subscriber=ann, arxiv_id=HF_ONLY[0], source=Source.FILE)
    with django_capture_on_commit_callbacks() as one_left:
        assert liked.liked_papers_changed(ann) == 1

    assert ann.liked_papers.get(arxiv_id=VIDEO).paper.arxiv_id == VIDEO
    assert states(ann) == {VIDEO: State.FOUND, HF_ONLY[0]: State.PENDING}
    assert (len(nothing_left), len(one_left)) == (0, 1)  # the fetch task, once it commits


def test_the_manage_page_reads_your_papers_in_one_query_whatever_their_number(client: Client, hf_papers):
    def queries_for(count: int) -> int:
        reader = SubscriberFactory()
        for paper in Paper.objects.order_by("arxiv_id")[:count]:
            LikedPaper.objects.create(
                subscriber=reader, arxiv_id=paper.arxiv_id, paper=paper, source=Source.TYPED, state=State.FOUND
            )
        client.get(manage_path(reader))  # the topic suggestions' cache is filled once
        with CaptureQueriesContext(connection) as queries:
            page = client.get(manage_path(reader)).content.decode()
        assert page.count(">Remove</button>") == count
        return len(queries)

    assert queries_for(1) == queries_for(12) == 3  # the subscriber, their history, their papers


def test_a_day_whose_only_matches_are_named_papers_says_so(smtp_server, ready_day):
    ann = SubscriberFactory(topics=["video generation"])
    picks = sending.rank(sending.edition(DIGEST_DAY), [ann])[ann.pk]
    for paper in Paper.objects.filter(pk__in=[p.paper_id for p in picks]):
        LikedPaper.objects.create(subscriber=ann, arxiv_id=paper.arxiv_id, paper=paper, source=Source.FILE)

    senddigests()

    delivery = Delivery.objects.get(subscriber=ann)
    assert delivery.outcome == Delivery.Outcome.NOTHING_NEW
    assert "(it is one of your papers, never sent back to you)" in delivery.outcome_line


def test_a_worker_adds_papers_without_waiting_and_the_background_fetches_them(
    paper_sources, django_capture_on_commit_callbacks
):
    ann = SubscriberFactory()

    with django_capture_on_commit_callbacks(execute=True):
        added = liked.liked_papers_add(
            subscriber=ann, arxiv_ids=[HF_ONLY[0], NOWHERE], source=Source.ZOTERO, fetch_now=False
        )

    assert (added.added, added.pending) == (2, 2)  # nothing fetched before answering...
    assert states(ann) == {HF_ONLY[0]: State.FOUND, NOWHERE: State.NOT_FOUND}  # ...the task did, on commit
    with pytest.raises(liked.TooManyLikedPapers, match="At most 1,000 papers in total"):
        liked.liked_papers_add(
            subscriber=ann, arxiv_ids=[f"2511.{n:05d}" for n in range(10000, 10999)], source=Source.FILE
        )
    assert ann.liked_papers.count() == 2
