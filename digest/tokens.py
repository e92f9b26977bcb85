"""Signed links: confirm, manage, unsubscribe, feedback, web view and feed, all without a login.

A token carries the subscriber's id and a prefix of their key, signed with SECRET_KEY.
Rotating a subscriber's key (deletion does) revokes every link sent so far; the signature
makes an altered token worthless. Confirmation links expire after a week. A feed link
also carries a prefix of the subscriber's feed key, so "reset my feed link" revokes it
alone: it is pasted into readers and shared, and grants nothing but the feed.

A feedback link is bound to its subscriber, paper and signal: its token is the
subscriber's id and a keyed BLAKE2b MAC of (id, key prefix, paper), whose two halves are
the "more" and the "less" link, so one link cannot be turned into another paper's or the
opposite signal. A digest carries two per paper, and a MAC costs a few microseconds where
a signing.dumps costs about 30. Feedback links made before they were bound (a signed
token, the paper and signal in the query) are still read, for UNBOUND_FEEDBACK_MAX_AGE.
"""

import base64
import functools
import hashlib
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.db.models import Exists, OuterRef
from django.utils.crypto import constant_time_compare

from digest.mail import message
from digest.models import LikedPaper, Subscriber

CONFIRM_MAX_AGE = timedelta(days=7)
# Long enough for the digests sent before feedback links were bound to be answered.
UNBOUND_FEEDBACK_MAX_AGE = timedelta(days=30)
MAX_AGES = {"confirm": CONFIRM_MAX_AGE, "feedback": UNBOUND_FEEDBACK_MAX_AGE}
KEY_PREFIX = 12
FEEDBACK_MAC_BYTES = 12  # 96 bits per link; 16 characters of URL-safe base64

# URL paths the views are mounted on (digest/urls.py uses the same constants).
PATHS = {
    "confirm": "confirm/",
    "manage": "manage/",
    "unsubscribe": "unsubscribe/",
    "feedback": "feedback/",
    "webview": "view/",
    "feed": "feed/",
}
FEED_SUFFIX = ".atom"


class BadToken(Exception):
    """The link is altered, expired, revoked or of another kind."""


def make_token(subscriber: Subscriber, purpose: str, **extra: Any) -> str:
    if purpose not in PATHS:
        raise ValueError(f"unknown token purpose {purpose!r}")
    payload = {"s": subscriber.pk, "k": subscriber.key[:KEY_PREFIX], **extra}
    return signing.dumps(payload, salt=f"digest.{purpose}")


def read_token(token: str, purpose: str) -> tuple[Subscriber, dict[str, Any]]:
    """The subscriber a token names and its extra fields, or BadToken."""
    try:
        payload = signing.loads(token, salt=f"digest.{purpose}", max_age=MAX_AGES.get(purpose))
    except signing.SignatureExpired:
        raise BadToken("this link has expired") from None
    except signing.BadSignature:
        raise BadToken("this link is not valid") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
        raise BadToken("this link is not valid")
    rows = Subscriber.objects.filter(pk=payload["s"])
    if purpose == "manage":
        # In the same query: whether "Your papers" has anything to read (most readers have none).
        rows = rows.annotate(has_liked_papers=Exists(LikedPaper.objects.filter(subscriber=OuterRef("pk"))))
    subscriber = rows.first()
    if subscriber is None or not constant_time_compare(subscriber.key[:KEY_PREFIX], str(payload.get("k", ""))):
        raise BadToken("this link is no longer valid")
    if purpose == "feed" and not constant_time_compare(subscriber.feed_key[:KEY_PREFIX], str(payload.get("f", ""))):
        raise BadToken("this feed link was reset; copy the new one from your preferences page")
    extra = {k: v for k, v in payload.items() if k not in ("s", "k")}
    return subscriber, extra


def url_for(subscriber: Subscriber, purpose: str, **extra: Any) -> str:
    return f"{settings.SITE_URL}/{PATHS[purpose]}{make_token(subscriber, purpose, **extra)}"


def confirm_url(subscriber: Subscriber) -> str:
    return url_for(subscriber, "confirm")


def manage_url(subscriber: Subscriber) -> str:
    return url_for(subscriber, "manage")


def unsubscribe_url(subscriber: Subscriber) -> str:
    """The RFC 8058 one-click endpoint (POST unsubscribes; GET shows a button)."""
    return url_for(subscriber, "unsubscribe")


def list_unsubscribe(subscriber: Subscriber) -> dict[str, str]:
    """The List-Unsubscribe headers of every email to ``subscriber`` (digest, manage link)."""
    token = make_token(subscriber, "unsubscribe")
    return message.list_unsubscribe(url=f"{settings.SITE_URL}/{PATHS['unsubscribe']}{token}", token=token)


class FeedbackLinks:
    """One reader's "more / less like this" links, for as many papers as their digest has."""

    __slots__ = ("_base", "_key", "_subject")

    def __init__(self, subscriber: Subscriber, *, secret: str | None = None) -> None:
        self._base = f"{settings.SITE_URL}/{PATHS['feedback']}{subscriber.pk}."
        secret = settings.SECRET_KEY if secret is None else secret
        self._key = hashlib.sha256(f"digest.feedback-link:{secret}".encode()).digest()
        self._subject = f"{subscriber.pk}:{subscriber.key[:KEY_PREFIX]}:"

    def macs(self, arxiv_id: str) -> tuple[str, str]:
        """The MACs of the paper's "more" and "less" links: the halves of one keyed digest."""
        digest = hashlib.blake2b(
            (self._subject + arxiv_id).encode(), key=self._key, digest_size=2 * FEEDBACK_MAC_BYTES
        ).digest()
        text = base64.urlsafe_b64encode(digest).decode()
        return text[: len(text) // 2], text[len(text) // 2 :]

    def urls(self, arxiv_id: str) -> tuple[str, str]:
        """The paper's "more like this" and "less like this" links."""
        more, less = self.macs(arxiv_id)
        query = _paper_query(arxiv_id)
        return f"{self._base}{more}{query}1", f"{self._base}{less}{query}-1"


@functools.lru_cache(maxsize=4096)
def _paper_query(arxiv_id: str) -> str:
    # The same few dozen papers are in every digest of a day: quote each once.
    return f"?p={quote(arxiv_id, safe='')}&v="


def feedback_url(subscriber: Subscriber, *, arxiv_id: str, signal: int) -> str:
    """The link a digest shows for one paper and signal (1 more, -1 less like this)."""
    if signal not in (1, -1):
        raise ValueError(f"a feedback signal is 1 or -1, not {signal!r}")
    return FeedbackLinks(subscriber).urls(arxiv_id)[0 if signal == 1 else 1]


def read_feedback_token(token: str, *, arxiv_id: str, signal: int) -> Subscriber:
    """The subscriber a feedback link is for, if it was made for this paper and signal;
    else BadToken. Whether the paper and signal make sense is the service's question."""
    subscriber_id, dot, mac = token.partition(".")
    if not (dot and subscriber_id.isdigit()):
        # A link from before feedback links were bound: a signed token, never digits and a ".".
        subscriber, _ = read_token(token, "feedback")
        return subscriber
    subscriber = Subscriber.objects.filter(pk=int(subscriber_id)).first()
    if subscriber is not None and signal in (1, -1):
        half = 0 if signal == 1 else 1
        for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
            if constant_time_compare(mac, FeedbackLinks(subscriber, secret=secret).macs(arxiv_id)[half]):
                return subscriber
    raise BadToken("this feedback link is not valid")


def webview_url(subscriber: Subscriber, *, day: date) -> str:
    return url_for(subscriber, "webview", d=day.isoformat())


def feed_url(subscriber: Subscriber) -> str:
    """The personal Atom feed; it names the feed key, so resetting that key revokes it."""
    return url_for(subscriber, "feed", f=subscriber.feed_key[:KEY_PREFIX]) + FEED_SUFFIX
