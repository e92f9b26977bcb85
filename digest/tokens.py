"""Signed links: confirm, manage, unsubscribe, feedback, web view and feed, all without a login.

A token carries the subscriber's id and a prefix of their key, signed with SECRET_KEY.
Rotating a subscriber's key (deletion does) revokes every link sent so far; the signature
makes an altered token worthless. Only confirmation links expire. A feed link also
carries a prefix of the subscriber's feed key, so "reset my feed link" revokes it alone:
it is pasted into readers and shared, and grants nothing but the feed.
"""

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare

from digest.mail import message
from digest.models import Subscriber

CONFIRM_MAX_AGE = timedelta(days=7)
KEY_PREFIX = 12

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
    max_age = CONFIRM_MAX_AGE if purpose == "confirm" else None
    try:
        payload = signing.loads(token, salt=f"digest.{purpose}", max_age=max_age)
    except signing.SignatureExpired:
        raise BadToken("this link has expired") from None
    except signing.BadSignature:
        raise BadToken("this link is not valid") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
        raise BadToken("this link is not valid")
    subscriber = Subscriber.objects.filter(pk=payload["s"]).first()
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


def feedback_url(subscriber: Subscriber, *, arxiv_id: str, signal: int) -> str:
    """The link a digest shows: the paper and signal go in the query string, as the view reads them."""
    return f"{url_for(subscriber, 'feedback')}?{urlencode({'p': arxiv_id, 'v': signal})}"


def webview_url(subscriber: Subscriber, *, day: date) -> str:
    return url_for(subscriber, "webview", d=day.isoformat())


def feed_url(subscriber: Subscriber) -> str:
    """The personal Atom feed; it names the feed key, so resetting that key revokes it."""
    return url_for(subscriber, "feed", f=subscriber.feed_key[:KEY_PREFIX]) + FEED_SUFFIX
