"""Send every due digest of a date now, whatever the subscribers' send hours.

The same services as beat's planner and the workers' batches, run in this process:
plan the date's deliveries, then claim, rank, render, send and record them in batches.
"""

import sys
from datetime import date, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count
from django.utils import timezone

from digest import sending
from digest.addresses import normalize_email
from digest.mail import Mailer
from digest.models import Delivery, Subscriber


def parse_date(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise CommandError(f"--date must be YYYY-MM-DD, got {value!r}") from None


class Progress:
    """A one-line bar on a terminal; a line per tenth when piped."""

    def __init__(self, total: int, stream) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.tty = stream.isatty()
        self.next_tenth = 1

    def __call__(self, step: int) -> None:
        self.done += step
        if not self.total:
            return
        share = self.done / self.total
        if self.tty:
            filled = int(share * 30)
            self.stream.write(f"\rsending [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
            self.stream.flush()
        elif share * 10 >= self.next_tenth:
            self.stream.write(f"sending: {self.done}/{self.total}\n")
            self.next_tenth = int(share * 10) + 1

    def close(self) -> None:
        if self.tty and self.total:
            self.stream.write("\n")


class Command(BaseCommand):
    help = "Send every due digest of a date now (ignoring send hours), or one to a given address."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=parse_date, help="digest date, YYYY-MM-DD (default: today)")
        parser.add_argument("--dry-run", action="store_true", help="rank and render, send nothing, write nothing")
        parser.add_argument("--to", metavar="EMAIL", help="send one subscriber's digest to this address only")
        parser.add_argument(
            "--subscriber", metavar="EMAIL", help="with --to: whose digest (default: the subscriber at --to)"
        )

    def handle(self, *args, **options) -> None:
        day = options["date"] or timezone.localdate()
        if options["subscriber"] and not options["to"]:
            raise CommandError("--subscriber needs --to")
        if options["to"]:
            self.send_one(day, to=options["to"], whose=options["subscriber"] or options["to"], dry=options["dry_run"])
        elif options["dry_run"]:
            self.dry_run(day)
        else:
            self.send_all(day)

    def _check_ready(self, day: date) -> None:
        weekly = sending.is_weekly_day(day)
        for kind in (False, True) if weekly else (False,):
            if not sending.digest_ready(day, weekly=kind):
                papers_day = sending.papers_days(day, weekly=kind)[-1]
                raise CommandError(
                    f"the papers of {papers_day} are not ready (no good scrape of that day); "
                    f"run: python manage.py scrape --date {papers_day}"
                )

    def send_one(self, day: date, *, to: str, whose: str, dry: bool) -> None:
        subscriber = Subscriber.objects.filter(email=normalize_email(whose)).first()
        if subscriber is None:
            raise CommandError(f"no subscriber with the address {whose}")
        try:
            if dry:
                preview = sending.preview_digest(subscriber=subscriber, day=day)
                self.stdout.write(f"Subject: {preview.subject}\n\n{preview.text}")
                return
            preview = sending.send_preview(subscriber=subscriber, day=day, to=to)
        except sending.NothingToSend as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"sent {subscriber.email}'s digest of {day} to {to}: {preview.subject!r}")

    def dry_run(self, day: date) -> None:
        self._check_ready(day)
        frequencies = [Subscriber.Frequency.DAILY]
        if sending.is_weekly_day(day):
            frequencies.append(Subscriber.Frequency.WEEKLY)
        sent_already = Delivery.objects.filter(digest_date=day, status=Delivery.Status.SENT).values("subscriber_id")
        would, empty, size = 0, 0, 0
        for frequency in frequencies:
            weekly = frequency == Subscriber.Frequency.WEEKLY
            ed = sending.edition(day, weekly=weekly)
            subscribers = (
                Subscriber.objects.filter(status=Subscriber.Status.ACTIVE, frequency=frequency)
                .exclude(pk__in=sent_already)
                .order_by("pk")
            )
            chunk: list[Subscriber] = []
            for subscriber in subscribers.iterator(chunk_size=settings.DIGEST_BATCH_SIZE):
                chunk.append(subscriber)
                if len(chunk) == settings.DIGEST_BATCH_SIZE:
                    w, e, s = self._render(ed, chunk)
                    would, empty, size = would + w, empty + e, size + s
                    chunk = []
            if chunk:
                w, e, s = self._render(ed, chunk)
                would, empty, size = would + w, empty + e, size + s
        average = f", {size // would // 1024} KB each on average" if would else ""
        self.stdout.write(f"dry run {day}: {would} digests would be sent, {empty} skipped (nothing new){average}")

    def _render(self, ed: sending.Edition, subscribers: list[Subscriber]) -> tuple[int, int, int]:
        ranked = sending.rank(ed, subscribers)
        would = empty = size = 0
        for subscriber in subscribers:
            picks = ranked.get(subscriber.pk, [])
            if not picks:
                empty += 1
                continue
            digest = sending.compose(ed, subscriber, picks)
            would += 1
            size += len(digest.html.encode()) + len(digest.text.encode())
        return would, empty, size

    def send_all(self, day: date) -> None:
        if sending.sending_paused():
            raise CommandError("sending is paused after repeated errors; see the curators' alert email")
        self._check_ready(day)
        plan = sending.plan_date(day)
        ids = list(
            Delivery.objects.filter(digest_date=day, status=Delivery.Status.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        progress = Progress(len(ids), sys.stderr)
        total = sending.BatchReport()
        with Mailer() as mailer:
            for start in range(0, len(ids), settings.DIGEST_BATCH_SIZE):
                batch = ids[start : start + settings.DIGEST_BATCH_SIZE]
                report = sending.send_batch(batch, mailer=mailer, progress=progress)
                total.add(report)
                if report.stopped:
                    break
        progress.close()
        counts = dict(Delivery.objects.filter(digest_date=day).values_list("status").annotate(n=Count("id")).order_by())
        summary = (
            f"digests of {day}: {plan.planned} planned now, {total.sent} sent, {total.skipped} skipped,"
            f" {total.bounced} bounced, {total.failed} failed, {total.retry} left pending;"
            f" all of {day}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        )
        self.stdout.write(summary)
        if total.stopped:
            raise CommandError(f"sending stopped: {total.stopped}")
        if total.failed or total.retry:
            raise CommandError(f"{total.failed + total.retry} digests were not sent; see the deliveries' errors")
