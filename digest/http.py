"""Who is asking: the client's address, read through the trusted proxies in front of the service."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest, QueryDict

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(value: str) -> Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: Address) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)


def client_ip(request: HttpRequest) -> str | None:
    """The socket's peer; when that peer is a trusted proxy, the right-most address of
    X-Forwarded-For that is not a trusted proxy too.

    Each proxy appends the address it was connected from, so only the hops right of the
    first untrusted one are vouched for; what lies left of it the client wrote itself.
    A hop that is no address stops the walk at the nearest trusted one seen.
    """
    peer = _address(request.META.get("REMOTE_ADDR", ""))
    if peer is None or not _trusted(peer):
        return str(peer) if peer else None
    nearest = peer
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _address(hop)
        if address is None:
            break
        if not _trusted(address):
            return str(address)
        nearest = address
    return str(nearest)


def form_data(request: HttpRequest) -> tuple[QueryDict, bool]:
    """The POSTed form, and whether its body was valid UTF-8.

    For a urlencoded body that is not UTF-8, Django reads the whole body as Latin-1, so
    every field turns into mojibake ("genÿþeration", "ZoÃ«") that looks valid. Here such a
    body is read as UTF-8 with U+FFFD for the bytes that are not, and the caller refuses it.
    """
    if request.content_type == "application/x-www-form-urlencoded":
        try:
            request.body.decode("utf-8")
        except UnicodeDecodeError:
            return QueryDict(request.body.decode("utf-8", errors="replace"), encoding="utf-8"), False
    return request.POST, True
