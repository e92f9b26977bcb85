"""Run the whole service on this machine: web, a Celery worker and beat, with local defaults."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

import papers
from digest import services as digest_services
from papers import services
from papers.models import ScrapeRun

SAMPLE = Path(papers.__file__).parent / "sample" / "daily_papers_2025-11-07.json"


class Command(BaseCommand):
    help = "Migrate, create a local curator, scrape, then serve the site with a worker and beat beside it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="where the web server listens")
        parser.add_argument("--no-scrape", action="store_true", help="skip the start-up scrape")

    def handle(self, *args: object, **options: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database ready: " + str(settings.DATABASES["default"]["NAME"]))
        addr = str(options["addr"])
        self.ensure_curator(site=f"http://{addr}")
        if not options["no_scrape"]:
            self.first_scrape()
        self.serve(addr)

    def ensure_curator(self, *, site: str) -> None:
        login_file = settings.VAR_DIR / "curator-login.txt"
        user_model = get_user_model()
        if not user_model.objects.filter(is_superuser=True).exists():
            # The machine's operator: a superuser, also in the curator group like every curator.
            _, password = digest_services.curator_create(email="curator@localhost", username="curator", superuser=True)
            login_file.parent.mkdir(parents=True, exist_ok=True)
            login_file.write_text(f"username: curator\npassword: {password}\n")
            login_file.chmod(0o600)
        where = f"{site}/{settings.ADMIN_URL}"
        if login_file.exists():
            self.stdout.write(f"curator console: {where}  ({login_file.read_text().strip().replace(chr(10), ', ')})")
        else:
            self.stdout.write(f"curator console: {where}  (log in with your superuser account)")

    def first_scrape(self) -> None:
        yesterday = services.local_today() - timedelta(days=1)
        self.stdout.write(f"scraping {settings.HF_BASE_URL} for {yesterday} …")
        run = services.scrape_day(day=yesterday, client=services.feed_client_quick())
        if run.status != ScrapeRun.Status.FAILED:
            self.stdout.write(run.summary())
            return
        self.stdout.write(
            self.style.WARNING(
                "the live feed is not reachable (see above); loading the bundled sample of real feed data"
            )
        )
        self.stdout.write(services.scrape_file(path=SAMPLE).summary())

    def serve(self, addr: str) -> None:
        python = sys.executable
        commands = {
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "digest",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
            ],
            "beat": [python, "-m", "celery", "-A", "digest", "beat", "--loglevel", "INFO"],
            "web": [python, str(settings.BASE_DIR / "manage.py"), "runserver", "--noreload", addr],
        }
        procs: dict[str, subprocess.Popen[bytes]] = {}
        previous = signal.signal(signal.SIGTERM, _stop), signal.getsignal(signal.SIGINT)
        try:
            for name, command in commands.items():
                procs[name] = self.spawn(command)
            self.stdout.write(
                self.style.SUCCESS(
                    f"serving http://{addr} with a worker and beat; emails land in {settings.OUTBOX_DIR}"
                )
            )
            self.stdout.write("press Ctrl-C to stop")
            self.supervise(procs, commands)
        except (KeyboardInterrupt, Stopped):
            pass
        finally:
            # A second Ctrl-C or SIGTERM must not cut the shutdown short and orphan a child.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.stop_all(procs)
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])

    def spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        # Each child leads a process group of its own (a worker's pool processes are in it),
        # so stopping it stops all of it; Ctrl-C reaches only up, which stops them in turn.
        return subprocess.Popen(command, cwd=settings.BASE_DIR, start_new_session=True)

    def supervise(self, procs: dict[str, subprocess.Popen[bytes]], commands: dict[str, list[str]]) -> None:
        """Restart a child that exits, after a back-off that grows while it keeps failing."""
        started = dict.fromkeys(procs, time.monotonic())
        failures = dict.fromkeys(procs, 0)
        due: dict[str, float] = {}
        while True:
            now = time.monotonic()
            for name, proc in list(procs.items()):
                if name in due:
                    if now >= due[name]:
                        del due[name]
                        procs[name], started[name] = self.spawn(commands[name]), now
                        self.stderr.write(f"{name} restarted")
                    continue
                code = proc.poll()
                if code is None:
                    if now - started[name] >= STABLE_AFTER:
                        failures[name] = 0
                    continue
                _signal_group(proc, signal.SIGKILL)  # what the crashed child left, e.g. pool processes
                delay = restart_delay(failures[name])
                failures[name] += 1
                due[name] = now + delay
                self.stderr.write(f"{name} exited with code {code}; restarting it in {delay} s")
            time.sleep(0.2)

    def stop_all(self, procs: dict[str, subprocess.Popen[bytes]]) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                # The leader only: a worker stops its own pool processes (warm shutdown).
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)  # the child, or what it left behind
            proc.wait()


# Seconds before the nth restart in a row of one child; the last one repeats.
RESTART_DELAYS = (1, 2, 5, 10, 30)
# A child that has run this long has recovered: its next crash waits the first delay again.
STABLE_AFTER = 60


def restart_delay(failures: int) -> int:
    return RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]


class Stopped(Exception):
    """SIGTERM (from a process manager or `timeout`), handled as Ctrl-C is."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(proc.pid, sig)
