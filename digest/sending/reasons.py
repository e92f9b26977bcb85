"""Why a day brought what it brought: the outcome code and the subscriber's line, written when decided.

The planner and the batch call these as they decide a delivery's fate, so the manage
page reads the recorded line instead of guessing later. The lines are plain words for
the subscriber (times in their own zone); curators keep reading ``Delivery.error``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.models import Delivery, Subscriber
from digest.ranking import PaperIndex, Profile
from digest.sending.editions import Edition, profile_for

Outcome = Delivery.Outcome
# How many of the day's most upvoted papers a note carries.
NOTE_PAPERS = 3
SMTP_REPLY_CHARS = 80
FAILED_LINE = "Not sent: the service had a problem; curators were alerted"
PAUSED_LINE = "Paused by you"
UNSUBSCRIBED_LINE = "Not sent: you had unsubscribed"


def set_outcome(delivery: Delivery, outcome: str, line: str) -> None:
    delivery.outcome, delivery.outcome_line = outcome, line[:500]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def clock(subscriber: Subscriber, when: datetime) -> str:
    return when.astimezone(zone(subscriber.time_zone)).strftime("%H:%M")


def day_name(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B}"


def papers_count(count: int) -> str:
    return f"{count} paper{'' if count == 1 else 's'}"


def sent_line(subscriber: Subscriber, when: datetime, count: int, *, late: bool) -> str:
    if late:
        return f"Held back: Hugging Face's list was late; sent {clock(subscriber, when)} — {papers_count(count)}"
    return f"Sent {clock(subscriber, when)} — {papers_count(count)}"


def note_line(subscriber: Subscriber, when: datetime, count: int) -> str:
    return (
        f"Nothing new matched your topics; sent {clock(subscriber, when)} a short note"
        f" with the day's top {papers_count(count)}"
    )


def feed_line(count: int, *, note: bool) -> str:
    what = f"the day's top {papers_count(count)}" if note else papers_count(count)
    return f"In your feed — {what} (you chose the feed, no email)"


def held_line(list_day: date) -> str:
    return f"Held back: Hugging Face's list of {day_name(list_day)} is late; it goes out as soon as it arrives"


def never_arrived_line(days: int) -> str:
    return f"Not sent: Hugging Face's list never arrived within {days} days, and old news is not sent late"


def no_list_line(list_days: Sequence[date]) -> str:
    last = list_days[-1]
    if len(list_days) > 1:
        return f"Not sent: Hugging Face published no papers in the week to {day_name(last)}"
    weekend = " (a weekend: it rarely publishes one then)" if last.weekday() >= 5 else ""
    return f"Not sent: Hugging Face published no list on {day_name(last)}{weekend}"


def smtp_reply(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= SMTP_REPLY_CHARS else text[: SMTP_REPLY_CHARS - 1] + "…"


def bounced_line(error: Exception) -> str:
    return f"Your mail server refused it ({smtp_reply(error)}) — check your address"


def retrying_line(error: Exception | None = None, *, relay_down: bool = False) -> str:
    if relay_down or error is None:
        return "Not sent yet: our mail relay had a problem; trying again within the hour"
    return f"Not sent yet: your mail server asked us to try later ({smtp_reply(error)}); trying again within the hour"


def inactive_line(subscriber: Subscriber | None, *, suppressed: bool) -> tuple[str, str]:
    if suppressed or subscriber is None:
        return Outcome.SUPPRESSED, "Not sent: this address is blocked after repeated refusals or at your request"
    if subscriber.status == Subscriber.Status.PAUSED:
        return Outcome.PAUSED, PAUSED_LINE
    return Outcome.UNSUBSCRIBED, UNSUBSCRIBED_LINE


def nothing_new(ed: Edition, subscriber: Subscriber, *, named: Collection[int] = ()) -> tuple[str, str]:
    """The code and line of a day with no picks: no list at all, or the closest miss and
    why it did not qualify, found by ranking again with one rule relaxed at a time.
    ``named``: the edition's papers the subscriber named, imported or voted on."""
    if not ed.has_list:
        return Outcome.NO_LIST, no_list_line(ed.days)
    base = profile_for(subscriber)
    index = ed.index
    # 1. The ledger, or their own papers: a match they already received, or named.
    if picks := _top(index, base):
        if picks[0] in named:
            return Outcome.NOTHING_NEW, _closest(ed, picks, "it is one of your papers, never sent back to you")
        return Outcome.NOTHING_NEW, _closest(ed, picks, "you already got it in an earlier digest")
    # 2. An excluded phrase: which one shuts the best match out.
    if base.excludes and (picks := _top(index, dataclasses.replace(base, excludes=()))):
        culprit = next(
            (e for e in base.excludes if not _top(index, dataclasses.replace(base, excludes=(e,)))),
            base.excludes[0],
        )
        return Outcome.NOTHING_NEW, _closest(ed, picks, f"it mentions “{culprit}”, which you leave out")
    # 3. Part of a topic: one of its words matches, the whole phrase does not.
    words = {}
    for topic in base.topics:
        parts = topic.split()
        if len(parts) > 1:
            for word in parts:
                if len(word) > 3:
                    words.setdefault(word, topic)
    if words and (picks := _top(index, dataclasses.replace(base, topics=tuple(words), authors=(), organizations=()))):
        word = picks[1].removeprefix("matches: ").split(", ")[0]
        topic = words.get(word, "")
        why = f"it mentions “{word}” but not “{topic}”" if topic else "it matches only part of a topic"
        return Outcome.NOTHING_NEW, _closest(ed, picks, why)
    return (
        Outcome.NOTHING_NEW,
        f"Nothing new matched your topics — none of the day's {papers_count(len(ed.papers))} mentions them",
    )


def _top(index: PaperIndex, profile: Profile) -> tuple[int, str] | None:
    picks = index.rank([dataclasses.replace(profile, max_papers=1)]).get(profile.subscriber_id, [])
    return (picks[0].paper_id, picks[0].reason) if picks else None


def _closest(ed: Edition, pick: tuple[int, str], why: str) -> str:
    title = " ".join(ed.papers[pick[0]].title.split())
    if len(title) > 90:
        title = title[:89] + "…"
    return f"Nothing new matched your topics — closest: “{title}” ({why})"
