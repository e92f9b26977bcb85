"""tests/bench/loadtest.py in a tiny configuration, so the script keeps working.

Only the plumbing is checked here (site set-up, CSRF, one-click POSTs, counting); how
fast the service is gets measured by running the script itself (see docs/benchmarks.md).
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loadtest", ROOT / "tests" / "bench" / "loadtest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loadtest() -> ModuleType:
    return load_script()


def test_it_drives_every_endpoint_without_errors(loadtest: ModuleType) -> None:
    # SQLite and the filesystem broker in a temporary directory: no shared server is touched.
    report = loadtest.run(rate=20, duration=2, workers=2, database_url=None, redis_url=None, min_rps=1, max_p99=1e9)

    assert report.total.count == 40
    assert report.total.errors == 0, report.lines()
    assert {s.endpoint: s.errors for s in report.endpoints} == {"home": 0, "signup": 0, "unsubscribe": 0}
    assert sum(s.count for s in report.endpoints) == 40
    assert all(s.count > 0 for s in report.endpoints)
    assert report.lines()[-1].startswith("PASS")


def test_it_counts_wrong_answers_as_errors(loadtest: ModuleType) -> None:
    samples = [
        loadtest.Sample("home", due=0.0, latency=0.010, error=""),
        loadtest.Sample("home", due=0.5, latency=0.020, error="HTTP 500"),
        loadtest.Sample("signup", due=1.0, latency=0.030, error=""),
    ]

    home = loadtest.summarize(samples, "home")
    total = loadtest.summarize(samples, "all")

    assert (home.count, home.errors, home.error_examples) == (2, 1, ["HTTP 500"])
    assert (total.count, total.errors) == (3, 1)
    assert total.max == pytest.approx(30.0)
    report = loadtest.Report(endpoints=[home], total=total, min_rps=0, max_p99=1000)
    assert not report.passed
    assert report.lines()[-1].startswith("FAIL")


def test_percentiles_are_nearest_rank(loadtest: ModuleType) -> None:
    values = [float(v) for v in range(1, 101)]

    assert loadtest.percentile(values, 50) == 50.0
    assert loadtest.percentile(values, 99) == 99.0
    assert loadtest.percentile([], 99) == 0.0
