"""The personal Atom feed: read by feedparser, checked against RFC 4287's rules, cheap to poll."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime
from urllib.parse import urlsplit

import feedparser
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from digest import sending, tokens
from digest.models import Delivery
from digest.sending import archive
from tests.digest.conftest import DIGEST_DAY
from tests.factories import SubscriberFactory
from tests.history import TOPIC, HistoryMaker

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def atom_problems(body: bytes) -> list[str]:
    """What RFC 4287 requires of a feed document and its entries (sections 4.1.1 to 4.2.15)."""
    problems = []
    root = ET.fromstring(body)  # noqa: S314 - our own server's answer
    if root.tag != f"{ATOM}feed":
        return [f"root element is {root.tag}"]

    def one(parent: ET.Element, name: str, where: str) -> ET.Element | None:
        found = parent.findall(f"{ATOM}{name}")
        if len(found) != 1:
            problems.append(f"{where} has {len(found)} atom:{name}, must have exactly one")
            return None
        return found[0]

    def dated(element: ET.Element | None, where: str) -> None:
        if element is not None and not RFC3339.match(element.text or ""):
            problems.append(f"{where} date {element.text!r} is not RFC 3339")

    def links(parent: ET.Element, where: str) -> None:
        alternates = set()
        for link in parent.findall(f"{ATOM}link"):
            if not link.get("href"):
                problems.append(f"{where} has a link without href")
            if link.get("rel", "alternate") == "alternate":
                key = (link.get("type"), link.get("hreflang"))
                if key in alternates:
                    problems.append(f"{where} has two alternate links of one type and language")
                alternates.add(key)

    one(root, "id", "feed")
    one(root, "title", "feed")
    dated(one(root, "updated", "feed"), "feed")
    links(root, "feed")
    if not any(link.get("rel") == "self" for link in root.findall(f"{ATOM}link")):
        problems.append("feed has no rel=self link (SHOULD)")
    feed_author = root.find(f"{ATOM}author") is not None
    ids = []
    for n, entry in enumerate(root.findall(f"{ATOM}entry")):
        where = f"entry {n}"
        entry_id = one(entry, "id", where)
        if entry_id is not None:
            ids.append(entry_id.text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", entry_id.text or ""):
                problems.append(f"{where} id {entry_id.text!r} is not an IRI")
        one(entry, "title", where)
        dated(one(entry, "updated", where), where)
        links(entry, where)
        if entry.find(f"{ATOM}content") is None and entry.find(f"{ATOM}summary") is None:
            problems.append(f"{where} has neither content nor summary")
        if not feed_author and entry.find(f"{ATOM}author") is None:
            problems.append(f"{where} has no author and neither has the feed")
    if len(ids) != len(set(ids)):
        problems.append("entry ids repeat")
    return problems


def path_of(url: str) -> str:
    return urlsplit(url).path


@pytest.fixture
def made(smtp_server, feed_server, tmp_path):
    subscriber = SubscriberFactory(email="ada@example.org", topics=[TOPIC], time_zone="Europe/Berlin", channel="both")
    return HistoryMaker(smtp=smtp_server, feed=feed_server, tmp=tmp_path).make(subscriber)


def test_it_serves_valid_atom_with_the_items_and_reasons_the_emails_carried(made, client: Client, smtp_server):
    response = client.get(path_of(tokens.feed_url(made.subscriber)))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert atom_problems(response.content) == []
    feed = feedparser.parse(response.content)
    assert (feed.bozo, feed.version) == (0, "atom10")
    entries = {e.id.rsplit(":", 1)[1]: e for e in feed.entries}

    # Every email's papers are in the feed, with the reason the email gave.
    for received in smtp_server.to("ada@example.org"):
        text = received.message().get_body(("plain",)).get_content()
        for arxiv_id in re.findall(r"^Paper: https?://\S+/papers/(\S+)$", text, re.M):
            assert arxiv_id in entries
            reason = re.search(r"\n\n(.+)\nPaper: \S+/papers/" + re.escape(arxiv_id), text).group(1)
            assert reason in entries[arxiv_id].summary
    # And on days without an email (feed only, refused, failed), what the digest held.
    for outcome in ("feed", "bounced", "failed"):
        delivery = Delivery.objects.get(subscriber=made.subscriber, digest_date=made.days[outcome])
        assert delivery.papers
        for item in delivery.papers:
            assert item["arxiv_id"] in entries
    expected = [
        item["arxiv_id"]
        for d in Delivery.objects.filter(subscriber=made.subscriber, status__in=archive.FEED_STATUSES).order_by(
            "-digest_date"
        )
        for item in d.papers
    ]
    assert [e.id.rsplit(":", 1)[1] for e in feed.entries] == expected  # newest first, one per paper
    entry = feed.entries[0]
    assert entry.link == f"https://huggingface.co/papers/{expected[0]}"
    assert {(link.rel, link.href) for link in entry.links} >= {
        ("alternate", f"https://huggingface.co/papers/{expected[0]}"),
        ("related", f"https://arxiv.org/abs/{expected[0]}"),
        ("enclosure", f"https://arxiv.org/pdf/{expected[0]}"),
    }
    assert entry.updated_parsed is not None
    assert entry.id == f"tag:127.0.0.1,2026:paper-digest:{made.subscriber.pk}:{expected[0]}"


def test_it_answers_a_conditional_get_with_304_in_fixed_queries(made, client: Client, django_assert_num_queries):
    path = path_of(tokens.feed_url(made.subscriber))
    with django_assert_num_queries(3):  # the subscriber, the deliveries, the papers
        response = client.get(path)
    etag, modified = response["ETag"], response["Last-Modified"]
    with django_assert_num_queries(2):
        assert client.get(path, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert client.get(path, HTTP_IF_MODIFIED_SINCE=modified).status_code == 304
    assert client.get(path, HTTP_IF_NONE_MATCH='"something else"').status_code == 200


def test_a_feed_request_costs_the_same_queries_whatever_it_holds(ready_day, smtp_server, client: Client):
    one = SubscriberFactory(topics=["reinforcement learning"], max_papers=1)
    many = SubscriberFactory(topics=["reinforcement learning", "video", "multimodal"], max_papers=30)
    sending.plan_date(DIGEST_DAY)
    sending.send_batch(list(Delivery.objects.values_list("pk", flat=True)))
    counts = {}
    for subscriber in (one, many):
        with CaptureQueriesContext(connection) as queries:
            body = client.get(path_of(tokens.feed_url(subscriber))).content
        counts[subscriber.pk] = (len(queries), len(feedparser.parse(body).entries))
    assert counts[one.pk][0] == counts[many.pk][0] == 3
    assert counts[one.pk][1] == 1 and counts[many.pk][1] > 3


def test_it_keeps_only_the_newest_entries(made, client: Client, monkeypatch):
    monkeypatch.setattr(archive, "FEED_ENTRIES", 5)
    feed = feedparser.parse(client.get(path_of(tokens.feed_url(made.subscriber))).content)
    newest = Delivery.objects.filter(subscriber=made.subscriber, status__in=archive.FEED_STATUSES).latest("digest_date")
    assert len(feed.entries) == 5
    assert feed.entries[0].id.endswith(newest.papers[0]["arxiv_id"])
    days = [datetime(*e.updated_parsed[:6]) for e in feed.entries]
    assert days == sorted(days, reverse=True)


def test_reset_my_feed_link_revokes_only_the_feed(ready_day, client: Client):
    subscriber = SubscriberFactory()
    old = path_of(tokens.feed_url(subscriber))
    manage = f"/manage/{tokens.make_token(subscriber, 'manage')}"
    assert client.get(old).status_code == 200

    response = client.post(manage, {"action": "reset-feed"})
    assert response.status_code == 302
    assert client.get(old).status_code == 400
    subscriber.refresh_from_db()
    new = path_of(tokens.feed_url(subscriber))
    assert new != old
    assert client.get(new).status_code == 200
    page = client.get(response["Location"]).content.decode()
    assert "Your feed has a new link" in page and new in page
    assert client.get(manage).status_code == 200  # the other links keep working


def test_a_feed_link_does_not_open_the_manage_page(client: Client):
    subscriber = SubscriberFactory()
    token = path_of(tokens.feed_url(subscriber)).removeprefix("/feed/").removesuffix(".atom")
    assert client.get(f"/manage/{token}").status_code == 400
    assert client.get(f"/view/{token}").status_code == 400


def test_it_answers_head_like_get_without_a_body(made, client: Client):
    """HEAD was 405; feed checkers and some readers ask it before they GET."""
    path = path_of(tokens.feed_url(made.subscriber))
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == 200
    assert head.content == b""
    for header in ("Content-Type", "ETag", "Last-Modified", "Cache-Control", "Vary"):
        assert head[header] == got[header]
    assert head["Content-Length"] == str(len(got.content))
    assert client.head(path, HTTP_IF_NONE_MATCH=got["ETag"]).status_code == 304


def test_it_drops_characters_xml_forbids_so_the_feed_still_parses(made, client: Client):
    """A reason carrying U+FFFF (from a topic typed before such text was refused) made the
    whole feed unreadable; control characters made it a 500."""
    delivery = Delivery.objects.filter(subscriber=made.subscriber, status__in=archive.FEED_STATUSES).latest(
        "digest_date"
    )
    delivery.papers[0]["reason"] = "Matches video gen\uffffer\ufffeation\x0b and\x1f agents"
    delivery.save(update_fields=["papers"])
    response = client.get(path_of(tokens.feed_url(made.subscriber)))
    assert response.status_code == 200
    assert atom_problems(response.content) == []
    feed = feedparser.parse(response.content)
    assert (feed.bozo, feed.version) == (0, "atom10")
    assert "Matches video generation and agents" in feed.entries[0].summary
