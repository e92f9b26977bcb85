"""Email addresses: the one spelling of a mailbox that is stored, capped, hashed and compared.

The syntax is judged by email-validator (RFC 5321/5322, quoted local parts, special-use
domains); the project adds its own folding of look-alike domains on top, so that every
spelling that reaches one mailbox is one address here.
"""

import contextlib
import unicodedata

import email_validator
import idna
from django.conf import settings

# RFC 5321 4.5.3.1.1: a local part is at most 64 octets.
MAX_LOCAL_PART_OCTETS = 64

QUOTED_ERROR = (
    "Quotes around the part before the @ are only allowed when they can be left out;"
    " please type the address without them."
)
INVALID_ERROR = "Enter a valid email address."


class AddressError(ValueError):
    """An address that cannot be mailed; the message is one line for the person typing it."""


def _domain(domain: str) -> str:
    """NFKC, then IDNA (UTS 46, which also maps the ideographic full stop and drops soft
    hyphens) to ASCII, lowercase; a domain with no IDNA form keeps its NFKC spelling."""
    domain = unicodedata.normalize("NFKC", domain)
    with contextlib.suppress(idna.IDNAError):
        domain = idna.encode(domain, uts46=True).decode("ascii")
    return domain.lower()


def _unquoted_local_part(local: str, domain: str) -> str:
    """RFC 5321 4.1.2: ``"sup"`` and ``"s\\up"`` are the mailbox ``sup``. email-validator
    drops the quotes (and the needless backslashes) exactly when the unquoted form is the
    same local part; otherwise, or when the address is invalid anyway, ``local`` as it is."""
    try:
        parsed = email_validator.validate_email(
            f"{local}@{domain}",
            check_deliverability=False,
            allow_quoted_local=True,
            allow_smtputf8=True,
            globally_deliverable=False,
            test_environment=True,
        )
    except email_validator.EmailNotValidError:
        return local
    return parsed.local_part


def normalize_email(address: str) -> str:
    """The mailbox's one spelling: the domain folded to lowercase ASCII (see :func:`_domain`),
    a quoted local part unquoted where that is the same mailbox, and the local part
    lowercased, as addresses have always been stored here.

    Total, so hashing and comparing never fail: a spelling that cannot be mailed comes
    out in some stable form, which :func:`checked_email` then refuses.
    """
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at:
        return address.lower()
    domain = _domain(domain)
    if local.startswith('"'):
        local = _unquoted_local_part(local, domain)
    return f"{local.lower()}@{domain}"


def checked_email(address: str) -> str:
    """The normalized address, or AddressError if that spelling cannot be mailed.

    A domain needs a dot and may not be a special-use name such as ``localhost`` unless
    ALLOW_LOCAL_EMAIL_DOMAINS is on (for a test install whose mail stays on one machine).
    """
    normalized = normalize_email(address)
    local, _, domain = normalized.rpartition("@")
    if len(local.encode()) > MAX_LOCAL_PART_OCTETS:
        raise AddressError(f"The part before the @ can be at most {MAX_LOCAL_PART_OCTETS} characters.")
    if domain and not domain.isascii():
        raise AddressError(f"The domain {domain} has no ASCII (IDNA) form, so it cannot be mailed.")
    if local.startswith('"'):
        raise AddressError(QUOTED_ERROR)
    local_domains = settings.ALLOW_LOCAL_EMAIL_DOMAINS
    # email-validator refuses "localhost" in any mode (RFC 6761 reserves it); a test install
    # delivers there, so its local part is checked as the test environment's one "test".
    checked = f"{local}@test" if local_domains and domain == "localhost" else normalized
    try:
        email_validator.validate_email(
            checked,
            check_deliverability=False,  # no DNS lookups while someone waits for the page
            allow_smtputf8=False,  # the relay is not asked for SMTPUTF8
            allow_quoted_local=False,
            allow_domain_literal=False,
            globally_deliverable=not local_domains,
            test_environment=local_domains,
        )
    except email_validator.EmailNotValidError as exc:
        raise AddressError(f"{INVALID_ERROR} {exc}") from None
    return normalized
