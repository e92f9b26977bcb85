"""Look papers up one by one, by arXiv id: the Hugging Face paper API, then arXiv's export API.

Pure on purpose, like papers/feed.py: no Django, no database. A reader names papers we may
never have seen on a daily list; Hugging Face answers ``GET /api/papers/<id>`` with the same
``paper`` object the daily list nests (or 404), and arXiv's export API answers an Atom feed
for an ``id_list`` of up to 100 ids, asking callers for at most one request every 3 seconds.

Both go through :class:`~papers.feed.FeedClient`, so they share its timeouts, retries, request
budget and size cap. A lookup may be given a deadline (a form submit waits at most a few
seconds): what is not reached by then is handed back as ``left``, for a later try.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

import feedparser

from papers.feed import FeedClient, FeedError, FeedNotFound, FeedPaper, FeedShapeError, parse_paper_object
from papers.ids import arxiv_id as read_arxiv_id

# arXiv's API terms: ids per id_list query, and seconds between two requests.
ARXIV_BATCH = 100
ARXIV_INTERVAL = 3.0
# Hugging Face lookups in flight at once: 30 ids in a 5 s budget need a few in parallel.
HF_PARALLEL = 4


def _clean(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_hf_paper(body: bytes, *, arxiv_id: str) -> FeedPaper:
    """The answer of ``/api/papers/<arxiv_id>``: one ``paper`` object, about that id."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedShapeError(f"paper {arxiv_id}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FeedShapeError(f"paper {arxiv_id}: expected an object, got {type(data).__name__}")
    try:
        paper = parse_paper_object(data)
    except FeedShapeError as exc:
        raise FeedShapeError(f"paper {arxiv_id}: {exc}") from None
    if read_arxiv_id(paper.arxiv_id) != arxiv_id:
        raise FeedShapeError(f"asked for paper {arxiv_id}, got {paper.arxiv_id}")
    return paper


def parse_arxiv_feed(body: bytes) -> list[FeedPaper]:
    """The papers of an arXiv API Atom answer. Entries that name no paper (arXiv's error
    entries, or an empty entry for an id it does not have) are left out."""
    parsed = feedparser.parse(body)
    version = getattr(parsed, "version", "")
    if not parsed.entries and (parsed.bozo or not version.startswith("atom")):
        problem = getattr(parsed, "bozo_exception", None) or f"a {version or 'non-feed'} document"
        raise FeedShapeError(f"not an arXiv Atom answer ({problem})")
    papers = []
    for entry in parsed.entries:
        found = read_arxiv_id(str(entry.get("id", "")))
        title = _clean(entry.get("title"))
        published = _datetime(entry.get("published"))
        if not found or not title or published is None:
            continue
        papers.append(
            FeedPaper(
                arxiv_id=found,
                title=title,
                abstract=_clean(entry.get("summary")),
                authors=tuple(name for a in entry.get("authors", []) if (name := _clean(a.get("name")))),
                organization="",
                published_at=published,
                submitted_at=None,
                upvotes=0,
                num_comments=0,
                github_repo="",
                github_stars=None,
                project_page="",
                thumbnail="",
                ai_summary="",
                ai_keywords=(),
                withdrawn_at=None,
            )
        )
    return papers


@dataclass
class LookupResult:
    papers: list[FeedPaper] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # neither source has it
    left: list[str] = field(default_factory=list)  # not reached in time, or a source failed: try later
    notes: list[str] = field(default_factory=list)


class IntervalGate:
    """At most one arXiv request every ``interval`` seconds within this process; the
    services give a shared gate instead, so that every process keeps the pace together."""

    def __init__(
        self,
        interval: float = ARXIV_INTERVAL,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._sleep = sleep
        self._clock = clock
        self._last: float | None = None

    def __call__(self, max_wait: float | None) -> bool:
        """Take the next slot, waiting at most ``max_wait`` seconds (None: as long as needed)."""
        now = self._clock()
        wait_for = 0.0 if self._last is None else max(0.0, self._last + self.interval - now)
        if max_wait is not None and wait_for > max_wait:
            return False
        if wait_for:
            self._sleep(wait_for)
        self._last = max(self._clock(), now + wait_for)
        return True


class PaperLookup:
    """Hugging Face first, arXiv for the rest; see the module docstring."""

    def __init__(
        self,
        hf: FeedClient,
        arxiv: FeedClient,
        *,
        arxiv_gate: Callable[[float | None], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        parallel: int = HF_PARALLEL,
    ) -> None:
        self.hf = hf
        self.arxiv = arxiv
        self.arxiv_gate = arxiv_gate or IntervalGate(clock=clock)
        self.parallel = max(1, parallel)
        self._clock = clock

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.hf.close()
        self.arxiv.close()

    @property
    def requests_made(self) -> int:
        return self.hf.requests_made + self.arxiv.requests_made

    def hf_paper(self, arxiv_id: str, *, timeout: float | None = None) -> FeedPaper | None:
        """The paper as Hugging Face knows it, or None when it answers 404."""
        try:
            url = f"{self.hf.base_url}/api/papers/{arxiv_id}"
            body = self.hf.fetch(url, accept="application/json", timeout=timeout)
        except FeedNotFound:
            return None
        return parse_hf_paper(body, arxiv_id=arxiv_id)

    def arxiv_papers(self, ids: Sequence[str], *, timeout: float | None = None) -> list[FeedPaper]:
        """One id_list query (at most ARXIV_BATCH ids); ids arXiv does not have are absent."""
        if len(ids) > ARXIV_BATCH:
            raise ValueError(f"at most {ARXIV_BATCH} ids per arXiv query, got {len(ids)}")
        url = f"{self.arxiv.base_url}?id_list={','.join(ids)}&start=0&max_results={len(ids)}"
        body = self.arxiv.fetch(url, accept="application/atom+xml", timeout=timeout)
        wanted = set(ids)
        return [p for p in parse_arxiv_feed(body) if p.arxiv_id in wanted]

    def look_up(self, ids: Iterable[str], *, budget: float | None = None) -> LookupResult:
        """Every id, Hugging Face first and arXiv for the rest, within ``budget`` seconds if given."""
        ids = list(dict.fromkeys(ids))
        deadline = None if budget is None else self._clock() + budget
        result = LookupResult()
        for_arxiv = self._from_hf(ids, deadline, result)
        for start in range(0, len(for_arxiv), ARXIV_BATCH):
            batch = for_arxiv[start : start + ARXIV_BATCH]
            remaining = self._remaining(deadline)
            out_of_time = remaining is not None and remaining <= 0
            if out_of_time or not self.arxiv_gate(remaining):
                result.left.extend(batch)
                continue
            try:
                found = self.arxiv_papers(batch, timeout=self._remaining(deadline))
            except FeedError as exc:
                result.notes.append(f"arXiv: {exc}")
                result.left.extend(batch)
                continue
            result.papers.extend(found)
            returned = {p.arxiv_id for p in found}
            result.missing.extend(i for i in batch if i not in returned)
        return result

    def _remaining(self, deadline: float | None) -> float | None:
        return None if deadline is None else deadline - self._clock()

    def _from_hf(self, ids: list[str], deadline: float | None, result: LookupResult) -> list[str]:
        """Ask Hugging Face about each id, a few at a time; returns the ids to ask arXiv about."""
        for_arxiv: list[str] = []
        queue = iter(ids)
        running: dict[Future[FeedPaper | None], str] = {}
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="paper-lookup")
        try:
            while True:
                while len(running) < self.parallel:
                    arxiv_id = next(queue, None)
                    if arxiv_id is None:
                        break
                    remaining = self._remaining(deadline)
                    if remaining is not None and remaining <= 0:
                        result.left.append(arxiv_id)
                        continue
                    running[pool.submit(self.hf_paper, arxiv_id, timeout=remaining)] = arxiv_id
                if not running:
                    break
                done, _ = wait(list(running), timeout=self._remaining(deadline), return_when=FIRST_COMPLETED)
                if not done:  # the deadline passed with lookups still out
                    result.left.extend(running.pop(f) for f in list(running))
                    result.left.extend(queue)
                    break
                for future in done:
                    arxiv_id = running.pop(future)
                    try:
                        paper = future.result()
                    except FeedError as exc:
                        # Hugging Face failing is no answer about the paper: arXiv may still have it.
                        result.notes.append(f"Hugging Face: {exc}")
                        for_arxiv.append(arxiv_id)
                        continue
                    if paper is None:
                        for_arxiv.append(arxiv_id)
                    else:
                        result.papers.append(paper)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        order = {i: n for n, i in enumerate(ids)}
        for_arxiv.sort(key=order.__getitem__)
        return for_arxiv
