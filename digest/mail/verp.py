"""What names a delivery in mail that comes back, signed so that nobody else can name it.

- VERP return paths: the envelope sender ``bounces+d<id>-<signature>@...`` names its delivery.
- Message-IDs: ``<digest.<id>.<signature>.<YYYYMMDD>@...>``; a bounce or complaint report
  that quotes one names its delivery as surely as a VERP address does.

Both are keyed. With a SECRET_KEY of its own the key is derived from it. The development
default SECRET_KEY is public (it is in the source), so an install running on it (DEBUG
without SECRET_KEY) signs with a random key made once per install and kept in VAR_DIR
instead: a return path or Message-ID computed with the published key verifies nowhere.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
from datetime import date
from pathlib import Path

from django.conf import settings

_TAG = re.compile(r"^d(\d{1,18})-([0-9a-f]{10})$")
_MESSAGE_ID = re.compile(r"^<?digest\.(\d{1,18})\.([0-9a-f]{20})\.(\d{8})@[^<>@\s]+?>?$")
# Where a DEBUG install without SECRET_KEY keeps its own signing key (VAR_DIR is shared by
# web, worker and beat on one machine).
INSTALL_KEY_FILE = "mail-signing.key"


@functools.lru_cache(maxsize=8)
def _install_key(var_dir: str) -> bytes:
    """The install's random key, made the first time any process needs it."""
    path = Path(var_dir) / INSTALL_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{INSTALL_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        draft.write_text(secrets.token_hex(32))
        draft.chmod(0o600)
        try:
            os.link(draft, path)  # atomic and never overwrites: the first process wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise RuntimeError(f"{path} does not hold a signing key; delete it to have a new one made")
    return key.encode()


def key() -> bytes:
    """The secret both signatures are keyed with (see the module's docstring)."""
    if settings.SECRET_KEY == settings.DEV_SECRET_KEY:
        return _install_key(str(settings.VAR_DIR))
    return settings.SECRET_KEY.encode()


def _signature(delivery_id: int) -> str:
    return hmac.new(key(), f"verp:{delivery_id}".encode(), hashlib.sha256).hexdigest()[:10]


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


def _message_signature(delivery_id: int, day: str) -> str:
    return hmac.new(key(), f"message-id:{delivery_id}.{day}".encode(), hashlib.sha256).hexdigest()[:20]


def message_id(delivery_id: int, day: date, domain: str) -> str:
    """A digest's Message-ID: its delivery and date (for reading relay logs) and 80 keyed bits."""
    stamp = f"{day:%Y%m%d}"
    return f"<digest.{delivery_id}.{_message_signature(delivery_id, stamp)}.{stamp}@{domain}>"


def message_id_delivery(value: str) -> int | None:
    """The delivery a quoted Message-ID names, if it is one of ours and its signature holds."""
    match = _MESSAGE_ID.match(value.strip())
    if match is None:
        return None
    pk, signature, stamp = int(match.group(1)), match.group(2), match.group(3)
    if not hmac.compare_digest(signature, _message_signature(pk, stamp)):
        return None
    return pk
