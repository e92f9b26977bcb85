"""gunicorn, the Celery worker and beat, and migrate stop on a bad setting or an unreachable
database with one readable line and a non-zero exit, as manage.py does, not a traceback."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.digest.test_settings import READ_VARS

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BAD_DEBUG = "configuration error: DEBUG must be true or false, got 'maybe'"


def run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in READ_VARS and not k.startswith("DJANGO_")}
    return subprocess.run(
        argv,
        env={**clean, "DIGEST_NO_BOOTSTRAP": "1", "VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,  # a server that respawns failing workers forever fails the test here
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PROGRAMS = {
    # as docker-compose runs web: the app is loaded once, before any worker starts
    "gunicorn": [str(BIN / "gunicorn"), "digest.wsgi", "--bind", "127.0.0.1:0", "--workers", "1", "--preload"],
    "celery worker": [str(BIN / "celery"), "-A", "digest", "worker", "--concurrency", "1"],
    "celery beat": [str(BIN / "celery"), "-A", "digest", "beat"],
}


@pytest.mark.parametrize("program", PROGRAMS)
def test_it_stops_with_one_line_on_a_bad_setting(program: str, tmp_path: Path) -> None:
    result = run(PROGRAMS[program], tmp_path, DEBUG="maybe")

    assert result.returncode != 0
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == BAD_DEBUG


def test_it_stops_gunicorn_with_one_line_when_each_worker_loads_the_app(tmp_path: Path) -> None:
    """Without --preload the line comes from the worker, and gunicorn stops instead of respawning it."""
    argv = [str(BIN / "gunicorn"), "digest.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"]
    result = run(argv, tmp_path, DEBUG="maybe")

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "DEBUG" in line] == [BAD_DEBUG]


def test_it_stops_migrate_with_one_line_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = f"postgres://digest:digest@127.0.0.1:{closed_port()}/digest"
    result = run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], tmp_path, DATABASE_URL=url)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("database error: ")
    assert "127.0.0.1" in lines[0] and "refused" in lines[0].lower()


def test_it_stops_beat_with_one_line_when_the_database_is_unreachable(tmp_path: Path) -> None:
    """Beat's scheduler lives in the database: it printed 1,710 lines and 4 tracebacks."""
    url = f"postgres://digest:digest@127.0.0.1:{closed_port()}/digest"
    result = run(PROGRAMS["celery beat"], tmp_path, DATABASE_URL=url)

    assert result.returncode != 0
    assert result.stdout.strip() == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("database error: ")
    assert "127.0.0.1" in lines[0] and "refused" in lines[0].lower()
