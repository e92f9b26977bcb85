"""/healthz on the deployed stack: the broker answering is not enough, a worker must consume it."""

import httpx
from stack import Stack, wait_for


def test_it_reports_the_worker_stale_until_a_worker_runs(stack: Stack) -> None:
    stack.start("web")

    response = httpx.get(stack.url + "/healthz", timeout=10)
    assert response.status_code == 503
    assert (response.json()["broker"], response.json()["worker"]) == ("ok", "stale")

    stack.start("worker")
    body = wait_for(
        lambda: (b := httpx.get(stack.url + "/healthz", timeout=10).json())["worker"] == "ok" and b,
        timeout=30,
        what="the worker's heartbeat",
    )
    assert body["last_worker_heartbeat_age_seconds"] <= 30
