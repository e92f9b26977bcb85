"""The service as deployed, started natively: gunicorn, a Celery worker and beat.

They run against a fresh database on the real PostgreSQL server, a Redis database of
their own, a real SMTP server and a local feed server, all on 127.0.0.1. Tests drive it
from outside (HTTP, a browser, signals to processes) and read PostgreSQL to check
what it did.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], T], *, timeout: float = 60.0, what: str = "condition") -> T:
    """Poll until `check` returns something truthy; fail the test with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the service may still be starting
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Stack:
    def __init__(
        self, *, tmp: Path, server_url: str, redis_url: str, smtp_port: int, feed_url: str, extra_env: Mapping[str, str]
    ) -> None:
        self.tmp = tmp
        self.db_name = f"digest_system_{uuid.uuid4().hex[:10]}"
        parts = urlsplit(server_url)
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.database_url = urlunsplit(parts._replace(path=f"/{self.db_name}"))
        self.web_port = free_port()
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))},
            "DIGEST_NO_BOOTSTRAP": "1",
            "DEBUG": "false",
            "SECRET_KEY": "system-test-" + uuid.uuid4().hex * 2,
            "SITE_URL": self.url,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "EMAIL_USE_TLS": "false",
            "EMAIL_TIMEOUT": "5",
            "HF_BASE_URL": feed_url,
            "HF_MAX_RETRIES": "0",
            "VAR_DIR": str(tmp / "var"),
            "STATIC_ROOT": str(tmp / "static"),
            "LOG_FORMAT": "plain",
            "ADMINS": "Curators <curators@example.org>",
            **extra_env,
        }

    # -- lifecycle

    def create(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput")

    def destroy(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def manage(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            input=input,
            timeout=300,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def python(self, code: str) -> str:
        """Run Django code in the stack's environment (for setting up schedules and rows)."""
        return self.manage("shell", "-c", code)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        commands = {
            "web": ["-m", "gunicorn", "digest.wsgi", "--bind", f"127.0.0.1:{self.web_port}", "--workers", "2"],
            "worker": ["-m", "celery", "-A", "digest", "worker", "--concurrency", "2", "--loglevel", "INFO",
                       "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h"],
            "worker2": ["-m", "celery", "-A", "digest", "worker", "--concurrency", "2", "--loglevel", "INFO",
                        "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h"],
            "beat": ["-m", "celery", "-A", "digest", "beat", "--loglevel", "INFO",
                     "--schedule", str(self.tmp / "beat-schedule")],
            "beat2": ["-m", "celery", "-A", "digest", "beat", "--loglevel", "INFO",
                      "--schedule", str(self.tmp / "beat2-schedule")],
        }  # fmt: skip
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, *commands[name]], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs[name] = proc
        if name == "web":
            wait_for(lambda: httpx.get(f"{self.url}/healthz", timeout=2).status_code in (200, 503), what="gunicorn")
        elif name.startswith("worker"):
            wait_for(lambda: b"ready." in (self.logs / f"{name}.log").read_bytes(), what=f"{name} ready")
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- reading what the service did

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, *params: object) -> Any:
        rows = self.rows(sql, *params)
        return rows[0][0] if rows else None

    def every(self, task: str, seconds: int, *, name: str | None = None, kwargs: str = "{}") -> None:
        """Schedule a task every few seconds through django-celery-beat, as a curator could."""
        self.python(
            "from django_celery_beat.models import IntervalSchedule, PeriodicTask\n"
            f"every, _ = IntervalSchedule.objects.get_or_create(every={seconds}, period='seconds')\n"
            f"PeriodicTask.objects.update_or_create(name={name or task!r}, defaults=dict("
            f"task={task!r}, interval=every, crontab=None, kwargs={kwargs!r}, enabled=True))\n"
            # the production entries would wait for their hour; the test drives its own
            "PeriodicTask.objects.filter(crontab__isnull=False).update(enabled=False)\n"
        )
