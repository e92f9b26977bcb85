"""Looking papers up by id: the Hugging Face paper API, then arXiv's export API, over real sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from papers.feed import FeedClient, FeedShapeError
from papers.lookup import ARXIV_INTERVAL, IntervalGate, PaperLookup, parse_arxiv_feed, parse_hf_paper
from tests.feedserver import FeedServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ATOM = (FIXTURES / "arxiv" / "query_id_list.atom").read_bytes()
HF_PAPERS = FIXTURES / "hf" / "api" / "papers"
JSON = {"Content-Type": "application/json"}
ATOM_TYPE = {"Content-Type": "application/atom+xml; charset=utf-8"}


def hf_body(arxiv_id: str) -> bytes:
    return (HF_PAPERS / f"{arxiv_id}.json").read_bytes()


def lookup(server: FeedServer, *, sleeps: list[float] | None = None, **kwargs) -> PaperLookup:
    hf = FeedClient(server.url, max_retries=0, sleep=(sleeps if sleeps is not None else []).append)
    arxiv = FeedClient(f"{server.url}/api/query", max_retries=0)
    return PaperLookup(hf, arxiv, **kwargs)


def test_it_reads_an_arxiv_atom_answer_into_papers():
    attention, snapkv = parse_arxiv_feed(ATOM)

    assert attention.arxiv_id == "1706.03762"  # the version in the entry's id is dropped
    assert attention.title == "Attention Is All You Need"
    assert attention.authors[:2] == ("Ashish Vaswani", "Noam Shazeer")
    assert attention.published_at.isoformat() == "2017-06-12T17:57:34+00:00"
    assert attention.abstract.startswith("The dominant sequence transduction models are based on complex recurrent or")
    assert "\n" not in attention.abstract  # arXiv's hard line breaks are joined
    assert snapkv.title == "SnapKV: LLM Knows What You are Looking for Before Generation"
    assert snapkv.featured_on is None


def test_it_refuses_an_answer_that_is_not_atom():
    with pytest.raises(FeedShapeError, match="not an arXiv Atom answer"):
        parse_arxiv_feed(b"<html><body>Rate exceeded.</body></html>")


def test_it_leaves_out_arxiv_error_entries():
    error = ATOM.replace(b"http://arxiv.org/abs/1706.03762v7", b"http://arxiv.org/api/errors#incorrect_id_format")

    assert [p.arxiv_id for p in parse_arxiv_feed(error)] == ["2404.14469"]


def test_it_reads_a_hugging_face_paper_object_and_checks_its_id():
    paper = parse_hf_paper(hf_body("2511.14993"), arxiv_id="2511.14993")

    assert paper.title == "Kandinsky 5.0: A Family of Foundation Models for Image and Video Generation"
    assert "text-to-video models" in paper.ai_keywords
    with pytest.raises(FeedShapeError, match=r"asked for paper 2511\.08892"):
        parse_hf_paper(hf_body("2511.14993"), arxiv_id="2511.08892")


def test_it_asks_hugging_face_first_and_arxiv_only_for_the_rest(feed_server: FeedServer):
    feed_server.route("/api/papers/2511.14993", [(200, JSON, hf_body("2511.14993"))])
    feed_server.route("/api/query", [(200, ATOM_TYPE, ATOM)])

    with lookup(feed_server) as source:
        result = source.look_up(["2511.14993", "1706.03762", "2404.14469", "2511.99999"])

    assert sorted(p.arxiv_id for p in result.papers) == ["1706.03762", "2404.14469", "2511.14993"]
    assert result.missing == ["2511.99999"]
    assert result.left == []
    [arxiv_request] = [r for r in feed_server.requests if r.path == "/api/query"]
    assert arxiv_request.target == "/api/query?id_list=1706.03762,2404.14469,2511.99999&start=0&max_results=3"
    assert arxiv_request.headers["Accept"] == "application/atom+xml"


def test_it_asks_arxiv_when_hugging_face_fails(feed_server: FeedServer):
    feed_server.route("/api/papers/1706.03762", [(503, {}, b"down")])
    feed_server.route("/api/query", [(200, ATOM_TYPE, ATOM)])

    with lookup(feed_server) as source:
        result = source.look_up(["1706.03762"])

    assert [p.title for p in result.papers] == ["Attention Is All You Need"]
    assert any("HTTP 503" in note for note in result.notes)


def test_it_keeps_ids_for_later_when_arxiv_fails(feed_server: FeedServer):
    feed_server.route("/api/query", [(500, {}, b"")])

    with lookup(feed_server) as source:
        result = source.look_up(["1706.03762", "2404.14469"])

    assert result.papers == [] and result.missing == []
    assert result.left == ["1706.03762", "2404.14469"]


def test_it_asks_arxiv_in_batches_of_100_at_most_one_every_3_seconds(feed_server: FeedServer):
    feed_server.route("/api/query", [(200, ATOM_TYPE, ATOM)])
    ids = [f"2511.{n:05d}" for n in range(10000, 10150)]
    slept: list[float] = []
    now = [0.0]
    gate = IntervalGate(sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)), clock=lambda: now[0])

    with lookup(feed_server, arxiv_gate=gate) as source:
        result = source.look_up(ids)

    queries = [r.target for r in feed_server.requests if r.path == "/api/query"]
    assert [q.count(",") + 1 for q in queries] == [100, 50]
    assert slept == [ARXIV_INTERVAL]
    assert len(result.missing) == 150


def test_it_leaves_what_the_budget_does_not_reach(feed_server: FeedServer):
    feed_server.route("/api/papers/2511.14993", [(200, JSON, hf_body("2511.14993"))])
    feed_server.route("/api/papers/2511.08892", [(200, JSON, hf_body("2511.08892"), 5.0)])  # hangs past the budget
    feed_server.route("/api/query", [(200, ATOM_TYPE, ATOM)])

    with lookup(feed_server, parallel=1) as source:
        result = source.look_up(["2511.14993", "2511.08892", "1706.03762"], budget=0.5)

    assert [p.arxiv_id for p in result.papers] == ["2511.14993"]
    assert sorted(result.left) == ["1706.03762", "2511.08892"]
    assert result.missing == []
