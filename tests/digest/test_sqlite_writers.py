"""The embedded SQLite database shared by web, worker and beat: concurrent writers wait, never fail.

`up` runs gunicorn, a Celery worker and beat on one SQLite file. Two transactions that
both read and then write used to deadlock on SQLite's lock upgrade, which SQLite answers
at once with "database is locked", whatever the busy timeout (the load test met it under
machine load). Transactions that take the write lock when they begin queue instead.
"""

import threading
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction

from digest.settings import sqlite_options


def test_it_queues_two_read_then_write_transactions_instead_of_failing_one(tmp_path: Path, django_db_blocker) -> None:
    with django_db_blocker.unblock():  # a database of its own, not the test database
        run_two_writers(tmp_path)


def run_two_writers(tmp_path: Path) -> None:
    configured = settings.DATABASES["default"]
    if configured["ENGINE"] != "django.db.backends.sqlite3":
        configured = {**configured, "ENGINE": "django.db.backends.sqlite3", "OPTIONS": {}}
    connections.settings["writers"] = {
        **configured,
        "NAME": str(tmp_path / "db.sqlite3"),
        "OPTIONS": sqlite_options(),
        "TEST": {},
    }
    try:
        with connections["writers"].cursor() as cursor:
            cursor.execute("CREATE TABLE ledger (n integer)")
        two_writers()
        with connections["writers"].cursor() as cursor:
            cursor.execute("SELECT n FROM ledger ORDER BY n")
            rows = cursor.fetchall()
        assert rows == [(1,), (2,)]
    finally:
        connections["writers"].close()
        del connections["writers"]
        del connections.settings["writers"]


def two_writers() -> None:

    first_inside, second_read = threading.Event(), threading.Event()
    errors: list[Exception] = []

    def read_then_write(n: int) -> None:
        try:
            if n == 2:
                first_inside.wait(5)
            with transaction.atomic(using="writers"), connections["writers"].cursor() as cursor:
                cursor.execute("SELECT count(*) FROM ledger")
                if n == 1:
                    first_inside.set()
                    second_read.wait(1)  # the other transaction reads too, when it can begin at all
                else:
                    second_read.set()
                cursor.execute("INSERT INTO ledger VALUES (%s)", [n])
        except Exception as exc:  # anything a thread meets fails the test, not only locks
            errors.append(exc)
        finally:
            connections["writers"].close()  # this thread's connection

    threads = [threading.Thread(target=read_then_write, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
