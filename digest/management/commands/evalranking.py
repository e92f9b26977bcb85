"""Score the shipped ranker and its baselines on the hand-labelled personas."""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from digest.ranking.evaluation import EvaluationError, evaluate, format_table, load_fixtures


class Command(BaseCommand):
    help = "nDCG@10, recall@10 and P@5 per persona for the shipped ranker, BM25 and the phrase-only ranker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fixtures",
            type=Path,
            default=Path(settings.BASE_DIR) / "tests" / "fixtures" / "relevance",
            help="folder with personas.json and labels/ (default: the repository's tests/fixtures/relevance)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")

    def handle(self, *args, **options) -> None:
        try:
            fixtures = load_fixtures(options["fixtures"])
        except EvaluationError as exc:
            raise CommandError(str(exc)) from None
        result = evaluate(fixtures)
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self.stdout.write(
                f"{len(fixtures.personas)} personas, {len(fixtures.papers)} papers; graded gains 2/1/0, top 10\n"
            )
            self.stdout.write(format_table(result))
