"""A one-off email from three templates: subject, text and HTML, CSS inlined, always a plain-text part."""

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from premailer import Premailer


def inline_css(html: str) -> str:
    """Move the <style> rules onto the elements, as Gmail and Outlook need.

    Media queries stay in a <style> block (they cannot be inlined); nothing is fetched
    from the network.
    """
    return Premailer(
        html,
        strip_important=False,
        keep_style_tags=False,
        remove_classes=False,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()


def make_message(
    name: str,
    context: Mapping[str, Any],
    *,
    to: list[str],
    from_email: str,
    headers: Mapping[str, str] | None = None,
) -> EmailMultiAlternatives:
    """Render templates/emails/<name>.subject.txt, .txt and .html into one message."""
    ctx = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
    # A subject is one line whatever the template's whitespace.
    subject = " ".join(render_to_string(f"emails/{name}.subject.txt", ctx).split())
    text = render_to_string(f"emails/{name}.txt", ctx)
    html = inline_css(render_to_string(f"emails/{name}.html", ctx))
    message = EmailMultiAlternatives(
        subject=subject, body=text, from_email=from_email, to=to, headers=dict(headers or {})
    )
    message.attach_alternative(html, "text/html")
    return message
