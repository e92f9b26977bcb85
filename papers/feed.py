"""Fetch and parse Hugging Face Daily Papers into plain dataclasses.

Pure on purpose: no Django, no database. The JSON API is the primary source and the
HTML page (its ``DailyPapers`` hydration props, or failing that the rendered cards) is
the fallback, so one broken side does not stop the digest.

Data quirks handled here are documented in tests/fixtures/hf/README.md.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Self
from urllib.parse import urljoin

import httpx
from bs4 import BeautifulSoup, Comment, NavigableString, Tag

logger = logging.getLogger(__name__)

USER_AGENT = "paper-digest/0.1 (+https://github.com/; daily papers email digest)"

# HF caps `limit` at 100; asking for more just returns 100 and breaks the "short page
# means last page" rule.
API_PAGE_LIMIT = 100
MAX_DAILY_PAGES = 50
MAX_TRENDING_PAGES = 5
MAX_REDIRECTS = 5


class FeedError(Exception):
    """Feed unusable: message is one readable line."""


class FeedShapeError(FeedError):
    """Response parsed but has an unexpected shape/missing required fields."""


class FeedNotFound(FeedError):
    """The server answered 404: what was asked for does not exist there."""


@dataclass(frozen=True)
class FeedPaper:
    arxiv_id: str
    title: str
    abstract: str
    authors: tuple[str, ...]
    organization: str
    published_at: datetime
    submitted_at: datetime | None
    upvotes: int
    num_comments: int
    github_repo: str
    github_stars: int | None
    project_page: str
    thumbnail: str
    ai_summary: str
    ai_keywords: tuple[str, ...]
    withdrawn_at: datetime | None

    @property
    def featured_on(self) -> date | None:
        """The day the paper was on HF Daily Papers (UTC), if known."""
        return self.submitted_at.astimezone(UTC).date() if self.submitted_at else None


# --------------------------------------------------------------------------- parsing


def _clean(value: object) -> str:
    # arXiv titles and abstracts carry hard line breaks ("...Multimodal\n  Reasoning").
    return " ".join(value.split()) if isinstance(value, str) else ""


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return parse_abbreviated_count(value)
    return None


def _parse_datetime(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _org_name(org: object) -> str:
    if isinstance(org, dict):
        return _clean(org.get("fullname")) or _clean(org.get("name"))
    return _clean(org)


def _parse_item(index: int, item: object) -> FeedPaper:
    if not isinstance(item, dict):
        raise FeedShapeError(f"item {index}: expected an object, got {type(item).__name__}")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        raise FeedShapeError(f"item {index}: missing required field 'paper'")
    arxiv_id = paper.get("id")
    if not isinstance(arxiv_id, str) or not arxiv_id.strip():
        raise FeedShapeError(f"item {index}: missing required field 'paper.id'")
    arxiv_id = arxiv_id.strip()
    title = _clean(paper.get("title")) or _clean(item.get("title"))
    if not title:
        raise FeedShapeError(f"item {index} ({arxiv_id}): missing required field 'title'")
    # Only paper.publishedAt is UTC. The outer publishedAt is the same instant shifted
    # to US Eastern but still suffixed "Z", so it must never be used as a fallback.
    published_at = _parse_datetime(paper.get("publishedAt"))
    if published_at is None:
        raise FeedShapeError(f"item {index} ({arxiv_id}): missing or invalid required field 'paper.publishedAt'")

    authors = paper.get("authors")
    author_names = tuple(
        name
        for author in (authors if isinstance(authors, list) else [])
        if isinstance(author, dict) and not author.get("hidden")
        for name in [_clean(author.get("name"))]
        if name
    )
    keywords = paper.get("ai_keywords")
    stars = _as_int(paper.get("githubStars"))
    return FeedPaper(
        arxiv_id=arxiv_id,
        title=title,
        abstract=_clean(paper.get("summary")) or _clean(item.get("summary")),
        authors=author_names,
        organization=_org_name(paper.get("organization")) or _org_name(item.get("organization")),
        published_at=published_at,
        submitted_at=_parse_datetime(paper.get("submittedOnDailyAt")),
        upvotes=max(_as_int(paper.get("upvotes")) or 0, 0),
        num_comments=max(_as_int(item.get("numComments", paper.get("numComments"))) or 0, 0),
        github_repo=_clean(paper.get("githubRepo")),
        github_stars=stars,
        project_page=_clean(paper.get("projectPage")),
        thumbnail=_clean(item.get("thumbnail")),
        ai_summary=_clean(paper.get("ai_summary")),
        ai_keywords=tuple(kw for kw in (_clean(k) for k in (keywords if isinstance(keywords, list) else [])) if kw),
        withdrawn_at=_parse_datetime(paper.get("withdrawnAt")),
    )


def parse_paper_object(data: object) -> FeedPaper:
    """Parse one ``paper`` object, as the daily list nests it and ``/api/papers/<id>`` answers it."""
    return _parse_item(0, {"paper": data})


def _dedupe_and_sort(papers: Iterable[FeedPaper]) -> list[FeedPaper]:
    # API pages are each sorted by upvotes, their concatenation is not; and a paper can
    # move between pages while we page, so it may show up twice.
    best: dict[str, FeedPaper] = {}
    for paper in papers:
        kept = best.get(paper.arxiv_id)
        if kept is None or paper.upvotes > kept.upvotes:
            best[paper.arxiv_id] = paper
    return sorted(best.values(), key=lambda p: (-p.upvotes, p.arxiv_id))


def parse_api_items(data: object) -> list[FeedPaper]:
    """Parse decoded ``/api/daily_papers`` JSON (a list of items).

    Also accepts one item on its own (the trending page's item shape) and the
    ``DailyPapers`` props object (``{"dailyPapers": [...]}``). Returns papers deduped
    by arXiv id (most upvoted copy wins), sorted by upvotes desc, then arXiv id.
    """
    if isinstance(data, dict):
        if "paper" in data:
            data = [data]
        elif isinstance(data.get("dailyPapers"), list):
            data = data["dailyPapers"]
        else:
            keys = ", ".join(sorted(map(str, data))[:8])
            raise FeedShapeError(f"expected a list of daily paper items, got an object ({keys})")
    if not isinstance(data, list):
        raise FeedShapeError(f"expected a list of daily paper items, got {type(data).__name__}")
    return _dedupe_and_sort(_parse_item(i, item) for i, item in enumerate(data))


def parse_abbreviated_count(text: str) -> int | None:
    """Read a count as HF renders it: "812", "1,234", "5.24k", "62.2k", "1.2M"."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMbB]?)", text.strip().replace(",", ""))
    if not match:
        return None
    multiplier = {"": 1, "k": 1_000, "m": 1_000_000, "b": 1_000_000_000}[match[2].lower()]
    try:
        return int((Decimal(match[1]) * multiplier).to_integral_value())
    except InvalidOperation:
        return None


_PAPER_HREF = re.compile(r"^(?:https?://(?:www\.)?huggingface\.co)?/papers/(\d{4}\.\d{4,5})(?:v\d+)?/?([?#].*)?$")
_GITHUB_STARS = re.compile(r"GitHub\s*([\d.,]+\s*[kKmM]?)\s*$")
_UPVOTES = re.compile(r"Upvote\s*([\d.,]+\s*[kKmM]?)")
_CARD_DATE = re.compile(r"(?:Published on\s+)?([A-Z][a-z]{2})\s+(\d{1,2})(?:,\s*(\d{4}))?")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# Single-segment links on a card that are site sections, not organizations.
_NOT_ORGS = {"login", "join", "papers", "models", "datasets", "spaces", "docs", "pricing", "posts"}


@dataclass
class _Card:
    arxiv_id: str
    title: str = ""
    abstract: str = ""
    organization: str = ""
    published_on: date | None = None
    upvotes: int | None = None
    github_repo: str = ""
    github_stars: int | None = None
    thumbnail: str = ""

    def to_paper(self) -> FeedPaper:
        # Cards show no time of day; without a date, the arXiv id's YYMM is the month
        # the paper was first published, which beats dropping the paper.
        published_on = self.published_on or date(2000 + int(self.arxiv_id[:2]), int(self.arxiv_id[2:4]), 1)
        return FeedPaper(
            arxiv_id=self.arxiv_id,
            title=self.title,
            abstract=self.abstract,
            authors=(),
            organization=self.organization,
            published_at=datetime(published_on.year, published_on.month, published_on.day, tzinfo=UTC),
            submitted_at=None,
            upvotes=self.upvotes or 0,
            num_comments=0,
            github_repo=self.github_repo,
            github_stars=self.github_stars,
            project_page="",
            thumbnail=self.thumbnail,
            ai_summary="",
            ai_keywords=(),
            withdrawn_at=None,
        )


def _card_date(text: str, arxiv_id: str) -> date | None:
    match = _CARD_DATE.fullmatch(text)
    if not match or match[1] not in _MONTHS:
        return None
    # Cards of the current year may omit the year; the arXiv id carries it.
    year = int(match[3]) if match[3] else 2000 + int(arxiv_id[:2])
    try:
        return date(year, _MONTHS[match[1]], int(match[2]))
    except ValueError:
        return None


def _read_card_element(node: Tag, cards: dict[str, _Card], current: _Card | None) -> _Card | None:
    """Update the card being read from one element; return the card now being read."""
    href = node.get("href") if node.name == "a" else None
    href = href if isinstance(href, str) else ""
    paper_link = _PAPER_HREF.match(href)
    if paper_link:
        card = cards.setdefault(paper_link[1], _Card(paper_link[1]))
        in_heading = node.find_parent(["h1", "h2", "h3", "h4"]) is not None
        if not card.title and (in_heading or not paper_link[2]):
            card.title = _clean(node.get_text(" "))
        image = node.find("img")
        if not card.thumbnail and isinstance(image, Tag) and isinstance(image.get("src"), str):
            card.thumbnail = str(image["src"])
        return card
    if current is None:
        return None
    if href.startswith("https://github.com/") and not current.github_repo:
        current.github_repo = href
        stars = _GITHUB_STARS.search(_clean(node.get_text(" ")))
        current.github_stars = parse_abbreviated_count(stars[1]) if stars else None
    elif re.fullmatch(r"/[A-Za-z0-9][\w.-]*", href) and href[1:] not in _NOT_ORGS:
        # Organization pill: avatar plus display name, e.g. <a href="/UIUC-CS">.
        if not current.organization and node.find("img") is not None:
            current.organization = _clean(node.get_text(" "))
    elif node.name == "p" and not current.abstract:
        current.abstract = _clean(node.get_text(" "))
    return current


def _read_card_text(text: str, node: NavigableString, current: _Card) -> None:
    if current.upvotes is None and "Upvote" in text and node.parent is not None:
        upvotes = _UPVOTES.search(_clean(node.parent.get_text(" ")))
        if upvotes:
            current.upvotes = parse_abbreviated_count(upvotes[1])
    if current.published_on is None:
        current.published_on = _card_date(text, current.arxiv_id)


def _parse_cards(soup: BeautifulSoup) -> list[FeedPaper]:
    """Read paper cards in document order.

    Every card is rendered twice (desktop and mobile halves), so cards are merged by
    arXiv id and the first value seen for a field wins. Walking links in order rather
    than trusting <article> boundaries survives markup that html.parser nests oddly.
    """
    cards: dict[str, _Card] = {}
    scopes: list[Tag] = soup.find_all("article") or [soup]
    for scope in scopes:
        current: _Card | None = None
        for node in scope.descendants:
            if isinstance(node, Tag):
                current = _read_card_element(node, cards, current)
            elif current is not None and not isinstance(node, Comment):
                text = _clean(str(node))
                if text:
                    _read_card_text(text, node, current)
    return _dedupe_and_sort(card.to_paper() for card in cards.values() if card.title)


def parse_html_page(html: str) -> list[FeedPaper]:
    """Parse a /papers/date/YYYY-MM-DD or /papers/trending page.

    Prefers the ``DailyPapers`` hydration props (same items as the API); falls back to
    the rendered cards. A page with neither (error, challenge or maintenance page, or a
    changed layout) raises FeedShapeError rather than looking like a day without papers.
    """
    soup = BeautifulSoup(html, "html.parser")
    props_problem = ""
    host = soup.find(attrs={"data-target": "DailyPapers"})
    raw_props = host.get("data-props") if isinstance(host, Tag) else None
    if isinstance(raw_props, str):
        try:
            props = json.loads(raw_props)
            if not isinstance(props, dict) or not isinstance(props.get("dailyPapers"), list):
                raise FeedShapeError("DailyPapers data-props has no 'dailyPapers' list")
            return parse_api_items(props["dailyPapers"])
        except json.JSONDecodeError as exc:
            props_problem = f"DailyPapers data-props is not valid JSON ({exc.msg} at char {exc.pos})"
        except FeedShapeError as exc:
            props_problem = f"DailyPapers data-props: {exc}"
        logger.warning("%s; falling back to paper cards", props_problem)

    papers = _parse_cards(soup)
    if papers:
        return papers
    details = [props_problem] if props_problem else []
    if soup.title and _clean(soup.title.get_text()):
        details.append(f"page title {_clean(soup.title.get_text())[:80]!r}")
    suffix = f" ({'; '.join(details)})" if details else ""
    raise FeedShapeError(f"page has no DailyPapers data-props and no paper cards{suffix}")


def _decode_json(body: bytes | str) -> object:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise FeedShapeError(f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise FeedShapeError(f"invalid JSON (not UTF-8: {exc.reason})") from None


def parse_any(body: bytes | str, content_type: str = "") -> tuple[list[FeedPaper], str]:
    """Parse a saved API response or HTML page; returns (papers, "api" | "html")."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = text.lstrip("\ufeff")
    head = text.lstrip()[:1]
    content_type = content_type.lower()
    if head in ("[", "{") or ("json" in content_type and head != "<"):
        return parse_api_items(_decode_json(text)), "api"
    if head == "<" or "html" in content_type:
        return parse_html_page(text), "html"
    raise FeedShapeError("body is neither JSON nor HTML")


# --------------------------------------------------------------------------- fetching


@dataclass
class FetchResult:
    papers: list[FeedPaper]
    source: str
    url: str
    requests: int
    not_modified: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class _Page:
    content: bytes
    content_type: str
    encoding: str
    next_url: str | None


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class FeedClient:
    """HTTP client for HF Daily Papers with retries, a request budget and fallbacks."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        max_bytes: int = 20_000_000,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        budget: int = 500,
        budget_window: float = 300.0,
        user_agent: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        validators: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_bytes = max_bytes
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.budget = budget
        self.budget_window = budget_window
        # url -> {"etag": ..., "last_modified": ...}; callers persist it between runs.
        self.validators: dict[str, dict[str, str]] = dict(validators or {})
        self._sleep = sleep
        self._clock = clock
        self._sent_at: deque[float] = deque()
        # Lookups by id (papers/lookup.py) send from a few threads at once.
        self._lock = threading.Lock()
        # Every request sent, retries and redirects included; scrape records read it.
        self.requests_made = 0
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": user_agent or USER_AGENT},
            transport=transport,
            # A hook sees every hop of a redirect chain, so each one is counted and
            # budgeted, not only the request we started.
            event_hooks={"request": [self._before_request]},
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- public

    def daily(self, day: date) -> FetchResult:
        """Papers featured on ``day``: API first, the /papers/date/ page as fallback."""
        iso = day.strftime("%Y-%m-%d")

        def page_url(page: int) -> str:
            return f"{self.base_url}/api/daily_papers?date={iso}&limit={API_PAGE_LIMIT}&p={page}"

        featured = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return self._fetch(
            api=lambda: self._fetch_api(page_url(0), page_url, MAX_DAILY_PAGES),
            html_url=f"{self.base_url}/papers/date/{iso}",
            # Cards lack submittedOnDailyAt; the API always sets it to the page's midnight.
            fill_submitted_at=featured,
        )

    def trending(self) -> FetchResult:
        """Currently trending papers: API first, the /papers/trending page as fallback."""
        url = f"{self.base_url}/api/daily_papers?sort=trending&limit={API_PAGE_LIMIT}"
        return self._fetch(
            api=lambda: self._fetch_api(url, None, MAX_TRENDING_PAGES),
            html_url=f"{self.base_url}/papers/trending",
            fill_submitted_at=None,
        )

    def fetch(self, url: str, *, accept: str, timeout: float | None = None) -> bytes:
        """One GET with the client's retries and size cap; the body, or FeedError (FeedNotFound
        on a 404). ``timeout`` caps this request's waits below the client's own."""
        page = self._get(url, accept=accept, conditional=False, timeout=timeout)
        assert page is not None  # only conditional requests can be answered 304
        return page.content

    # -- sources

    def _fetch(
        self,
        *,
        api: Callable[[], FetchResult],
        html_url: str,
        fill_submitted_at: datetime | None,
    ) -> FetchResult:
        started = self.requests_made
        try:
            result = api()
        except FeedError as api_error:
            try:
                result = self._fetch_html(html_url, fill_submitted_at)
            except FeedError as html_error:
                raise FeedError(f"api failed: {api_error}; html fallback failed: {html_error}") from html_error
            result.notes.insert(0, f"api failed: {api_error}; used html fallback")
        result.requests = self.requests_made - started
        return result

    def _fetch_api(self, first_url: str, page_url: Callable[[int], str] | None, max_pages: int) -> FetchResult:
        papers: list[FeedPaper] = []
        notes: list[str] = []
        seen: set[str] = set()
        url, page = first_url, 0
        while True:
            seen.add(url)
            # Only the first page is conditional: if it is unchanged the day is, and a
            # 304 on a later page would leave us without that page's items.
            fetched = self._get(url, accept="application/json", conditional=page == 0)
            if fetched is None:
                return FetchResult([], "api", first_url, 0, not_modified=True, notes=notes)
            if fetched.content.lstrip()[:1] == b"<":
                raise FeedShapeError(f"{url} returned HTML, not JSON (content-type {fetched.content_type!r})")
            data = _decode_json(fetched.content)
            if not isinstance(data, list):
                raise FeedShapeError(f"{url}: expected a list of daily paper items, got {type(data).__name__}")
            try:
                papers.extend(parse_api_items(data))
            except FeedShapeError as exc:
                raise FeedShapeError(f"{url}: {exc}") from None
            page += 1
            if fetched.next_url:
                next_url: str | None = fetched.next_url
            elif page_url is not None and len(data) >= API_PAGE_LIMIT:
                next_url = page_url(page)
            else:
                next_url = None
            if not data or next_url is None:
                break
            if next_url in seen:
                notes.append(f"stopped paging: {next_url} was already fetched")
                break
            if page >= max_pages:
                notes.append(f"stopped paging after {max_pages} pages")
                break
            url = next_url
        return FetchResult(_dedupe_and_sort(papers), "api", first_url, 0, False, notes)

    def _fetch_html(self, url: str, fill_submitted_at: datetime | None) -> FetchResult:
        fetched = self._get(url, accept="text/html", conditional=True)
        if fetched is None:
            return FetchResult([], "html", url, 0, not_modified=True)
        try:
            text = fetched.content.decode(fetched.encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            text = fetched.content.decode("utf-8", errors="replace")
        try:
            papers = parse_html_page(text)
        except FeedShapeError as exc:
            raise FeedShapeError(f"{url}: {exc}") from None
        if fill_submitted_at is not None:
            papers = [p if p.submitted_at else dataclasses.replace(p, submitted_at=fill_submitted_at) for p in papers]
        return FetchResult(papers, "html", url, 0, False)

    # -- HTTP

    def _before_request(self, request: httpx.Request) -> None:
        with self._lock:
            self._wait_for_budget()
            self.requests_made += 1

    def _wait_for_budget(self) -> None:
        # Sliding window: at most `budget` request starts per `budget_window` seconds.
        now = self._clock()
        while self._sent_at and now - self._sent_at[0] >= self.budget_window:
            self._sent_at.popleft()
        if len(self._sent_at) >= self.budget:
            oldest = self._sent_at.popleft()
            wait = oldest + self.budget_window - now
            if wait > 0:
                self._sleep(wait)
            # Never trust a clock that did not move while we slept.
            now = max(self._clock(), oldest + self.budget_window)
        self._sent_at.append(now)

    def _get(self, url: str, *, accept: str, conditional: bool, timeout: float | None = None) -> _Page | None:
        """GET with retries; None means 304 Not Modified."""
        headers = {"Accept": accept}
        known = self.validators.get(url, {}) if conditional else {}
        if known.get("etag"):
            headers["If-None-Match"] = known["etag"]
        if known.get("last_modified"):
            headers["If-Modified-Since"] = known["last_modified"]

        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                extra = {"timeout": httpx.Timeout(timeout)} if timeout is not None else {}
                with self._client.stream("GET", url, headers=headers, **extra) as response:
                    status = response.status_code
                    if status == 304:
                        return None
                    if status == 429 or status >= 500:
                        problem = f"HTTP {status} from {url}"
                        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                    elif status == 404:
                        raise FeedNotFound(f"HTTP {status} from {url}")
                    elif not 200 <= status < 300:
                        raise FeedError(f"HTTP {status} from {url}")
                    else:
                        page = self._read(url, response)
                        if conditional:
                            self._remember_validators(url, response)
                        return page
            except httpx.TooManyRedirects:
                raise FeedError(f"more than {MAX_REDIRECTS} redirects from {url}") from None
            except httpx.TimeoutException as exc:
                problem = f"timed out fetching {url} ({type(exc).__name__})"
            except httpx.TransportError as exc:
                problem = f"could not fetch {url}: {_clean(str(exc)) or type(exc).__name__}"

            if attempt >= self.max_retries:
                raise FeedError(f"{problem}, gave up after {attempt + 1} attempts")
            cap = min(self.max_backoff, self.backoff * 2**attempt)
            # Full jitter keeps many clients from retrying in lockstep.
            delay = retry_after if retry_after is not None else random.uniform(0, cap)
            self._sleep(min(delay, self.max_backoff))
            attempt += 1

    def _read(self, url: str, response: httpx.Response) -> _Page:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FeedError(f"{url} is {declared} bytes, over the {self.max_bytes} byte limit")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise FeedError(f"{url} is over the {self.max_bytes} byte limit")
            chunks.append(chunk)
        next_link = response.links.get("next", {}).get("url")
        return _Page(
            content=b"".join(chunks),
            content_type=response.headers.get("Content-Type", ""),
            encoding=response.charset_encoding or "utf-8",
            next_url=urljoin(str(response.url), next_link) if next_link else None,
        )

    def _remember_validators(self, url: str, response: httpx.Response) -> None:
        remembered = {
            key: value
            for key, header in (("etag", "ETag"), ("last_modified", "Last-Modified"))
            if (value := response.headers.get(header))
        }
        if remembered:
            self.validators[url] = remembered
        else:
            self.validators.pop(url, None)
