"""The circuit breaker: after too many errors in a row, sending stops for a while.

While paused, batches leave their rows pending and the planner fans nothing out;
curators are alerted once. The pause lives in the shared cache, so every worker sees it.
"""

from django.conf import settings
from django.core.cache import cache

from papers.services import alert_curators

PAUSE_KEY = "digest:sending-paused"


def sending_paused() -> bool:
    return bool(cache.get(PAUSE_KEY))


def pause_sending(reason: str) -> None:
    seconds = settings.DIGEST_PAUSE_SECONDS
    if cache.add(PAUSE_KEY, reason, timeout=seconds):
        alert_curators(
            subject="Digest sending paused",
            body=f"Sending stopped for {seconds} seconds: {reason}. Unsent digests stay pending and go out after.",
        )
