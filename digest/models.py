"""Subscribers, their consent, and the ledger of what each one was sent."""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from digest.addresses import normalize_email
from papers.models import Paper


def new_key() -> str:
    return secrets.token_hex(16)


def email_hash(email: str) -> str:
    """A keyed hash of a normalized address: what the suppression list keeps instead of the address."""
    return hmac.new(settings.SECRET_KEY.encode(), normalize_email(email).encode(), hashlib.sha256).hexdigest()


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for confirmation"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    class QuietDay(models.TextChoices):
        NOTHING = "nothing", "Send nothing"
        NOTE = "note", "Send a short note with the day's top three papers"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        FEED = "feed", "Atom feed only (no daily email)"
        BOTH = "both", "Email and Atom feed"

    email = models.EmailField(max_length=254, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    # Filters are short lists of phrases, stored as JSON lists: ranking reads them in bulk.
    topics = models.JSONField(default=list, blank=True)
    excludes = models.JSONField(default=list, blank=True)
    authors = models.JSONField(default=list, blank=True)
    organizations = models.JSONField(default=list, blank=True)
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.DAILY)
    send_hour = models.PositiveSmallIntegerField(default=7, help_text="Local hour (0-23) to send at.")
    time_zone = models.CharField(max_length=64, default="UTC", help_text="IANA zone of send_hour.")
    max_papers = models.PositiveSmallIntegerField(default=10)
    # What a day with nothing new for this subscriber brings: nothing, or a short note.
    quiet_day = models.CharField(max_length=8, choices=QuietDay.choices, default=QuietDay.NOTHING)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    # Term -> weight learned from "more / less like this" feedback.
    weights = models.JSONField(default=dict, blank=True)
    # The reader model fitted from this subscriber's liked and disliked papers (LikedPaper):
    # refitted when that list changes, never per send; null while there is nothing to fit.
    reader_model = models.JSONField(null=True, blank=True, editable=False)
    # Secret of this subscriber's signed links; rotating it revokes every link sent so far.
    key = models.CharField(max_length=32, default=new_key, editable=False)
    # Secret of the feed link alone: "reset my feed link" rotates it, the other links stay.
    feed_key = models.CharField(max_length=32, default=new_key, editable=False)
    # Days paused by the subscriber, as [first day, last day or null while paused] in
    # ISO dates: the planner makes no rows for them, so this is how history knows why.
    pauses = models.JSONField(default=list, blank=True, editable=False)
    bounce_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    # One-off emails are claimed, sent and recorded exactly once (services.OneOff).
    confirmation_claimed_at = models.DateTimeField(null=True, blank=True)
    confirmation_attempts = models.PositiveSmallIntegerField(default=0)
    manage_link_requested_at = models.DateTimeField(null=True, blank=True)
    manage_link_claimed_at = models.DateTimeField(null=True, blank=True)
    manage_link_attempts = models.PositiveSmallIntegerField(default=0)
    manage_link_sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "frequency", "send_hour"], name="subscriber_due")]
        permissions = [
            ("manage_subscriber", "Can pause, resume, suppress, export and resend confirmation to subscribers"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def wants_email(self) -> bool:
        return self.channel != self.Channel.FEED


class ConsentRecord(models.Model):
    """Proof of opt-in: who asked, from where, with which form, and when they confirmed."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="consents")
    created_at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    form_version = models.CharField(max_length=32)
    # The choices this signup made: what its confirmation link confirms (empty for
    # records older than migration 0005, whose links confirm the row's choices).
    preferences = models.JSONField(default=dict, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"consent of {self.subscriber_id} at {self.created_at:%Y-%m-%d %H:%M}"


class Suppression(models.Model):
    """An address never to be mailed again, kept only as a keyed hash."""

    class Reason(models.TextChoices):
        DELETED = "deleted", "Subscriber deleted their data"
        BOUNCED = "bounced", "Repeated hard bounces"
        COMPLAINT = "complaint", "Spam complaint"
        CURATOR = "curator", "Suppressed by a curator"

    email_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email_hash[:12]}… ({self.reason})"

    @classmethod
    def covers(cls, email: str) -> bool:
        return cls.objects.filter(email_hash=email_hash(email)).exists()


class Delivery(models.Model):
    """One digest for one subscriber and one date: the unit of exactly-once sending.

    pending -> sending -> sent | failed | bounced; waiting while the day's scrape is not
    good; stuck when a worker died mid-send (never resent blindly, see digest/sending/).
    """

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for the day's papers"
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        BOUNCED = "bounced", "Bounced"
        STUCK = "stuck", "Stuck (worker died mid-send)"
        SKIPPED = "skipped", "Skipped (nothing new to send)"

    class Outcome(models.TextChoices):
        """Why a day brought what it brought, decided (and recorded) by the planner or the batch."""

        SENT = "sent", "Sent"
        SENT_LATE = "sent_late", "Sent late: the list was held back"
        NOTE = "note", "Sent a note: nothing new matched"
        FEED = "feed", "In the feed only"
        NOTHING_NEW = "nothing_new", "Nothing new matched"
        NO_LIST = "no_list", "Hugging Face published no list"
        HELD = "held", "Held back: the list is late"
        NEVER_ARRIVED = "never_arrived", "The list never arrived"
        PAUSED = "paused", "Paused by the subscriber"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        SUPPRESSED = "suppressed", "Address suppressed"
        RETRYING = "retrying", "Not sent yet: trying again"
        BOUNCED = "bounced", "Refused by the mail server"
        FAILED = "failed", "Not sent: service problem"
        STUCK = "stuck", "Unknown: the worker stopped mid-send"

    # Not sent, and safe to send again: a curator may put these back to pending.
    RETRYABLE = (Status.FAILED, Status.BOUNCED, Status.STUCK)

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="deliveries")
    digest_date = models.DateField(db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    message_id = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    papers = models.JSONField(
        default=list, blank=True, help_text='What was sent, in order: [{"arxiv_id": ..., "reason": ...}, ...].'
    )
    # The subscriber-facing why of this day: a short code and the line the manage page shows.
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    outcome_line = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-digest_date", "subscriber_id"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "digest_date"], name="one_delivery_per_subscriber_day")
        ]
        indexes = [
            models.Index(fields=["digest_date", "status"], name="delivery_day_status"),
            # Bounces, complaints and webhooks name the message they are about.
            models.Index(fields=["message_id"], name="delivery_message_id"),
        ]
        verbose_name_plural = "deliveries"
        permissions = [
            ("retry_delivery", "Can retry failed deliveries"),
            ("preview_digest", "Can preview any subscriber's digest and send the preview to themselves"),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber_id} {self.digest_date} {self.status}"


class SentPaper(models.Model):
    """The ledger: a paper a subscriber has received, so it is never sent to them again."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="sent_papers")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="sent_papers")
    sent_on = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subscriber", "paper"], name="paper_sent_once")]

    def __str__(self) -> str:
        return f"{self.subscriber_id} got {self.paper_id} on {self.sent_on}"


class Feedback(models.Model):
    """ "More / less like this" on one paper, from a signed link in a digest."""

    class Signal(models.IntegerChoices):
        MORE = 1, "More like this"
        LESS = -1, "Less like this"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="feedback")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="+")
    signal = models.SmallIntegerField(choices=Signal.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subscriber", "paper"], name="feedback_once_per_paper")]

    def __str__(self) -> str:
        return f"{self.subscriber_id} {self.get_signal_display()} {self.paper_id}"


class DeliveryEvent(models.Model):
    """What a mailbox provider told us later about a sent email: a bounce, a complaint, an unsubscribe.

    Unique per (source, event_id): providers retry webhooks and a mailbox may be read twice,
    and a second copy of an event changes nothing.
    """

    class Kind(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        SOFT_BOUNCE = "soft_bounce", "Soft bounce"
        COMPLAINT = "complaint", "Spam complaint"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe"

    source = models.CharField(max_length=32, help_text='"imap" or the email provider whose webhook posted it.')
    event_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="events")
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="event_once_per_source")]

    def __str__(self) -> str:
        return f"{self.kind} of {self.subscriber_id} from {self.source}"


class RejectedReport(models.Model):
    """A bounce, complaint or unsubscribe that was not trusted and changed nothing, kept for curators.

    What the bounce mailbox or a provider's webhook brought that named no delivery of ours
    provably: no valid VERP return path, no keyed Message-ID sent to the recipient it names,
    no valid unsubscribe token (digest/inbound.py). Kept for 30 days.
    """

    source = models.CharField(max_length=32, help_text='"imap" or the email provider whose webhook posted it.')
    report_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, help_text="What the report claimed: hard_bounce, complaint, ...")
    recipient = models.CharField(max_length=254, blank=True, help_text="The address the report named, if any.")
    message_id = models.CharField(max_length=255, blank=True, help_text="The Message-ID it quoted, if any.")
    reason = models.CharField(max_length=200, help_text="Why it changed nothing.")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["source", "report_id"], name="rejected_once_per_source")]

    def __str__(self) -> str:
        return f"{self.kind} from {self.source}: {self.reason}"


class LikedPaper(models.Model):
    """A paper a subscriber named, imported or voted on: what their reader model is fitted from.

    The row exists from the moment the id is given; `paper` is filled in once the paper is in
    our store (ours already, or fetched), and a paper named here never appears in a digest.
    """

    class Source(models.TextChoices):
        TYPED = "typed", "Typed"
        FILE = "file", "Library file"
        ZOTERO = "zotero", "Zotero"
        VOTE = "vote", "Vote"

    class State(models.TextChoices):
        PENDING = "pending", "Being fetched"
        FOUND = "found", "Found"
        NOT_FOUND = "not_found", "Not found"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="liked_papers")
    arxiv_id = models.CharField(max_length=32, help_text="New-style arXiv id without its version.")
    paper = models.ForeignKey(Paper, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    liked = models.BooleanField(default=True, help_text='False: "less like this".')
    source = models.CharField(max_length=8, choices=Source.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING, db_index=True)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-added_at"]
        constraints = [models.UniqueConstraint(fields=["subscriber", "arxiv_id"], name="liked_paper_once")]

    def __str__(self) -> str:
        return f"{self.subscriber_id} {'likes' if self.liked else 'dislikes'} {self.arxiv_id}"
