"""A minimal SMTP server that accepts and counts every message: benchdigest's local sink.

It speaks enough SMTP for smtplib (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and
keeps nothing but counts, so it costs the machine far less than a real relay; run it in
its own process (:func:`start`) so its CPU time is not counted as the sender's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
from multiprocessing.sharedctypes import Synchronized


class _Session(asyncio.Protocol):
    def __init__(self, counter: Synchronized, size: Synchronized) -> None:
        self.counter, self.size = counter, size
        self.buffer = b""
        self.in_data = False
        self.data_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    # Keep the tail that might hold the start of the terminator.
                    self.data_bytes += max(len(self.buffer) - 4, 0)
                    self.buffer = self.buffer[-4:]
                    return
                self.data_bytes += end
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                with self.counter.get_lock():
                    self.counter.value += 1
                with self.size.get_lock():
                    self.size.value += self.data_bytes
                self.transport.write(b"250 OK queued\r\n")
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2 :]
            self.command(line.decode(errors="replace"))

    def command(self, line: str) -> None:
        verb = line[:4].upper()
        if verb == "EHLO":
            self.transport.write(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
        elif verb == "DATA":
            self.in_data, self.data_bytes = True, 0
            self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        elif verb == "QUIT":
            self.transport.write(b"221 Bye\r\n")
            self.transport.close()
        elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
            self.transport.write(b"250 OK\r\n")
        else:
            self.transport.write(b"502 Command not implemented\r\n")


def _serve(sock: socket.socket, counter: Synchronized, size: Synchronized) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Session(counter, size), sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Sink:
    """The sink in a child process, listening on 127.0.0.1 at ``port``."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        context = multiprocessing.get_context("fork")
        self._count = context.Value("q", 0)
        self._bytes = context.Value("q", 0)
        self.process = context.Process(target=_serve, args=(self.sock, self._count, self._bytes), daemon=True)

    def start(self) -> Sink:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)
        self.sock.close()

    @property
    def messages(self) -> int:
        return int(self._count.value)

    @property
    def bytes(self) -> int:
        return int(self._bytes.value)
