"""Thin Celery doors into the digest services: ids in, one service call."""

from celery import shared_task

from digest import heartbeats, inbound, liked, sending, services


@shared_task
def send_confirmation(subscriber_id: int) -> bool:
    return services.confirmation_send(subscriber_id=subscriber_id)


@shared_task
def send_manage_link(subscriber_id: int, requested: bool = False) -> bool:
    return services.manage_link_send(subscriber_id=subscriber_id, requested=requested)


@shared_task
def fetch_liked_papers(subscriber_id: int) -> dict[str, int]:
    """The papers a subscriber named that the form could not fetch in time (one task per import)."""
    report = liked.liked_papers_fetch(subscriber_ids=[subscriber_id])
    return {"found": report.found, "not_found": report.not_found, "left": report.left}


@shared_task
def sweep_confirmations() -> int:
    return services.confirmations_sweep()


@shared_task
def plan_digests() -> dict[str, int]:
    """Beat's hourly planner: plan due digests, release held ones, sweep, fan out."""
    report = sending.planner_run()
    heartbeats.stamp(heartbeats.BEAT)  # beat fired it and a worker ran it: /healthz's "beat"
    return {"planned": report.planned, "waiting": report.waiting, "batches": report.batches, "stuck": report.stuck}


# acks_late (settings) plus reject_on_worker_lost: a batch whose worker died is handed to
# another worker, whose claim finds nothing left pending; no email is sent twice.
@shared_task
def send_digest_batch(delivery_ids: list[int]) -> dict[str, int | str]:
    report = sending.send_batch(delivery_ids)
    return {"claimed": report.claimed, "sent": report.sent, "failed": report.failed, "stopped": report.stopped}


@shared_task
def read_inbound() -> dict[str, int]:
    """Beat's reader of the bounce / unsubscribe mailbox (when INBOUND_IMAP_URL is set)."""
    report = inbound.inbound_read()
    return {"read": report.read, "applied": report.applied, "left": report.left, "waiting": report.waiting}
