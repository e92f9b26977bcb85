"""A process's start on a bad setting: one readable line and a non-zero exit, not a traceback."""

import sys
from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

# gunicorn's "worker failed to boot": its master then stops instead of respawning workers
# that would fail the same way. To any other program it is just a non-zero exit.
BAD_CONFIGURATION = 3


def configured(load: Callable[[], T]) -> T:
    """`load()`, or exit with "configuration error: ..." when a setting is bad."""
    try:
        return load()
    except ImproperlyConfigured as exc:
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(BAD_CONFIGURATION) from None


def warn(line: str) -> None:
    """A setting that leaves part of the service off without stopping it: one line on stderr."""
    if line:
        print(f"configuration warning: {line}", file=sys.stderr, flush=True)


def database_error(exc: Exception) -> str:
    """The one line for a database that cannot be reached: its driver's first line."""
    return f"database error: {str(exc).strip().splitlines()[0]}"


def database_reachable() -> None:
    """Connect once, or exit with "database error: ..." when the database cannot be reached
    (down, wrong host, port or password), as manage.py does for its commands. For a process
    whose start needs the database; Celery beat's scheduler lives in it, and would otherwise
    retry and log tracebacks for every attempt."""
    from django.db import connection
    from django.db.utils import OperationalError

    try:
        connection.ensure_connection()
    except OperationalError as exc:
        print(database_error(exc), file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    finally:
        connection.close()
