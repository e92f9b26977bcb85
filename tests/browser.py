"""A real headless Chromium (Debian's) driven by Playwright's sync API.

The fixtures here serve the e2e tests and the whole-system tests. Without
/usr/bin/chromium they skip, unless E2E_REQUIRED=1 (as in CI), where a missing browser
is a failure. Screenshots go to test-artifacts/e2e/.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from
# a thread with a running loop unless told that this is deliberate.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "e2e"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("E2E_REQUIRED") == "1":
            pytest.fail(f"E2E_REQUIRED=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh browser context (no cookies) in Berlin time, with a 20 s ceiling on every wait."""
    context = browser.new_context(timezone_id="Europe/Berlin", locale="en-GB")
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(page, request: pytest.FixtureRequest):
    """screenshot("step") saves test-artifacts/e2e/<test>-<n>-step.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^\w.-]+", "_", request.node.name)
    count = iter(range(1, 1000))

    def take(step: str) -> Path:
        path = ARTIFACTS / f"{test}-{next(count):02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
