#!/usr/bin/env python3
"""Django's command-line utility, able to set itself up on a fresh machine.

Run with any Python 3.11+. `up` and `test` first make sure `.venv/` beside this file
exists and holds the project as `pyproject.toml` describes it (the test extras for
`test`), then re-run themselves inside it, so `python3 manage.py up` is the whole
installation. Other commands use `.venv/` when it exists.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_installed(extras: str) -> None:
    """Install the project into .venv unless pyproject.toml is unchanged since the last install."""
    stamp = VENV / f".installed{extras or '[base]'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    if not PYTHON.exists():
        print(f"manage.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"manage.py: installing the project{extras} into .venv (first run takes a minute)", flush=True)
    subprocess.run(
        [
            str(PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}{extras}",
        ],
        check=True,
    )
    stamp.write_text(digest)


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in ("up", "test") and not os.environ.get("DIGEST_NO_BOOTSTRAP"):
        ensure_installed("[dev]" if command == "test" else "")
    if not in_venv() and PYTHON.exists() and not os.environ.get("DIGEST_NO_BOOTSTRAP"):
        os.execv(str(PYTHON), [str(PYTHON), str(ROOT / "manage.py"), *sys.argv[1:]])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")
    try:
        from django.conf import settings
        from django.core.management import execute_from_command_line
        from django.db import connection
        from django.db.utils import OperationalError
    except ImportError:
        sys.exit("manage.py: Django is not installed; run `python3 manage.py up` once to set up .venv/")
    from digest.startup import configured, database_error

    configured(lambda: settings.INSTALLED_APPS)  # a bad variable: one line, not a traceback
    try:
        execute_from_command_line(sys.argv)
    except OperationalError as exc:
        # A database that cannot be reached (down, wrong host, port or password) is one line
        # too; any other database error keeps its traceback.
        try:
            connection.close()
            connection.ensure_connection()
        except OperationalError:
            sys.exit(database_error(exc))
        raise


if __name__ == "__main__":
    main()
