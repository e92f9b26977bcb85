"""Run the whole service on this machine: web, a Celery worker and beat, with local defaults."""

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
        procs = {name: subprocess.Popen(cmd, cwd=settings.BASE_DIR) for name, cmd in commands.items()}
        self.stdout.write(
            self.style.SUCCESS(f"serving http://{addr} with a worker and beat; emails land in {settings.OUTBOX_DIR}")
        )
        self.stdout.write("press Ctrl-C to stop")
        try:
            while all(p.poll() is None for p in procs.values()):
                time.sleep(0.5)
            dead = [name for name, p in procs.items() if p.poll() is not None]
            self.stderr.write(f"{', '.join(dead)} stopped; shutting down the rest")
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs.values():
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
