"""Writes of the subscriber stage: subscribe, confirm, change, pause, unsubscribe, delete.

Signup never tells anyone whether an address is known: every path ends in the same
answer, and what differs (a confirmation, a "manage your subscription" email, or
nothing) happens out of band. Emails are enqueued only once the transaction commits,
and a periodic sweep sends any confirmation whose enqueue was lost.
"""

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from celery import current_app as app
from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from digest import jobs, liked, roles, tokens
from digest.addresses import normalize_email
from digest.mail import make_message
from digest.models import (
    ConsentRecord,
    Delivery,
    Feedback,
    LikedPaper,
    Subscriber,
    Suppression,
    email_hash,
    new_key,
)
from digest.ranking import learn_weights
from digest.sending import reasons
from digest.sending.editions import paper_doc
from papers.models import Paper

logger = logging.getLogger(__name__)

# RFC 8058 wants one-click to work without a login; mailbox providers also cap how many
# unwanted emails a sender may cause, so a signup form must not become a mail cannon.
MAILS_PER_ADDRESS_PER_DAY = 3
# Suppressions a fresh signup may lift (on confirmation): the person deleted their data,
# or their mailbox bounced and they are proving it works again. Complaints and curator
# blocks are never lifted from the public form.
LIFTABLE_SUPPRESSIONS = (Suppression.Reason.DELETED, Suppression.Reason.BOUNCED)
# Pause spans kept per subscriber: enough for the 30 days of history and then some.
PAUSE_SPANS = 20
# The sweep leaves alone confirmations that keep failing for longer than this.
SWEEP_WINDOW = timedelta(days=2)

SubscribeOutcome = Literal["confirmation", "manage", "limited", "blocked"]
ConfirmOutcome = Literal["confirmed", "already", "replaced"]


def rate_limit_hit(key: str, *, limit: int, window: int) -> bool:
    """Count one event under `key`; True once more than `limit` happened within `window` seconds."""
    key = f"ratelimit:{key}"
    if isinstance(cache, RedisCache):
        # Atomic, and INCR keeps the key's expiry.
        cache.add(key, 0, timeout=window)
        return cache.incr(key) > limit
    # The file cache's incr() resets the expiry to the default timeout, so carry the
    # window's end along with the count (a race may let one extra event through).
    now = time.time()
    count, ends = cache.get(key) or (0, now + window)
    if ends <= now:
        count, ends = 0, now + window
    count += 1
    cache.set(key, (count, ends), timeout=max(1, int(ends - now) + 1))
    return count > limit


def subscriber_subscribe(
    *,
    email: str,
    preferences: dict[str, Any],
    ip: str | None,
    user_agent: str,
    form_version: str,
    seeds: liked.Prefetched | None = None,
) -> SubscribeOutcome:
    """Take a signup; the caller answers the same whatever this returns.

    ``seeds``: the papers the form named, fetched already (liked.prefetch, which does not
    depend on the address, so every answer takes as long); they join the subscriber's
    papers unless the address is subscribed already, whose choices a signup never changes."""
    email = normalize_email(email)
    suppression = Suppression.objects.filter(email_hash=email_hash(email)).first()
    if suppression is not None and suppression.reason not in LIFTABLE_SUPPRESSIONS:
        logger.info("signup of a suppressed address (%s) ignored", suppression.reason)
        return "blocked"
    if rate_limit_hit(f"address:{email_hash(email)}", limit=MAILS_PER_ADDRESS_PER_DAY, window=86400):
        logger.info("signup ignored: address had %s emails today", MAILS_PER_ADDRESS_PER_DAY)
        return "limited"
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().filter(email=email).first()
        created = False
        if subscriber is None:
            try:
                with transaction.atomic():
                    subscriber = Subscriber.objects.create(email=email, **preferences)
                    created = True
            except IntegrityError:
                # Another request created it a moment ago; carry on with that row.
                subscriber = Subscriber.objects.select_for_update().get(email=email)
        if not created:
            if subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
                # Someone may be typing another person's address: change nothing, just send
                # the owner a link to their preferences.
                Subscriber.objects.filter(pk=subscriber.pk).update(manage_link_requested_at=timezone.now())
                jobs.enqueue_on_commit(jobs.SEND_MANAGE_LINK, subscriber.pk)
                return "manage"
            # Pending or unsubscribed: the row shows the newest signup's choices; what a
            # link confirms is the choices of the signup it was sent for (its consent
            # record), and only the newest signup's link confirms at all.
            for name, value in preferences.items():
                setattr(subscriber, name, value)
            subscriber.status = Subscriber.Status.PENDING
            subscriber.confirmation_sent_at = None
            subscriber.confirmation_claimed_at = None
            subscriber.confirmation_attempts = 0
            subscriber.save()
        if seeds is not None and seeds.ids:
            _add_seeds(subscriber, seeds)
        ConsentRecord.objects.create(
            subscriber=subscriber,
            ip=ip,
            user_agent=user_agent[:500],
            form_version=form_version,
            preferences=preferences,
        )
        jobs.enqueue_on_commit(jobs.SEND_CONFIRMATION, subscriber.pk)
    return "confirmation"


def _add_seeds(subscriber: Subscriber, seeds: liked.Prefetched) -> None:
    # The form checked the limit against an empty list; a repeated signup keeps what fits.
    room = liked.MAX_LIKED_PAPERS - subscriber.liked_papers.count()
    have = set(subscriber.liked_papers.filter(arxiv_id__in=seeds.ids).values_list("arxiv_id", flat=True))
    ids = [i for i in seeds.ids if i not in have][: max(room, 0)]
    liked.liked_papers_add(subscriber=subscriber, arxiv_ids=ids, source=LikedPaper.Source.TYPED, prefetched=seeds)


def newest_signup(subscriber: Subscriber) -> ConsentRecord | None:
    """The unconfirmed signup whose link is the live one: the newest."""
    return subscriber.consents.filter(confirmed_at__isnull=True).order_by("-created_at", "-pk").first()


def confirmation_state(
    *, subscriber: Subscriber, consent_id: int
) -> tuple[ConfirmOutcome | None, ConsentRecord | None]:
    """What confirming `consent_id` would do: (None, the signup) when it would confirm
    it, else ("already" | "replaced", the signup if it exists)."""
    consent = subscriber.consents.filter(pk=consent_id).first()
    if consent is None or consent.confirmed_at or subscriber.status != Subscriber.Status.PENDING:
        return "already", consent
    newest = newest_signup(subscriber)
    if newest is None or newest.pk != consent.pk:
        return "replaced", consent
    return None, consent


def subscriber_confirm(*, subscriber: Subscriber, consent_id: int) -> ConfirmOutcome:
    """Confirm the signup `consent_id` names, with the choices made in that signup. A used
    link, one for a subscriber who has since unsubscribed, or one a newer signup of the
    address replaced changes nothing."""
    now = timezone.now()
    with transaction.atomic():
        locked = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        refused, consent = confirmation_state(subscriber=locked, consent_id=consent_id)
        if refused or consent is None:
            return refused or "already"
        consent.confirmed_at = now
        consent.save(update_fields=["confirmed_at"])
        for name, value in consent.preferences.items():
            setattr(locked, name, value)
        locked.status = Subscriber.Status.ACTIVE
        locked.confirmed_at = now
        locked.paused_at = None
        locked.unsubscribed_at = None
        locked.save()
        Suppression.objects.filter(email_hash=email_hash(locked.email), reason__in=LIFTABLE_SUPPRESSIONS).delete()
    subscriber.refresh_from_db()
    return "confirmed"


def subscriber_update(*, subscriber: Subscriber, preferences: dict[str, Any]) -> Subscriber:
    for name, value in preferences.items():
        setattr(subscriber, name, value)
    subscriber.save()
    return subscriber


def _skip_queued_digests(subscriber: Subscriber, why: str, outcome: str, line: str) -> None:
    # Digests planned but not yet being sent must not go out after a pause or unsubscribe.
    Delivery.objects.filter(
        subscriber=subscriber, status__in=[Delivery.Status.WAITING, Delivery.Status.PENDING]
    ).update(status=Delivery.Status.SKIPPED, error=why, outcome=outcome, outcome_line=line)


def subscriber_pause(*, subscriber: Subscriber) -> Subscriber:
    with transaction.atomic():
        changed = Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.ACTIVE).update(
            status=Subscriber.Status.PAUSED, paused_at=timezone.now(), updated_at=timezone.now()
        )
        if changed:
            _skip_queued_digests(subscriber, "paused", Delivery.Outcome.PAUSED, reasons.PAUSED_LINE)
            _pause_span(subscriber.pk, start=_local_today(subscriber))
    subscriber.refresh_from_db()
    return subscriber


def _local_today(subscriber: Subscriber) -> date:
    # Digest dates are the subscriber's own days, so their pauses are too.
    return timezone.now().astimezone(reasons.zone(subscriber.time_zone)).date()


def _pause_span(subscriber_id: int, *, start: date | None = None, end: date | None = None) -> None:
    """Open (start) or close (end) the subscriber's current pause in ``Subscriber.pauses``:
    the planner makes no rows for paused days, so their history is kept here. Call it
    inside a transaction; the newest PAUSE_SPANS spans are kept."""
    locked = Subscriber.objects.select_for_update().only("pauses").get(pk=subscriber_id)
    spans = [list(s) for s in locked.pauses or []]
    if start is not None:
        spans.append([start.isoformat(), None])
    elif spans and spans[-1][1] is None:
        spans[-1][1] = end.isoformat() if end else None
    Subscriber.objects.filter(pk=subscriber_id).update(pauses=spans[-PAUSE_SPANS:])


def subscriber_resume(*, subscriber: Subscriber) -> Subscriber:
    """Paused or unsubscribed -> active; the signed link proves the mailbox is theirs."""
    active = {"status": Subscriber.Status.ACTIVE, "paused_at": None, "unsubscribed_at": None}
    with transaction.atomic():
        rows = Subscriber.objects.filter(pk=subscriber.pk)
        if rows.filter(status=Subscriber.Status.PAUSED).update(**active, updated_at=timezone.now()):
            # The day of resuming still counts as paused: its send hour may have passed.
            _pause_span(subscriber.pk, end=_local_today(subscriber))
        else:
            rows.filter(status=Subscriber.Status.UNSUBSCRIBED).update(**active, updated_at=timezone.now())
    subscriber.refresh_from_db()
    return subscriber


def subscriber_reset_feed(*, subscriber: Subscriber) -> Subscriber:
    """A new feed link; the old one stops working at once (the manage and email links stay)."""
    Subscriber.objects.filter(pk=subscriber.pk).update(feed_key=new_key(), updated_at=timezone.now())
    subscriber.refresh_from_db()
    return subscriber


def subscriber_unsubscribe(*, subscriber: Subscriber) -> Subscriber:
    """Idempotent: a second call changes nothing, not even the time of unsubscribing."""
    with transaction.atomic():
        changed = (
            Subscriber.objects.filter(pk=subscriber.pk)
            .exclude(status=Subscriber.Status.UNSUBSCRIBED)
            .update(
                status=Subscriber.Status.UNSUBSCRIBED,
                unsubscribed_at=timezone.now(),
                updated_at=timezone.now(),
            )
        )
        if changed:
            _skip_queued_digests(subscriber, "unsubscribed", Delivery.Outcome.UNSUBSCRIBED, reasons.UNSUBSCRIBED_LINE)
    subscriber.refresh_from_db()
    return subscriber


def subscriber_delete(*, subscriber: Subscriber) -> None:
    """Erase the subscriber and everything hanging off them; keep only a keyed hash of the
    address so it is never mailed again unless it signs up anew. With the row goes the key
    every link was signed with, so all links sent so far stop working."""
    with transaction.atomic():
        Suppression.objects.get_or_create(
            email_hash=email_hash(subscriber.email), defaults={"reason": Suppression.Reason.DELETED}
        )
        subscriber.delete()


# --- one-off emails: claim, attempt, record ------------------------------------------
#
# A confirmation or a manage link is claimed by one conditional UPDATE before it is sent
# and recorded after, like a digest: the task, a redelivered task and the sweep never
# both send it. A failed send unclaims it for the sweep. A claim that is never recorded
# (the worker died inside the SMTP conversation) is unknown: after DIGEST_STUCK_AFTER
# the sweep claims it again, once, since a second confirmation is harmless and a
# missing one loses the person.
UNKNOWN_RETRIES = 1


@dataclass(frozen=True)
class OneOff:
    """Where a kind of one-off email keeps its state on the subscriber's row."""

    name: str
    waiting: Q  # subscribers who should get one
    claimed_at: str
    attempts: str  # claims made and not recorded yet (unknown outcomes included)
    sent_at: str


CONFIRMATION = OneOff(
    name="confirmation",
    waiting=Q(status=Subscriber.Status.PENDING, confirmation_sent_at__isnull=True),
    claimed_at="confirmation_claimed_at",
    attempts="confirmation_attempts",
    sent_at="confirmation_sent_at",
)
MANAGE_LINK = OneOff(
    name="manage link",
    # Never sent, or asked for again (a new signup of the address) since the last one.
    waiting=Q(status__in=[Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED, Subscriber.Status.UNSUBSCRIBED])
    & (Q(manage_link_sent_at__isnull=True) | Q(manage_link_requested_at__gt=F("manage_link_sent_at"))),
    claimed_at="manage_link_claimed_at",
    attempts="manage_link_attempts",
    sent_at="manage_link_sent_at",
)


def _claimable(kind: OneOff, now: datetime) -> Q:
    stale = now - timedelta(seconds=settings.DIGEST_STUCK_AFTER)
    unclaimed = Q(**{f"{kind.claimed_at}__isnull": True})
    unknown = Q(**{f"{kind.claimed_at}__lt": stale, f"{kind.attempts}__lte": UNKNOWN_RETRIES})
    return kind.waiting & (unclaimed | unknown)


def _send_once(kind: OneOff, subscriber_id: int, build: Callable[[Subscriber], EmailMessage | None]) -> bool:
    """Claim, send and record one email of ``kind``; False when there was none to send."""
    now = timezone.now()
    claimed = (
        Subscriber.objects.filter(_claimable(kind, now), pk=subscriber_id)
        .order_by()
        .update(**{kind.claimed_at: now, kind.attempts: F(kind.attempts) + 1})
    )
    if not claimed:
        return False
    mine = Subscriber.objects.filter(pk=subscriber_id, **{kind.claimed_at: now})
    message = build(Subscriber.objects.get(pk=subscriber_id))
    if message is not None:
        try:
            message.send()
        except Exception:
            mine.update(**{kind.claimed_at: None, kind.attempts: F(kind.attempts) - 1})
            raise
    mine.update(**{kind.claimed_at: None, kind.attempts: 0, kind.sent_at: timezone.now()})
    return message is not None


def _confirmation(subscriber: Subscriber) -> EmailMessage | None:
    consent = newest_signup(subscriber)
    if consent is None:
        return None
    return make_message(
        "confirmation",
        {
            "subscriber": subscriber,
            "confirm_url": tokens.url_for(subscriber, "confirm", c=consent.pk),
            "valid_days": tokens.CONFIRM_MAX_AGE.days,
        },
        to=[subscriber.email],
        from_email=settings.DEFAULT_FROM_EMAIL,
    )


def _manage_link(subscriber: Subscriber, *, requested: bool) -> EmailMessage:
    return make_message(
        "manage",
        {
            "subscriber": subscriber,
            "requested": requested,
            "manage_url": tokens.manage_url(subscriber),
            "unsubscribe_url": tokens.unsubscribe_url(subscriber),
        },
        to=[subscriber.email],
        from_email=settings.DEFAULT_FROM_EMAIL,
        headers=tokens.list_unsubscribe(subscriber),
    )


def confirmation_send(*, subscriber_id: int) -> bool:
    """Send the pending confirmation, exactly once (see OneOff above)."""
    return _send_once(CONFIRMATION, subscriber_id, _confirmation)


def manage_link_send(*, subscriber_id: int, requested: bool = False) -> bool:
    """The answer to a signup of an address that is already subscribed, or (``requested``)
    to its owner asking for a link from the unsubscribe page, also once unsubscribed;
    exactly once per request."""
    return _send_once(MANAGE_LINK, subscriber_id, functools.partial(_manage_link, requested=requested))


ManageLinkOutcome = Literal["queued", "limited"]


def manage_link_request(*, subscriber: Subscriber) -> ManageLinkOutcome:
    """Email the subscriber a fresh link to their preferences, within the per-address daily
    cap: the unsubscribe page offers this instead of a manage link of its own, so holding
    an unsubscribe URL (a forwarded email, the mailto mailbox) opens nothing."""
    if rate_limit_hit(f"address:{email_hash(subscriber.email)}", limit=MAILS_PER_ADDRESS_PER_DAY, window=86400):
        return "limited"
    Subscriber.objects.filter(pk=subscriber.pk).update(manage_link_requested_at=timezone.now())
    jobs.enqueue_on_commit(jobs.SEND_MANAGE_LINK, subscriber.pk, True)
    return "queued"


def confirmations_sweep(*, now: datetime | None = None) -> int:
    """Send every recent confirmation and manage link that never went out: its enqueue
    was lost, its send failed, or its worker died mid-send (retried once)."""
    now = now or timezone.now()
    sent = 0
    for kind, send in ((CONFIRMATION, confirmation_send), (MANAGE_LINK, manage_link_send)):
        recent = Q(updated_at__gte=now - SWEEP_WINDOW)
        if kind is MANAGE_LINK:
            recent = Q(manage_link_requested_at__gte=now - SWEEP_WINDOW)
        ids = list(Subscriber.objects.filter(_claimable(kind, now), recent).values_list("pk", flat=True))
        for subscriber_id in ids:
            try:
                sent += send(subscriber_id=subscriber_id)
            except Exception:
                # One bad address must not hold back the others; the next sweep retries it.
                logger.exception("%s to subscriber %s failed", kind.name, subscriber_id)
    return sent


class InvalidFeedback(ValueError):
    """A feedback link about no known paper, or with a signal that is not "more" or "less"."""


def feedback_paper(*, arxiv_id: str, signal: int) -> Paper:
    """The paper feedback is about, or InvalidFeedback: the one check of paper and signal."""
    paper = Paper.objects.filter(arxiv_id=arxiv_id).first()
    if paper is None or signal not in (Feedback.Signal.MORE, Feedback.Signal.LESS):
        raise InvalidFeedback("this feedback link is not valid")
    return paper


def feedback_record(*, subscriber: Subscriber, arxiv_id: str, signal: int) -> Feedback:
    """ "More / less like this" on one paper: stored once per paper, and the subscriber's
    learned weights move only when the signal is new or changed (a double click, or a
    link scanner repeating the request, changes nothing). InvalidFeedback if the paper
    or signal makes no sense."""
    paper = feedback_paper(arxiv_id=arxiv_id, signal=signal)
    with transaction.atomic():
        locked = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        feedback, created = Feedback.objects.get_or_create(subscriber=locked, paper=paper, defaults={"signal": signal})
        # "More like this" names a liked paper, "less like this" a disliked one (idempotent).
        liked.liked_papers_vote(subscriber=locked, paper=paper, liked=signal == Feedback.Signal.MORE)
        if not created and feedback.signal == signal:
            return feedback
        if not created:
            feedback.signal = signal
            feedback.created_at = timezone.now()
            feedback.save(update_fields=["signal", "created_at"])
        locked.weights = learn_weights(locked.weights or {}, paper_doc(paper), signal)
        locked.save(update_fields=["weights", "updated_at"])
    return feedback


def subscriber_suppress(*, subscriber: Subscriber) -> Subscriber:
    """A curator's block: never mail this address again, even if it signs up anew
    (curator suppressions are not liftable from the public form)."""
    with transaction.atomic():
        Suppression.objects.update_or_create(
            email_hash=email_hash(subscriber.email), defaults={"reason": Suppression.Reason.CURATOR}
        )
        return subscriber_unsubscribe(subscriber=subscriber)


ResendOutcome = Literal["queued", "not-pending", "limited"]


def confirmation_resend(*, subscriber: Subscriber) -> ResendOutcome:
    """Send a pending subscriber's confirmation again, within the per-address daily cap."""
    if subscriber.status != Subscriber.Status.PENDING:
        return "not-pending"
    if rate_limit_hit(f"address:{email_hash(subscriber.email)}", limit=MAILS_PER_ADDRESS_PER_DAY, window=86400):
        return "limited"
    with transaction.atomic():
        # Unclaim it: confirmation_send claims the row before sending, so a double click sends once.
        Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.PENDING).update(
            confirmation_sent_at=None, confirmation_claimed_at=None, confirmation_attempts=0
        )
        jobs.enqueue_on_commit(jobs.SEND_CONFIRMATION, subscriber.pk)
    return "queued"


# --- console accounts ---------------------------------------------------------------


class CuratorError(ValueError):
    """A curator account cannot be created; the message is one line for the operator."""


def curator_create(*, email: str, username: str = "", superuser: bool = False) -> tuple[Any, str]:
    """A staff account in the "curator" group with a generated password: (user, password).

    The username is the address unless given; superuser=True also makes it a superuser
    (the local operator that `up` creates)."""
    import secrets

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise CuratorError(f"not an email address: {email!r}") from None
    username = username or email
    users = get_user_model()
    if users.objects.filter(username__iexact=username).exists():
        raise CuratorError(f"a user named {username!r} already exists")
    if users.objects.filter(email__iexact=email).exists():
        raise CuratorError(f"a user with the address {email!r} already exists")
    password = secrets.token_urlsafe(15)
    with transaction.atomic():
        user = users.objects.create_user(
            username=username, email=email, password=password, is_staff=True, is_superuser=superuser
        )
        # The group and its permissions come from migrate (digest/roles.py); get_or_create
        # only guards against someone having deleted it by hand since.
        group, _ = Group.objects.get_or_create(name=roles.CURATOR_GROUP)
        user.groups.add(group)
    return user, password


def console_url() -> str:
    return f"{settings.SITE_URL}/{settings.ADMIN_URL}"


def periodic_task_send(*, task: Any) -> str:
    """Run a beat entry now: send its task with its own arguments, as beat would; returns the task id."""
    import json

    options: dict[str, Any] = {"queue": task.queue} if task.queue else {}
    result = app.send_task(
        task.task,
        args=json.loads(task.args or "[]"),
        kwargs=json.loads(task.kwargs or "{}"),
        headers={"periodic_task_name": task.name},
        **options,
    )
    return str(result.id)
