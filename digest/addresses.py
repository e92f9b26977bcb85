"""Email addresses: the one spelling of a mailbox that is stored, capped, hashed and compared."""

import contextlib
import unicodedata

import idna
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

# RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
MAX_LOCAL_PART_OCTETS = 64


class AddressError(ValueError):
    """An address that cannot be mailed; the message is one line for the person typing it."""


def normalize_email(address: str) -> str:
    """The mailbox's one spelling: the domain NFKC-normalized, then IDNA-encoded (UTS 46,
    which also maps the ideographic full stop and drops soft hyphens) to ASCII, lowercase;
    the local part lowercased, as addresses have always been stored here.

    Total, so hashing and comparing never fail: a domain with no IDNA form keeps its
    NFKC, lowercase spelling, which :func:`checked_email` then refuses.
    """
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at:
        return address.lower()
    domain = unicodedata.normalize("NFKC", domain)
    with contextlib.suppress(idna.IDNAError):
        domain = idna.encode(domain, uts46=True).decode("ascii")
    return f"{local.lower()}@{domain.lower()}"


def checked_email(address: str) -> str:
    """The normalized address, or AddressError if that spelling cannot be mailed."""
    normalized = normalize_email(address)
    local, _, domain = normalized.rpartition("@")
    if len(local.encode()) > MAX_LOCAL_PART_OCTETS:
        raise AddressError(f"The part before the @ can be at most {MAX_LOCAL_PART_OCTETS} characters.")
    if domain and not domain.isascii():
        raise AddressError(f"The domain {domain} has no ASCII (IDNA) form, so it cannot be mailed.")
    try:
        validate_email(normalized)
    except ValidationError:
        raise AddressError("Enter a valid email address.") from None
    return normalized
