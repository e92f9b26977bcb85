"""The e2e tests: Django's live server and a real Chromium (fixtures in tests/browser.py)."""

import os

import pytest

from tests.digest.conftest import (  # noqa: F401 - browser tests send digests and fetch papers too
    fast_sending,
    paper_sources,
    smtp_server,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)  # a live server and a browser
