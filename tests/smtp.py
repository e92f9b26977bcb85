"""A real SMTP server on 127.0.0.1 (aiosmtpd) whose replies a test controls.

Tests tell it how to answer one address (``server.reply("ann@example.org", "451 4.3.0
Try later", times=2)``) and read what it accepted (``server.messages``). Shared by the
digest, end-to-end and production tests through the ``smtp_server`` fixture.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# A scripted reply that accepts the message and closes the connection before answering:
# the client cannot know whether it was taken.
DROP = "drop"


class LongLineSMTP(SMTP):
    # Stock aiosmtpd 1.4.6 answers "500 Line too long" to ordinary HTML email lines.
    line_length_limit = 1 << 20


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Rule:
    reply: str
    stage: str  # "RCPT" or "DATA"
    times: int | None  # None: every time


@dataclass
class Handler:
    messages: list[Received] = field(default_factory=list)
    rules: dict[str, _Rule] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Shutting down: the message in flight is finished, the next one gets 421 (RFC 5321 4.2.2).
    closing: bool = False
    in_flight: set[int] = field(default_factory=set)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        with self.lock:
            if self.closing:
                asyncio.get_running_loop().call_soon(server.transport.close)  # after the reply is written
                return "421 4.3.2 Service shutting down, closing transmission channel"
            self.in_flight.add(id(session))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self._done(session)
        return "250 OK"

    def _done(self, session: Session) -> None:
        with self.lock:
            self.in_flight.discard(id(session))

    def _scripted(self, stage: str, address: str) -> str | None:
        with self.lock:
            if stage == "RCPT":
                self.attempts[address] = self.attempts.get(address, 0) + 1
            rule = self.rules.get(address.lower())
            if rule is None or rule.stage != stage:
                return None
            if rule.times is not None:
                if rule.times <= 0:
                    return None
                rule.times -= 1
            return rule.reply

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self._scripted("RCPT", address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            return self._data(server, envelope)
        finally:
            self._done(session)

    def _data(self, server: SMTP, envelope: Envelope) -> str:
        drop = False
        for address in envelope.rcpt_tos:
            reply = self._scripted("DATA", address)
            if reply == DROP:
                drop = True  # take the message, then hang up before answering
            elif reply:
                return reply
        content = envelope.original_content or b""
        with self.lock:
            self.messages.append(
                Received(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=bytes(content),
                    mail_options=list(envelope.mail_options),
                )
            )
        if drop:
            server.transport.close()
        return "250 Message accepted for delivery"


class _Controller(Controller):
    def factory(self) -> SMTP:
        return LongLineSMTP(self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.handler = Handler()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._controller = _Controller(self.handler, hostname=self.host, port=self.port)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening; a second call (a test that stopped it, then the fixture) is a no-op."""
        if self._controller._thread is not None:
            self._controller.stop()

    def shut_down(self, timeout: float = 30.0) -> None:
        """Go down between two messages, as a relay does when its operator stops it.

        The message being transferred is taken and answered; every later one, on an open
        connection or a new one, gets "421 shutting down" until the server stops listening.
        Unlike :meth:`stop`, no client is left not knowing whether its message arrived.
        """
        with self.handler.lock:
            self.handler.closing = True
        deadline = time.monotonic() + timeout
        while self.handler.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.handler.in_flight, "a message was still being transferred"
        self.stop()

    @property
    def messages(self) -> list[Received]:
        return list(self.handler.messages)

    def reply(self, address: str, reply: str, *, stage: str = "RCPT", times: int | None = None) -> None:
        """Answer ``address`` with ``reply`` ("451 4.3.0 Try later") at ``stage``, ``times`` times."""
        self.handler.rules[address.lower()] = _Rule(reply=reply, stage=stage, times=times)

    def attempts(self, address: str) -> int:
        """How many times a client tried to send to ``address`` (RCPT commands)."""
        return self.handler.attempts.get(address, 0)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def settings(self) -> dict[str, Any]:
        """Django settings that point the service's mail at this server."""
        return {"EMAIL_HOST": self.host, "EMAIL_PORT": self.port, "EMAIL_USE_TLS": False}
