"""A mailbox over IMAP (stdlib imaplib, always TLS): read what is new, move what was handled, flag the rest."""

from __future__ import annotations

import contextlib
import imaplib
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

# Messages nobody here understood carry this keyword: left in place for a person, not read again.
UNRECOGNIZED = "$DigestUnrecognized"


class MailboxError(Exception):
    """The mailbox cannot be reached, logged into or used; the message says which."""


@dataclass(frozen=True)
class MailboxUrl:
    host: str
    port: int
    user: str
    password: str
    folder: str
    processed: str
    starttls: bool
    cafile: str | None

    @classmethod
    def parse(cls, url: str) -> MailboxUrl:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        implicit = parts.scheme == "imaps"
        return cls(
            host=parts.hostname or "",
            port=parts.port or (993 if implicit else 143),
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            folder=unquote(parts.path.strip("/")) or "INBOX",
            processed=query.get("processed", ["Processed"])[0],
            starttls=not implicit,
            cafile=query.get("cafile", [None])[0],
        )


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailbox:
    """One logged-in session on one folder; use as a context manager."""

    def __init__(self, url: str, *, timeout: float = 30) -> None:
        self.url = MailboxUrl.parse(url)
        self.timeout = timeout
        self.imap: imaplib.IMAP4 | None = None

    def __enter__(self) -> Mailbox:
        u = self.url
        context = ssl.create_default_context(cafile=u.cafile)
        try:
            if u.starttls:
                imap = imaplib.IMAP4(u.host, u.port, timeout=self.timeout)
                imap.starttls(ssl_context=context)  # never log in over plain text
            else:
                imap = imaplib.IMAP4_SSL(u.host, u.port, ssl_context=context, timeout=self.timeout)
            imap.login(u.user, u.password)
            self._ok(imap.select(_quote(u.folder)), f"select {u.folder}")
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            raise MailboxError(f"IMAP {u.host}:{u.port}: {exc}") from exc
        self.imap = imap
        self.capabilities = {c.upper() for c in imap.capabilities}
        return self

    def __exit__(self, *exc: object) -> None:
        if self.imap is not None:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                self.imap.logout()
            self.imap = None

    @staticmethod
    def _ok(answer: tuple[str, list], what: str) -> list:
        status, data = answer
        if status != "OK":
            raise MailboxError(f"IMAP {what} failed: {data!r}")
        return data

    def _uid(self, command: str, *args: str) -> list:
        assert self.imap is not None
        try:
            return self._ok(self.imap.uid(command, *args), f"UID {command}")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"IMAP UID {command}: {exc}") from exc

    def new(self, *, limit: int) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` (uid, raw message) pairs not handled yet, oldest first."""
        data = self._uid("SEARCH", None, "UNDELETED", "UNKEYWORD", UNRECOGNIZED)
        uids = (data[0] or b"").split()[:limit]
        out = []
        for uid in uids:
            fetched = self._uid("FETCH", uid.decode(), "(BODY.PEEK[])")
            raw = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            if raw is not None:
                out.append((uid, raw))
        return out

    def move(self, uid: bytes) -> None:
        """Into the processed folder (created on first use); gone from this one."""
        assert self.imap is not None
        folder = _quote(self.url.processed)
        self.imap.create(folder)  # NO when it exists already: fine
        if "MOVE" in self.capabilities:
            self._uid("MOVE", uid.decode(), folder)
            return
        self._uid("COPY", uid.decode(), folder)
        self._uid("STORE", uid.decode(), "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in self.capabilities:
            self._uid("EXPUNGE", uid.decode())
        else:
            self._ok(self.imap.expunge(), "EXPUNGE")

    def flag_unrecognized(self, uid: bytes) -> None:
        self._uid("STORE", uid.decode(), "+FLAGS.SILENT", f"({UNRECOGNIZED})")

    def count_unrecognized(self) -> int:
        data = self._uid("SEARCH", None, "UNDELETED", "KEYWORD", UNRECOGNIZED)
        return len((data[0] or b"").split())
