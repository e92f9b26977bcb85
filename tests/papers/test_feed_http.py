"""FeedClient against a real HTTP server on 127.0.0.1 serving saved HF data."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from papers.feed import USER_AGENT, FeedClient, FeedError, parse_api_items

DAY = date(2025, 11, 7)
API = "/api/daily_papers?date=2025-11-07&limit=100"
PAGE = "/papers/date/2025-11-07"
JSON = {"Content-Type": "application/json; charset=utf-8"}
HTML = {"Content-Type": "text/html; charset=utf-8"}
ERROR_PAGE = (
    b"<!doctype html><html><head><title>Error</title></head><body><h1>500</h1><p>Internal Error</p></body></html>"
)


def api_page(p: int) -> str:
    return f"{API}&p={p}"


def ok_json(data: object, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return 200, {**JSON, **(headers or {})}, json.dumps(data, ensure_ascii=False).encode()


def minimal_items(start: int, count: int) -> list[dict[str, Any]]:
    """Small but valid items, for tests about paging rather than content."""
    return [
        {
            "paper": {
                "id": f"2511.{n:05d}",
                "title": f"Paper {n}",
                "publishedAt": "2025-11-06T17:25:23.000Z",
                "upvotes": n,
            },
            "numComments": 0,
        }
        for n in range(start, start + count)
    ]


@pytest.fixture
def month_items(hf_fixtures: Path) -> list[dict[str, Any]]:
    return json.loads((hf_fixtures / "api/daily_papers_month-2025-11.json").read_text("utf-8"))


@pytest.fixture
def nov7_items(hf_fixtures: Path) -> list[dict[str, Any]]:
    return json.loads((hf_fixtures / "api/daily_papers_2025-11-07.subset.json").read_text("utf-8"))


@pytest.fixture
def excerpt(hf_fixtures: Path) -> str:
    return (hf_fixtures / "html/papers_trending_2026-10-07.excerpts.html").read_text("utf-8")


@pytest.fixture
def page_with_props(excerpt: str) -> Callable[[list[dict[str, Any]]], bytes]:
    """The real trending page markup with its DailyPapers data-props swapped for items."""

    def render(items: list[dict[str, Any]]) -> bytes:
        marker = 'data-target="DailyPapers" data-props="'
        start = excerpt.index(marker) + len(marker)
        end = excerpt.index('"', start)
        props = html.escape(json.dumps({"canSubmit": False, "dailyPapers": items}), quote=True)
        return (excerpt[:start] + props + excerpt[end:]).encode()

    return render


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(feed_server: Any, sleeps: list[float]) -> Iterator[Callable[..., FeedClient]]:
    clients: list[FeedClient] = []

    def make(**options: Any) -> FeedClient:
        options.setdefault("sleep", sleeps.append)
        options.setdefault("timeout", 5.0)
        client = FeedClient(feed_server.url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --------------------------------------------------------------------------- paging


def test_it_follows_link_next_headers(feed_server: Any, make_client: Any, month_items: list) -> None:
    """Five pages of the real month, chained by absolute and relative Link headers."""
    pages = [month_items[i : i + 100] for i in range(0, 412, 100)]
    cursors = ["/api/daily_papers?cursor=b", "/api/daily_papers?cursor=c", "/api/daily_papers?cursor=d"]
    feed_server.route(
        api_page(0),
        [ok_json(pages[0], {"Link": f'<{feed_server.url}/api/daily_papers?cursor=a>; rel="next"'})],
    )
    feed_server.route("/api/daily_papers?cursor=a", [ok_json(pages[1], {"Link": f'<{cursors[0]}>; rel="next"'})])
    feed_server.route(cursors[0], [ok_json(pages[2], {"Link": f'<{cursors[1]}>; rel="next"'})])
    feed_server.route(cursors[1], [ok_json(pages[3], {"Link": f'<{cursors[2]}>; rel="next"'})])
    feed_server.route(cursors[2], [ok_json(pages[4])])

    result = make_client().daily(DAY)

    assert feed_server.targets() == [api_page(0), "/api/daily_papers?cursor=a", *cursors]
    assert (result.source, result.requests, result.not_modified, result.notes) == ("api", 5, False, [])
    assert result.url == feed_server.url + api_page(0)
    assert len(result.papers) == 412
    assert result.papers == parse_api_items(month_items)


def test_it_counts_pages_when_there_is_no_link(feed_server: Any, make_client: Any, month_items: list) -> None:
    """Without Link, p goes up until a page is shorter than the limit (412 = 4x100 + 12)."""
    for p in range(5):
        feed_server.route(api_page(p), [ok_json(month_items[p * 100 : p * 100 + 100])])

    result = make_client().daily(DAY)

    assert feed_server.targets() == [api_page(p) for p in range(5)]
    assert result.requests == 5
    assert [p.arxiv_id for p in result.papers] == [p.arxiv_id for p in parse_api_items(month_items)]


def test_it_stops_on_an_empty_page(feed_server: Any, make_client: Any) -> None:
    """Exactly 200 papers: the third page is empty and ends the day."""
    feed_server.route(api_page(0), [ok_json(minimal_items(0, 100))])
    feed_server.route(api_page(1), [ok_json(minimal_items(100, 100))])
    feed_server.route(api_page(2), [ok_json([])])

    result = make_client().daily(DAY)

    assert result.requests == 3
    assert len(result.papers) == 200
    assert result.papers[0].arxiv_id == "2511.00199"


def test_it_caps_runaway_paging(feed_server: Any, make_client: Any) -> None:
    """A server that never runs out of full pages is cut off at 50 pages."""
    feed_server.route("/api/daily_papers", [ok_json(minimal_items(0, 100))])

    result = make_client().daily(DAY)

    assert result.requests == 50
    assert result.notes == ["stopped paging after 50 pages"]
    assert len(result.papers) == 100


def test_it_stops_when_link_next_points_back(feed_server: Any, make_client: Any) -> None:
    """A Link loop is detected instead of being followed 50 times."""
    loop = {"Link": f'<{api_page(0)}>; rel="next"'}
    feed_server.route(api_page(0), [ok_json(minimal_items(0, 100), loop)])

    result = make_client().daily(DAY)

    assert result.requests == 1
    assert result.notes == [f"stopped paging: {feed_server.url}{api_page(0)} was already fetched"]


# --------------------------------------------------------------------------- retries


def test_it_honours_retry_after_on_429(
    feed_server: Any, make_client: Any, sleeps: list[float], nov7_items: list
) -> None:
    """Retry-After in seconds is obeyed, capped at max_backoff."""
    feed_server.route(
        api_page(0),
        [(429, {"Retry-After": "7"}, b""), (429, {"Retry-After": "120"}, b""), ok_json(nov7_items)],
    )

    result = make_client(max_backoff=60.0).daily(DAY)

    assert sleeps == [7.0, 60.0]
    assert result.requests == 3
    assert len(result.papers) == 15


def test_it_reads_retry_after_as_an_http_date(
    feed_server: Any, make_client: Any, sleeps: list[float], nov7_items: list
) -> None:
    """An HTTP-date in the past means now; far in the future means max_backoff."""
    feed_server.route(
        api_page(0),
        [
            (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, b""),
            (503, {"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"}, b""),
            ok_json(nov7_items),
        ],
    )

    make_client(max_backoff=30.0).daily(DAY)

    assert sleeps == [0.0, 30.0]


def test_it_retries_server_errors_with_jittered_backoff(
    feed_server: Any, make_client: Any, sleeps: list[float], nov7_items: list
) -> None:
    """5xx is retried; each wait is somewhere in [0, backoff * 2**attempt]."""
    feed_server.route(api_page(0), [(503, {}, b""), (500, {}, b""), (502, {}, b""), ok_json(nov7_items)])

    result = make_client(backoff=0.5).daily(DAY)

    assert result.requests == 4
    assert result.source == "api"
    assert len(sleeps) == 3
    for attempt, slept in enumerate(sleeps):
        assert 0 <= slept <= 0.5 * 2**attempt


def test_it_retries_a_read_timeout(feed_server: Any, make_client: Any, sleeps: list[float], nov7_items: list) -> None:
    """The first answer comes after the read timeout; the retry succeeds."""
    status, headers, body = ok_json(nov7_items)
    feed_server.route(api_page(0), [(status, headers, body, 2.0), (status, headers, body, 0)])

    result = make_client(timeout=0.3).daily(DAY)

    assert result.requests == 2
    assert len(sleeps) == 1
    assert len(result.papers) == 15


def test_it_does_not_retry_client_errors(
    feed_server: Any, make_client: Any, sleeps: list[float], page_with_props: Any, nov7_items: list
) -> None:
    """A 404 will not get better by asking again; the HTML page is tried instead."""
    feed_server.route(api_page(0), [(404, JSON, b'{"error":"Not Found"}')])
    feed_server.route(PAGE, [(200, HTML, page_with_props(nov7_items))])

    result = make_client().daily(DAY)

    assert feed_server.targets() == [api_page(0), PAGE]
    assert sleeps == []
    assert result.notes == [f"api failed: HTTP 404 from {feed_server.url}{api_page(0)}; used html fallback"]


def test_it_follows_a_redirect(feed_server: Any, make_client: Any, nov7_items: list) -> None:
    """Redirects are followed, and each hop counts as a request."""
    feed_server.route(api_page(0), [(301, {"Location": "/api/v2/daily_papers?date=2025-11-07"}, b"")])
    feed_server.route("/api/v2/daily_papers?date=2025-11-07", [ok_json(nov7_items)])

    result = make_client().daily(DAY)

    assert result.requests == 2
    assert result.source == "api"
    assert len(result.papers) == 15


def test_it_gives_up_on_a_redirect_loop(feed_server: Any, make_client: Any, sleeps: list[float]) -> None:
    """More than five redirects is an error that retrying cannot fix."""
    feed_server.route(api_page(0), [(302, {"Location": api_page(0)}, b"")])
    feed_server.route(PAGE, [(302, {"Location": PAGE}, b"")])

    with pytest.raises(FeedError, match="more than 5 redirects") as caught:
        make_client().daily(DAY)

    assert "api failed: more than 5 redirects" in str(caught.value)
    assert "html fallback failed: more than 5 redirects" in str(caught.value)
    assert sleeps == []
    assert len(feed_server.requests) == 12  # 6 hops each, no retries


# --------------------------------------------------------------------------- fallbacks


def test_it_falls_back_to_the_page_data_props_when_the_api_keeps_failing(
    feed_server: Any, make_client: Any, page_with_props: Any, nov7_items: list
) -> None:
    """API 500 forever: after max_retries the date page's data-props gives the same papers."""
    feed_server.route(api_page(0), [(500, {}, b"Internal Server Error")])
    feed_server.route(PAGE, [(200, HTML, page_with_props(nov7_items))])

    result = make_client(max_retries=2).daily(DAY)

    assert feed_server.targets() == [api_page(0)] * 3 + [PAGE]
    assert (result.source, result.url, result.requests) == ("html", feed_server.url + PAGE, 4)
    assert result.papers == parse_api_items(nov7_items)
    assert result.notes == [
        f"api failed: HTTP 500 from {feed_server.url}{api_page(0)}, gave up after 3 attempts; used html fallback"
    ]


def test_it_dates_cards_from_the_date_page(feed_server: Any, make_client: Any, excerpt: str) -> None:
    """Cards carry no featured date; the /papers/date/ page they came from does."""
    feed_server.route(api_page(0), [(503, {}, b"")])
    feed_server.route(PAGE, [(200, HTML, excerpt.encode())])

    result = make_client(max_retries=0).daily(DAY)

    assert [p.arxiv_id for p in result.papers] == ["2609.33439", "2610.02193", "2609.20519"]
    assert {p.submitted_at for p in result.papers} == {datetime(2025, 11, 7, tzinfo=UTC)}
    assert {p.featured_on for p in result.papers} == {DAY}


def test_it_fails_when_api_and_page_both_serve_error_pages(feed_server: Any, make_client: Any) -> None:
    """A 200 HTML error page is not retried and not mistaken for an empty day."""
    feed_server.route(api_page(0), [(200, HTML, ERROR_PAGE)])
    feed_server.route(PAGE, [(200, HTML, ERROR_PAGE)])

    with pytest.raises(FeedError) as caught:
        make_client().daily(DAY)

    message = str(caught.value)
    assert message.startswith(f"api failed: {feed_server.url}{api_page(0)} returned HTML, not JSON")
    assert message.endswith(
        f"html fallback failed: {feed_server.url}{PAGE}: "
        "page has no DailyPapers data-props and no paper cards (page title 'Error')"
    )
    assert "\n" not in message
    assert len(feed_server.requests) == 2


def test_it_fails_when_the_page_layout_changed(feed_server: Any, make_client: Any) -> None:
    """No data-props and no cards on a page that is otherwise fine is a loud failure."""
    feed_server.route(api_page(0), [(502, {}, b"")])
    redesigned = (
        b"<!doctype html><html><head><title>Daily Papers - Hugging Face</title></head><body>"
        b'<div data-target="PapersGrid" data-props="{}"><ul><li>Something new</li></ul></div>'
        b"</body></html>"
    )
    feed_server.route(PAGE, [(200, HTML, redesigned)])

    with pytest.raises(FeedError, match="no DailyPapers data-props and no paper cards"):
        make_client(max_retries=1).daily(DAY)


def test_it_does_not_retry_truncated_json(
    feed_server: Any, make_client: Any, nov7_items: list, page_with_props: Any
) -> None:
    """A cut-off body is a shape error straight away; the page is used instead."""
    status, headers, body = ok_json(nov7_items)
    feed_server.route(api_page(0), [(status, headers, body[:5000])])
    feed_server.route(PAGE, [(200, HTML, page_with_props(nov7_items))])

    result = make_client().daily(DAY)

    assert result.requests == 2
    assert result.source == "html"
    assert result.notes[0].startswith("api failed: invalid JSON (Unterminated string")


def test_it_refuses_bodies_over_max_bytes(feed_server: Any, make_client: Any, nov7_items: list) -> None:
    """Too big by Content-Length is refused up front, and by counting when it is absent."""
    status, headers, body = ok_json(nov7_items)
    feed_server.route(api_page(0), [(status, headers, body)])
    feed_server.route(PAGE, [(200, {**HTML, "Content-Length": None}, b"<p>" * 5000)])

    with pytest.raises(FeedError) as caught:
        make_client(max_bytes=10_000).daily(DAY)

    message = str(caught.value)
    assert f"api failed: {feed_server.url}{api_page(0)} is {len(body)} bytes, over the 10000 byte limit" in message
    assert f"html fallback failed: {feed_server.url}{PAGE} is over the 10000 byte limit" in message
    assert len(feed_server.requests) == 2


def test_it_fetches_trending_from_the_api(feed_server: Any, make_client: Any, nov7_items: list) -> None:
    """Trending is one API page sorted by HF's trending order."""
    feed_server.route("/api/daily_papers?sort=trending&limit=100", [ok_json(nov7_items)])

    result = make_client().trending()

    assert (result.source, result.requests) == ("api", 1)
    assert result.url == f"{feed_server.url}/api/daily_papers?sort=trending&limit=100"
    assert len(result.papers) == 15


def test_it_falls_back_to_the_trending_page(feed_server: Any, make_client: Any, excerpt: str) -> None:
    """The saved trending page (cards only, its props are elided) is the fallback."""
    feed_server.route("/api/daily_papers", [(500, {}, b"")])
    feed_server.route("/papers/trending", [(200, HTML, excerpt.encode())])

    result = make_client(max_retries=0).trending()

    assert result.source == "html"
    assert [p.arxiv_id for p in result.papers] == ["2609.33439", "2610.02193", "2609.20519"]
    assert all(p.submitted_at is None for p in result.papers)


# --------------------------------------------------------------------------- politeness


def test_it_identifies_itself(feed_server: Any, make_client: Any, nov7_items: list) -> None:
    """Every request carries the descriptive User-Agent and asks for JSON."""
    feed_server.route(api_page(0), [ok_json(nov7_items)])

    make_client().daily(DAY)

    [request] = feed_server.requests
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["Accept"] == "application/json"


def test_it_sends_validators_and_reports_not_modified(feed_server: Any, make_client: Any, nov7_items: list) -> None:
    """ETag / Last-Modified are remembered, sent back, and a 304 means no work."""
    validators = {"ETag": '"v1"', "Last-Modified": "Fri, 07 Nov 2025 12:00:00 GMT"}
    feed_server.route(api_page(0), [ok_json(nov7_items, validators), (304, validators, b"")])
    url = feed_server.url + api_page(0)

    client = make_client()
    first = client.daily(DAY)
    second = client.daily(DAY)
    # A new process gets the validators back from whoever persisted them.
    third = make_client(validators=client.validators).daily(DAY)

    assert client.validators == {url: {"etag": '"v1"', "last_modified": "Fri, 07 Nov 2025 12:00:00 GMT"}}
    assert (len(first.papers), first.not_modified) == (15, False)
    assert "If-None-Match" not in feed_server.requests[0].headers
    for result, request in ((second, feed_server.requests[1]), (third, feed_server.requests[2])):
        assert (result.papers, result.not_modified, result.source, result.requests) == ([], True, "api", 1)
        assert request.headers["If-None-Match"] == '"v1"'
        assert request.headers["If-Modified-Since"] == "Fri, 07 Nov 2025 12:00:00 GMT"


def test_it_waits_when_the_request_budget_is_spent(feed_server: Any, make_client: Any, nov7_items: list) -> None:
    """3 requests per 100 s: the 4th waits for the oldest slot, the 5th finds a free one."""
    feed_server.route(api_page(0), [ok_json(nov7_items)])
    now = [1000.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    client = make_client(budget=3, budget_window=100.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        client.daily(DAY)
    assert sleeps == []

    now[0] += 10
    client.daily(DAY)
    client.daily(DAY)

    assert sleeps == [90.0]
    assert len(feed_server.requests) == 5
