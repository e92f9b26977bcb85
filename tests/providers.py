"""Email providers' send APIs as local HTTP servers on 127.0.0.1, speaking their documented formats.

- :class:`PostmarkServer`: ``POST /email`` with ``X-Postmark-Server-Token`` and a JSON body
  (From, To, Subject, HtmlBody, TextBody, Headers); answers 200 with
  ``{"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}``, 422 with an
  ErrorCode (406: inactive recipient), or whatever a test scripts (429, 500, 401).
- :class:`SesServer`: Amazon SES v2 ``POST /v2/email/outbound-emails`` (SigV4-signed JSON,
  ``Content.Raw.Data`` the base64 MIME message); answers ``{"MessageId"}``, or the AWS
  JSON error shape with ``x-amzn-ErrorType`` (TooManyRequestsException, MessageRejected).

Tests script replies with ``server.reply(status, body, times=n)``; unscripted requests succeed.
"""

from __future__ import annotations

import abc
import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class ProviderServer(abc.ABC):
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: list[_Reply] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                with owner.lock:
                    owner.requests.append(request)
                    reply = owner.script.pop(0) if owner.script else None
                reply = reply or owner.success(request)
                if reply.delay:
                    time.sleep(reply.delay)
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> ProviderServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply(self, status: int, body: dict[str, Any], *, times: int = 1, headers: dict[str, str] | None = None,
              delay: float = 0.0) -> None:  # fmt: skip
        with self.lock:
            self.script.extend(_Reply(status, body, headers or {}, delay) for _ in range(times))

    @abc.abstractmethod
    def success(self, request: Request) -> _Reply:
        """The provider's documented answer to an accepted message."""


class PostmarkServer(ProviderServer):
    def success(self, request: Request) -> _Reply:
        payload = request.json()
        return _Reply(
            200,
            {
                "To": payload.get("To", ""),
                "SubmittedAt": "2025-11-08T07:01:09.4178645Z",
                "MessageID": str(uuid.uuid4()),
                "ErrorCode": 0,
                "Message": "OK",
            },
        )

    def sent(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if r.path == "/email"]


class SesServer(ProviderServer):
    def success(self, request: Request) -> _Reply:
        return _Reply(200, {"MessageId": f"0100019a{uuid.uuid4().hex}-000000"})

    def raw_messages(self) -> list[bytes]:
        return [
            base64.b64decode(r.json()["Content"]["Raw"]["Data"])
            for r in self.requests
            if r.path == "/v2/email/outbound-emails"
        ]

    def error(self, status: int, code: str, message: str, *, times: int = 1) -> None:
        self.reply(status, {"message": message}, times=times, headers={"x-amzn-ErrorType": f"{code}:"})
