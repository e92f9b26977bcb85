"""benchdigest runs end to end and reports its figures (speed itself is not asserted)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_ARGS = ["--subscribers", "40", "--naive", "5", "--batch-size", "15"]


def benchdigest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run benchdigest as a user would, on a throwaway SQLite database under ``tmp_path``."""
    env = {
        **os.environ,
        "DIGEST_NO_BOOTSTRAP": "1",
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", "benchdigest", *BENCH_ARGS, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("processes", ["1", "2"])
def test_it_sends_through_a_local_sink_and_prints_every_stage(tmp_path: Path, processes: str) -> None:
    done = benchdigest(tmp_path, "--processes", processes)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    sent = int(re.search(r"40 planned, (\d+) sent", out).group(1))
    assert 0 < sent <= 40
    assert f"{processes} sending process(es)" in out
    for stage in ("plan", "prepare", "rank", "render", "send", "record", "total"):
        assert re.search(rf"^  {stage} +\d+\.\d+ +\d+\.\d+$", out, re.M), stage
    assert re.search(r"end to end: [\d,]+ digests/s, CPU [\d.]+ ms/digest", out)
    assert re.search(r"naive path \(premailer per email\): [1-5] sent", out)
    assert re.search(r"speed-up of pre-inlining: [\d.]+x", out)
    # The throwaway database is gone afterwards.
    assert not list(tmp_path.glob("bench-*.sqlite3"))


def test_it_signs_every_digest_with_dkim_and_reports_the_signing_stage(tmp_path: Path) -> None:
    done = benchdigest(tmp_path, "--naive", "0", "--dkim")
    assert done.returncode == 0, done.stderr
    assert "DKIM on (2048-bit RSA)" in done.stdout
    sign = re.search(r"^  sign +(\d+\.\d+) +(\d+\.\d+)$", done.stdout, re.M)
    assert sign and float(sign.group(2)) > 0
