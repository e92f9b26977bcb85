from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from papers import services
from papers.models import ScrapeRun


def iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--date must be YYYY-MM-DD, got {value!r}") from None


class Command(BaseCommand):
    help = "Bring in the Hugging Face daily papers list (or the trending list, or a saved file)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=str, help="the daily list of this day, YYYY-MM-DD (default: today)")
        parser.add_argument("--trending", action="store_true", help="the trending list instead of a day")
        parser.add_argument("--file", type=Path, help="a saved API JSON or HTML page instead of the network")
        parser.add_argument("--backfill", type=int, metavar="DAYS", help="also the DAYS-1 days before --date")

    def handle(self, *args: object, **options: object) -> None:
        day = iso_date(str(options["date"])) if options["date"] else None
        backfill = options["backfill"]
        if backfill is not None and not 1 <= int(backfill) <= 365:
            raise CommandError("--backfill must be between 1 and 365 days")
        if options["trending"] and (options["file"] or backfill):
            raise CommandError("--trending cannot be combined with --file or --backfill")
        if options["file"] and backfill:
            raise CommandError("--file cannot be combined with --backfill")

        if options["file"]:
            path = Path(str(options["file"]))
            if not path.is_file():
                raise CommandError(f"--file {path}: no such file")
            runs = [services.scrape_file(path=path, day=day)]
        elif options["trending"]:
            runs = [services.scrape_trending()]
        else:
            until = day or services.local_today()
            runs = [services.scrape_day(day=d) for d in services.days_back(until=until, days=int(backfill or 1))]

        failed = [run for run in runs if run.status == ScrapeRun.Status.FAILED]
        for run in runs:
            if run not in failed:
                self.stdout.write(run.summary())
        if failed:
            for run in failed[:-1]:
                self.stderr.write(run.summary())
            raise CommandError(failed[-1].summary())
