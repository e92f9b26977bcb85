"""The delivery state machine: plan, rank, render and send the digests, each exactly once.

The pipeline, driven by beat's hourly planner (``tasks.plan_digests``) or by ``senddigests``:

1. :mod:`.planner` creates one :class:`~digest.models.Delivery` row per (subscriber,
   digest date) for every active subscriber whose local send hour has come and whose
   frequency is due. A unique constraint makes planning idempotent. Rows whose papers
   are not ready are created "waiting" and curators are alerted; they turn "pending"
   once a good scrape lands. The planner then fans pending rows out in batches.
2. :mod:`.batch` claims its rows with one conditional UPDATE (pending -> sending; a row
   already claimed by anyone else is not touched, so duplicated tasks and concurrent
   workers never both get it), ranks the batch's subscribers in bulk against the date's
   :mod:`edition <.editions>`, renders each email from the pre-inlined parts, sends them
   over one connection and records every outcome in a fixed number of queries.
3. :mod:`.outcomes` keeps the journal of SMTP attempts that lets the sweeper tell a dead
   worker's sent messages from its unsent ones, writes outcomes and bounces, and marks
   the truly unknown rows "stuck" (never resent blindly: a curator can retry them).
4. :mod:`.pause` stops sending for a while after too many errors in a row.
5. :mod:`.reasons` writes each row's outcome code and the subscriber's line as the
   planner and the batch decide it; :mod:`.curators` holds the console's preview and
   retry; :mod:`.archive` reads back what was recorded: the manage page's 30 days, the
   web view of a sent digest and the personal Atom feed.

The digest dated D holds the papers of the Hugging Face list of D - 1 (complete by the
morning of D); a weekly digest holds those of D - 7 .. D - 1.
"""

from digest.sending.archive import (
    DayLine,
    FeedVersion,
    History,
    NotInArchive,
    atom_feed,
    feed_entries,
    feed_rows,
    feed_version,
    history,
    sent_digest_html,
)
from digest.sending.batch import BatchReport, claim, send_batch
from digest.sending.curators import NothingToSend, Preview, deliveries_retry, preview_digest, send_preview
from digest.sending.editions import (
    Edition,
    Editions,
    compose,
    digest_ready,
    edition,
    editions,
    is_weekly_day,
    paper_doc,
    papers_days,
    rank,
)
from digest.sending.outcomes import JOURNAL_KEY, TRY_KEY, mark_stuck
from digest.sending.pause import PAUSE_KEY, pause_sending, sending_paused
from digest.sending.planner import (
    PlanReport,
    expire_waiting,
    fan_out,
    plan_date,
    plan_due,
    planner_run,
    release_waiting,
)

__all__ = [
    "JOURNAL_KEY",
    "PAUSE_KEY",
    "TRY_KEY",
    "BatchReport",
    "DayLine",
    "Edition",
    "Editions",
    "FeedVersion",
    "History",
    "NotInArchive",
    "NothingToSend",
    "PlanReport",
    "Preview",
    "atom_feed",
    "claim",
    "compose",
    "deliveries_retry",
    "digest_ready",
    "edition",
    "editions",
    "expire_waiting",
    "fan_out",
    "feed_entries",
    "feed_rows",
    "feed_version",
    "history",
    "is_weekly_day",
    "mark_stuck",
    "paper_doc",
    "papers_days",
    "pause_sending",
    "plan_date",
    "plan_due",
    "planner_run",
    "preview_digest",
    "rank",
    "release_waiting",
    "send_batch",
    "send_preview",
    "sending_paused",
    "sent_digest_html",
]
