"""Faults in the middle of a send, on the deployed set-up: nothing lost, nothing sent twice.

Each test plans one day's digests for a few dozen subscribers, lets beat's planner fan
them out to a worker that sends slowly (DIGEST_SEND_RATE), breaks something mid-send,
repairs it, and then checks the same invariants: at most one email per (subscriber,
date); the SMTP server holds exactly the rows marked sent (plus any row reported stuck
because its worker died mid-conversation, which is what "stuck" means); nothing left
pending or sending once the sweeper has run.
"""

import shutil
import signal
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.utils import timezone

from tests.smtp import SmtpServer
from tests.system.stack import Stack, free_port, wait_for

SUBSCRIBERS = 30
FAST = {
    "DIGEST_SEND_RATE": "8",  # about four seconds of sending: room to break things mid-send
    "DIGEST_BATCH_SIZE": "6",
    "DIGEST_STUCK_AFTER": "6",
    "DIGEST_RETRY_BACKOFF": "0.2",
    "DIGEST_PAUSE_SECONDS": "2",
    "DIGEST_MAX_ATTEMPTS": "20",
    "EMAIL_TIMEOUT": "3",
}


def prepare(stack: Stack) -> None:
    """Yesterday's papers scraped, SUBSCRIBERS active subscribers due now, planner every 2 s."""
    stack.env.update(FAST)
    yesterday = timezone.localdate() - timedelta(days=1)
    stack.manage("scrape", "--date", yesterday.isoformat())
    stack.python(
        "from digest.models import Subscriber\n"
        "Subscriber.objects.bulk_create([Subscriber(email=f'reader{n}@example.org', status='active',"
        f" topics=[], send_hour=0, time_zone='UTC') for n in range({SUBSCRIBERS})])\n"
    )
    stack.every("digest.tasks.plan_digests", 2)


def digests(smtp: list[SmtpServer]) -> list[str]:
    return [m.rcpt_tos[0] for server in smtp for m in server.messages if m.message()["List-Id"]]


def settle(stack: Stack) -> None:
    wait_for(
        lambda: (
            stack.scalar("SELECT count(*) FROM digest_delivery WHERE status IN ('pending', 'sending', 'waiting')") == 0
            and stack.scalar("SELECT count(*) FROM digest_delivery") == SUBSCRIBERS
        ),
        timeout=120,
        what="every delivery settled",
    )


def check(stack: Stack, *smtp: SmtpServer) -> None:
    received = digests(list(smtp))
    per_address = Counter(received)
    assert not [a for a, n in per_address.items() if n > 1], per_address
    sent = {e for (e,) in stack.rows("SELECT s.email FROM digest_delivery d JOIN digest_subscriber s ON"
                                     " s.id = d.subscriber_id WHERE d.status = 'sent'")}  # fmt: skip
    stuck = {e for (e,) in stack.rows("SELECT s.email FROM digest_delivery d JOIN digest_subscriber s ON"
                                      " s.id = d.subscriber_id WHERE d.status = 'stuck'")}  # fmt: skip
    assert sent <= set(received)
    assert set(received) - sent <= stuck  # a message only a stuck row can account for
    assert len(sent) + len(stuck) == SUBSCRIBERS  # nothing lost: sent, or reported
    assert len(stuck) <= 2  # only rows caught mid-conversation: one per worker process at most


def planner_runs(stack: Stack, beat: str) -> int:
    return stack.log(beat).count("digest.tasks.plan_digests")


def started_sending(smtp: SmtpServer, at_least: int = 3) -> None:
    wait_for(lambda: len(digests([smtp])) >= at_least, timeout=90, what=f"{at_least} digests sent")


def test_a_worker_killed_mid_batch_then_restarted(stack: Stack, smtp_server: SmtpServer) -> None:
    prepare(stack)
    stack.start("worker")
    stack.start("beat")
    started_sending(smtp_server)
    stack.stop("worker", signal.SIGKILL)
    assert len(digests([smtp_server])) < SUBSCRIBERS
    stack.start("worker")
    settle(stack)
    check(stack, smtp_server)


def test_two_beats_at_once(stack: Stack, smtp_server: SmtpServer) -> None:
    prepare(stack)
    stack.start("worker")
    stack.start("worker2")
    stack.start("beat")
    stack.start("beat2")
    settle(stack)
    planned = {beat: planner_runs(stack, beat) for beat in ("beat", "beat2")}
    wait_for(
        lambda: all(planner_runs(stack, beat) >= n + 2 for beat, n in planned.items()),
        what="two more planner runs from each beat",
    )
    check(stack, smtp_server)
    assert len(digests([smtp_server])) == SUBSCRIBERS


def test_the_smtp_server_down_mid_send_and_back_later(stack: Stack, smtp_server: SmtpServer) -> None:
    prepare(stack)
    stack.start("worker")
    stack.start("beat")
    started_sending(smtp_server)
    smtp_server.shut_down()  # between two messages: the relay answers 421, then stops listening
    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM digest_delivery WHERE outcome = 'retrying'"),
        what="batches meeting the relay down, their rows back to pending",
    )
    revived = SmtpServer(port=smtp_server.port).start()
    try:
        settle(stack)
        check(stack, smtp_server, revived)
        assert len(digests([smtp_server, revived])) == SUBSCRIBERS
        assert digests([revived])
    finally:
        revived.stop()


def test_the_database_connection_killed_mid_send(stack: Stack, smtp_server: SmtpServer) -> None:
    prepare(stack)
    stack.start("worker")
    stack.start("beat")
    started_sending(smtp_server)
    with psycopg.connect(stack.admin_url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (stack.db_name,),
        ).fetchone()[0]
    assert killed >= 1
    settle(stack)
    check(stack, smtp_server)
    assert len(digests([smtp_server])) == SUBSCRIBERS


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator["RedisServer"]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class RedisServer:
    """A redis-server of the test's own, so restarting it disturbs nobody else."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        wait_for(lambda: redis.Redis.from_url(self.url).ping(), timeout=20, what="private redis")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_redis_restarted_and_flushed_mid_send(stack: Stack, smtp_server: SmtpServer, private_redis) -> None:
    stack.env["REDIS_URL"] = private_redis.url
    prepare(stack)
    stack.start("worker")
    stack.start("beat")
    started_sending(smtp_server)
    private_redis.stop()  # queued batches, the journal and the cache are gone with it
    wait_for(
        lambda: any(line in stack.log("worker") for line in ("Connection to broker lost", "Cannot connect to")),
        timeout=30,
        what="the worker meeting Redis down",
    )
    private_redis.start()
    settle(stack)
    check(stack, smtp_server)
    assert len(digests([smtp_server])) == SUBSCRIBERS


def sweeps(stack: Stack) -> int:
    return stack.log("beat").count("digest.tasks.sweep_confirmations")


class StallingRelay:
    """A relay that greets with 220 and then never answers: a worker sending to it sits
    inside the SMTP conversation until it is killed."""

    def __init__(self, port: int) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            conn.sendall(b"220 stall ESMTP\r\n")
            self.accepted.append(conn)

    def stop(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self.server.close()
        self.thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()


def test_a_worker_killed_inside_a_confirmation_conversation(stack: Stack, smtp_server: SmtpServer) -> None:
    """The claim of a confirmation whose worker died mid-send is swept and sent once."""
    smtp_server.stop()
    relay = StallingRelay(smtp_server.port)
    stack.env.update({"EMAIL_TIMEOUT": "120", "DIGEST_STUCK_AFTER": "6"})
    try:
        stack.start("worker")
        stack.python(
            "from digest import services\n"
            "services.subscriber_subscribe(email='late@example.org', preferences={'topics': ['agents']},"
            " ip=None, user_agent='system test', form_version='test')\n"
        )
        wait_for(lambda: relay.accepted, timeout=60, what="the worker inside the SMTP conversation")
        stack.stop("worker", signal.SIGKILL)  # the whole process group, mid-conversation
    finally:
        relay.stop()
    claimed, sent = stack.rows(
        "SELECT confirmation_claimed_at, confirmation_sent_at FROM digest_subscriber WHERE email = %s",
        "late@example.org",
    )[0]
    assert claimed is not None and sent is None  # claimed, never recorded: the outcome is unknown

    revived = SmtpServer(port=smtp_server.port).start()
    try:
        stack.every("digest.tasks.sweep_confirmations", 2)
        stack.start("worker")
        stack.start("beat")
        wait_for(lambda: revived.to("late@example.org"), timeout=90, what="the swept confirmation")
        swept = sweeps(stack)
        wait_for(lambda: sweeps(stack) >= swept + 3, what="three more sweeps")  # none may send it again
        assert len(revived.to("late@example.org")) == 1
        assert stack.scalar("SELECT confirmation_sent_at FROM digest_subscriber WHERE email = %s", "late@example.org")
    finally:
        revived.stop()
