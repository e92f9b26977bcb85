"""Thin Celery doors into digest.services: ids in, one service call."""

from celery import shared_task

from digest import services


@shared_task
def send_confirmation(subscriber_id: int) -> bool:
    return services.confirmation_send(subscriber_id=subscriber_id)


@shared_task
def send_manage_link(subscriber_id: int) -> bool:
    return services.manage_link_send(subscriber_id=subscriber_id)


@shared_task
def sweep_confirmations() -> int:
    return services.confirmations_sweep()
