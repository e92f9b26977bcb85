"""VERP return paths: the envelope sender names its delivery, signed, so a bounce to it cannot be forged."""

from __future__ import annotations

import hashlib
import hmac
import re

from django.conf import settings

_TAG = re.compile(r"^d(\d{1,18})-([0-9a-f]{10})$")


def _signature(delivery_id: int) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"verp:{delivery_id}".encode(), hashlib.sha256).hexdigest()[:10]


def return_path(base: str, delivery_id: int) -> str:
    """``bounces@example.org`` -> ``bounces+d42-<signature>@example.org``."""
    local, _, domain = base.rpartition("@")
    return f"{local}+d{delivery_id}-{_signature(delivery_id)}@{domain}"


def delivery_id(address: str, base: str) -> int | None:
    """The delivery a return path names, if it is one of ``base``'s and its signature holds."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = base.rpartition("@")
    head, plus, tag = local.partition("+")
    if not plus or head.lower() != base_local.lower() or domain.lower() != base_domain.lower():
        return None
    match = _TAG.match(tag.lower())
    if match is None or not hmac.compare_digest(match.group(2), _signature(int(match.group(1)))):
        return None
    return int(match.group(1))
