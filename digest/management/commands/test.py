"""`manage.py test` runs the whole pytest suite (Django's own runner is not used here)."""

import os
import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


def run_pytest(args: list[str]) -> int:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=settings.BASE_DIR, env=os.environ).returncode


class Command(BaseCommand):
    help = "Run the whole test suite with pytest; extra arguments go to pytest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pytest_args", nargs="*", help="passed to pytest, e.g. -k feed or tests/papers")

    def run_from_argv(self, argv: list[str]) -> None:
        # Hand every argument (-k, -x, paths, ...) to pytest untouched instead of parsing it here.
        sys.exit(run_pytest(argv[2:]))

    def handle(self, *args: object, **options: object) -> None:
        code = run_pytest(list(options.get("pytest_args") or []))
        if code:
            raise SystemExit(code)
