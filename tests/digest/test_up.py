import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from digest.management.commands.up import Command
from papers.models import Paper, ScrapeRun
from tests.digest.test_settings import READ_VARS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_it_falls_back_to_the_bundled_sample_when_offline(settings) -> None:
    """Offline, the start-up scrape says so and loads real sample data instead of leaving the site empty."""
    settings.HF_BASE_URL = closed_port_url()
    out = StringIO()
    command = Command(stdout=out)

    command.first_scrape()

    text = out.getvalue()
    assert "not reachable" in text
    assert "bundled sample" in text
    assert ScrapeRun.objects.filter(status=ScrapeRun.Status.FAILED, source="daily").count() == 1
    assert ScrapeRun.objects.filter(status=ScrapeRun.Status.OK, source="file").count() == 1
    assert Paper.objects.count() == 15


def test_it_creates_one_curator_and_prints_how_to_log_in(settings) -> None:
    out = StringIO()
    command = Command(stdout=out)

    command.ensure_curator(site="http://127.0.0.1:8000")
    command.ensure_curator(site="http://127.0.0.1:8000")

    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    login = (settings.VAR_DIR / "curator-login.txt").read_text()
    password = login.split("password: ")[1].strip()
    assert get_user_model().objects.get(username="curator").check_password(password)
    assert out.getvalue().count("http://127.0.0.1:8000/admin/") == 2
    assert password in out.getvalue()


# --- supervising web, worker and beat: real processes -------------------------------


def processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, command line) of every process on the machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        found[int(entry.name)] = (int(fields[1]), int(fields[3]), cmdline)
    return found


def children(up: subprocess.Popen) -> dict[str, int]:
    """up's children by role: web, worker, beat."""
    roles = {"runserver": "web", " worker ": "worker", " beat ": "beat"}
    return {
        role: pid
        for pid, (ppid, _, cmdline) in processes().items()
        if ppid == up.pid
        for marker, role in roles.items()
        if marker in cmdline
    }


def wait_until(check, *, timeout: float = 60.0, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """`manage.py up` on the local defaults in a directory of its own, and its stderr's file."""
    clean = {k: v for k, v in os.environ.items() if k not in READ_VARS and not k.startswith("DJANGO_")}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "up", "--no-scrape", "--addr", f"127.0.0.1:{port}"],
        env={**clean, "DIGEST_NO_BOOTSTRAP": "1", "VAR_DIR": str(tmp_path / "var")},
        cwd=ROOT,
        stdout=out.open("wb"),
        stderr=err.open("wb"),
        start_new_session=True,  # up and anything it leaves behind can be told from this test run
    )
    try:
        wait_until(lambda: "press Ctrl-C to stop" in out.read_text(), timeout=120, what="up to serve")
        wait_until(lambda: len(children(proc)) == 3, what="web, worker and beat")
        yield proc, err
    finally:
        # Whatever a failed test left running: up's session and its children's.
        sessions = {proc.pid} | {processes()[pid][1] for pid in children(proc).values()}
        proc.kill()
        for pid, (_, sid, _) in processes().items():
            if sid in sessions:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_it_restarts_a_crashed_child_with_a_back_off_and_keeps_the_others(up) -> None:
    proc, err = up
    before = children(proc)

    os.kill(before["worker"], signal.SIGKILL)
    wait_until(lambda: "worker exited with code -9; restarting it in 1 s" in err.read_text(), what="the restart line")
    wait_until(lambda: children(proc).get("worker", before["worker"]) != before["worker"], what="a new worker")
    after = children(proc)
    assert (after["web"], after["beat"]) == (before["web"], before["beat"])
    assert proc.poll() is None

    os.kill(after["worker"], signal.SIGKILL)  # crashing again soon after: a longer wait
    wait_until(lambda: "worker exited with code -9; restarting it in 2 s" in err.read_text(), what="a longer back-off")
    wait_until(lambda: children(proc).get("worker", after["worker"]) != after["worker"], what="another worker")


def test_it_stops_every_child_on_sigterm_as_on_ctrl_c(up) -> None:
    proc, _ = up
    running = children(proc)
    sessions = {proc.pid} | {processes()[pid][1] for pid in running.values()}

    proc.send_signal(signal.SIGTERM)

    assert proc.wait(timeout=60) == 0
    left = [cmd for pid, (_, sid, cmd) in processes().items() if pid in running.values() or sid in sessions]
    assert left == []
