"""The email provider's webhooks: /webhooks/<provider>/tracking/ and /inbound/ (django-anymail's
views, which check the basic auth or signature each provider uses), fed into digest/events.py."""

import logging

from anymail.signals import inbound as anymail_inbound
from anymail.signals import tracking as anymail_tracking
from django.conf import settings
from django.dispatch import receiver
from django.urls import include, path

from digest import events, inbound
from digest.mail import reports

logger = logging.getLogger(__name__)

urlpatterns = [path("webhooks/", include("anymail.urls"))]


@receiver(anymail_tracking, dispatch_uid="digest.webhooks.tracking")
def on_tracking(sender: object, event: object, esp_name: str, **kwargs: object) -> None:
    found = events.from_tracking(event, esp_name=esp_name)
    if found is not None:
        events.event_record(found)


@receiver(anymail_inbound, dispatch_uid="digest.webhooks.inbound")
def on_inbound(sender: object, event: object, esp_name: str, **kwargs: object) -> None:
    """Mail the provider received for us: a mailto unsubscribe, or a bounce or complaint
    report forwarded there; read exactly as the IMAP mailbox reads it."""
    if not settings.INBOUND_WEBHOOK:
        return
    report = reports.parse(event.message.as_bytes(), unsubscribe_address=settings.UNSUBSCRIBE_MAILTO)
    found = inbound.report_event(report, source=esp_name.lower().replace(" ", "_")[:32])
    if found is None:
        logger.info("inbound mail from %s (%s) is nothing this service reads", esp_name, report.kind)
        return
    events.event_record(found)
