"""The email provider's webhooks: /webhooks/<provider>/tracking/ and /inbound/, fed into digest/events.py.

django-anymail's views check the basic auth or signature each provider uses, but only warn
when none is configured, and anymail mounts every provider's. Here only the configured
EMAIL_PROVIDER's webhooks answer, and only once the secret or signing key that
authenticates them is set (:data:`CREDENTIALS`); any other /webhooks/ path answers 404, and
start-up and ``check --deploy`` say which setting is missing (:func:`missing_credential`).
Amazon SES events must also carry a valid Amazon SNS signature (digest/mail/sns.py).

A body that cannot be read (not UTF-8, not JSON, JSON of the wrong shape) answers 400.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from anymail.exceptions import AnymailError, AnymailWebhookValidationFailure
from anymail.signals import inbound as anymail_inbound
from anymail.signals import tracking as anymail_tracking
from anymail.webhooks.amazon_ses import AmazonSESInboundWebhookView, AmazonSESTrackingWebhookView
from anymail.webhooks.base import AnymailBasicAuthMixin, AnymailCoreWebhookView
from django.conf import settings
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import Resolver404, re_path, resolve
from django.views.decorators.csrf import csrf_exempt

from digest import events, inbound
from digest.mail import reports, sns

logger = logging.getLogger(__name__)

BASIC_AUTH = "WEBHOOK_SECRET"
# Per provider and route, the anymail settings (ANYMAIL_<NAME> in the environment) any one
# of which authenticates its webhook. Providers missing here have no webhooks in anymail.
_BASIC = {"tracking": (BASIC_AUTH,), "inbound": (BASIC_AUTH,)}
CREDENTIALS: dict[str, dict[str, tuple[str, ...]]] = {
    "amazon_ses": _BASIC,  # ... and every message's SNS signature, always checked
    "brevo": _BASIC,
    "sendinblue": _BASIC,
    "mailjet": _BASIC,
    "postmark": _BASIC,
    "sparkpost": _BASIC,
    "sendgrid": {"tracking": ("SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY", BASIC_AUTH), "inbound": (BASIC_AUTH,)},
    "mailgun": {"tracking": ("MAILGUN_WEBHOOK_SIGNING_KEY",), "inbound": ("MAILGUN_WEBHOOK_SIGNING_KEY",)},
    "postal": {"tracking": ("POSTAL_WEBHOOK_KEY",), "inbound": ("POSTAL_WEBHOOK_KEY",)},
    "mailersend": {"tracking": ("MAILERSEND_SIGNING_SECRET",), "inbound": ("MAILERSEND_INBOUND_SECRET",)},
    "mailtrap": {
        "tracking": ("MAILTRAP_TRACKING_SECRET", BASIC_AUTH),
        "inbound": ("MAILTRAP_INBOUND_SECRET", BASIC_AUTH),
    },
    "resend": {"tracking": ("RESEND_SIGNING_SECRET", BASIC_AUTH), "inbound": ("RESEND_INBOUND_SECRET", BASIC_AUTH)},
    "mandrill": {"tracking": ("MANDRILL_WEBHOOK_KEY",)},
    "unisender_go": {"tracking": ("UNISENDER_GO_API_KEY",)},
}
# What a body that does not parse raises inside anymail's views (a list where an object is
# expected, bytes that are not UTF-8, JSON that is not JSON, a missing field).
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, AnymailError)


def _configured(name: str) -> bool:
    anymail = getattr(settings, "ANYMAIL", {}) or {}
    return bool(anymail.get(name) or getattr(settings, f"ANYMAIL_{name}", None))


def _route(path: str) -> str:
    """anymail's route of a path under /webhooks/: "tracking" or "inbound"."""
    return "inbound" if "/inbound" in path else "tracking"


def mounted(provider: str, route: str) -> bool:
    """Whether /webhooks/<provider>/<route>/ answers: the configured provider, authenticated."""
    needs = CREDENTIALS.get(provider, {}).get(route)
    return provider == settings.EMAIL_PROVIDER and bool(needs) and any(_configured(name) for name in needs)


def missing_credential() -> str:
    """One line naming the setting the configured provider's webhooks wait for, or ""."""
    provider = settings.EMAIL_PROVIDER
    if provider == "smtp":
        if settings.INBOUND_WEBHOOK:
            return (
                "INBOUND_WEBHOOK=true but EMAIL_PROVIDER=smtp: no provider's inbound webhook is mounted,"
                " so mail to UNSUBSCRIBE_MAILTO is read by nothing unless INBOUND_IMAP_URL is set"
            )
        return ""
    for route in ("tracking", "inbound") if settings.INBOUND_WEBHOOK else ("tracking",):
        needs = CREDENTIALS.get(provider, {}).get(route)
        if not needs:
            if route == "inbound":
                return f"INBOUND_WEBHOOK=true but anymail has no inbound webhook for {provider}"
            continue
        if not any(_configured(name) for name in needs):
            names = " or ".join(f"ANYMAIL_{name}" for name in needs)
            what = "bounce and complaint webhooks" if route == "tracking" else "inbound webhook"
            return (
                f"EMAIL_PROVIDER={provider} but {names} is not set: its {what}"
                f" (/webhooks/{provider}/{route}/) answer 404 and act on nothing"
            )
    return ""


class _HandlerFailed(Exception):
    """Our handling of a well-formed event failed (a database error, ...): a 500, and the provider retries."""


class SnsSignatureMixin(AnymailCoreWebhookView):
    """Refuse an Amazon SNS message whose signature does not verify (collected by anymail's run_validators)."""

    def validate_request(self, request: HttpRequest) -> None:
        # The basic auth first (anymail runs this validator before its own): nobody without
        # the secret makes the service look at certificates.
        AnymailBasicAuthMixin.validate_request(self, request)  # type: ignore[arg-type]
        try:
            sns.verify(AmazonSESTrackingWebhookView._parse_sns_message(request))
        except sns.BadSignature as exc:
            raise AnymailWebhookValidationFailure(f"Amazon SNS signature: {exc}") from None


class VerifiedSESTrackingView(SnsSignatureMixin, AmazonSESTrackingWebhookView):
    pass


class VerifiedSESInboundView(SnsSignatureMixin, AmazonSESInboundWebhookView):
    pass


OWN_VIEWS: dict[str, Callable[..., HttpResponse]] = {
    "amazon_ses/tracking/": VerifiedSESTrackingView.as_view(),
    "amazon_ses/inbound/": VerifiedSESInboundView.as_view(),
}


@csrf_exempt
def provider_webhook(request: HttpRequest, rest: str) -> HttpResponse:
    provider = rest.split("/", 1)[0]
    if not mounted(provider, _route(rest)):
        raise Http404("no such webhook")
    view = OWN_VIEWS.get(rest)
    if view is None:
        try:
            view = resolve(f"/{rest}", urlconf="anymail.urls").func
        except Resolver404:
            raise Http404("no such webhook") from None
    try:
        return view(request)
    except _HandlerFailed as exc:
        raise exc.__cause__ from None  # type: ignore[misc]
    except AnymailWebhookValidationFailure:
        raise  # Django answers a SuspiciousOperation with 400
    except MALFORMED as exc:
        logger.info("malformed %s webhook body refused: %s", provider, str(exc)[:200])
        return HttpResponseBadRequest("malformed webhook body\n", content_type="text/plain")


urlpatterns = [re_path(r"^webhooks/(?P<rest>[a-z_]+/(?:[a-z_]+/)?)$", provider_webhook, name="provider-webhook")]


def _handled(handler: Callable[..., None]) -> Callable[..., None]:
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except Exception as exc:
            raise _HandlerFailed from exc

    return run


@receiver(anymail_tracking, dispatch_uid="digest.webhooks.tracking")
@_handled
def on_tracking(sender: object, event: object, esp_name: str, **kwargs: object) -> None:
    found = events.from_tracking(event, esp_name=esp_name)
    if found is not None and events.event_record(found) == "unmatched":
        inbound.note_rejected(found, reason="names no delivery of ours to that recipient")


@receiver(anymail_inbound, dispatch_uid="digest.webhooks.inbound")
@_handled
def on_inbound(sender: object, event: object, esp_name: str, **kwargs: object) -> None:
    """Mail the provider received for us: a mailto unsubscribe, or a bounce or complaint
    report forwarded there; read exactly as the IMAP mailbox reads it."""
    if not settings.INBOUND_WEBHOOK:
        return
    report = reports.parse(event.message.as_bytes(), unsubscribe_address=settings.UNSUBSCRIBE_MAILTO)
    inbound.report_handle(report, source=esp_name.lower().replace(" ", "_")[:32])
