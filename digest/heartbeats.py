"""Signs of life from the Celery worker and beat, kept in the shared cache for /healthz."""

import time

from django.core.cache import cache

WORKER = "worker"  # stamped while a worker is connected and consuming
BEAT = "beat"  # stamped when beat starts and after each hourly planner run
# How often a running worker stamps: well inside HEALTH_MAX_WORKER_AGE.
WORKER_INTERVAL = 30


def stamp(part: str) -> None:
    cache.set(f"heartbeat:{part}", time.time(), timeout=None)


def age(part: str) -> float | None:
    """Seconds since `part` was last stamped, None if it never was."""
    stamped = cache.get(f"heartbeat:{part}")
    return None if stamped is None else max(0.0, time.time() - stamped)
