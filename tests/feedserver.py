"""A real local HTTP server standing in for Hugging Face, scripted per test.

``feed_server`` is a scriptable HTTP server on 127.0.0.1 so the feed client is tested
through real sockets (timeouts, redirects, streaming) without touching the network::

    feed_server.route("/api/daily_papers?date=2025-11-07&limit=100&p=0", [
        (429, {"Retry-After": "2"}, b"", 0),
        (200, {"Content-Type": "application/json"}, body, 0),
    ])
    client = FeedClient(feed_server.url, sleep=sleeps.append)

A route is matched on path plus query first, then on path alone. Its responses are
served in order and the last one repeats. A header value of None leaves that header
out (e.g. ``{"Content-Length": None}`` streams the body until the connection closes).
Unrouted requests get 404. ``feed_server.requests`` logs what was received.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
HF_FIXTURES = ROOT / "tests" / "fixtures" / "hf"

# (status, headers, body) or (status, headers, body, seconds to wait before answering)
Scripted = tuple[int, Mapping[str, str | None], bytes] | tuple[int, Mapping[str, str | None], bytes, float]


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    target: str  # path plus query, as sent
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


class FeedServer:
    """A threaded HTTP server serving scripted responses; see the module docstring."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._routes: dict[str, list[Scripted]] = {}
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.feed = self
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        # A short poll interval keeps shutdown (and so each test's teardown) quick.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def route(self, path_and_query: str, responses: Sequence[Scripted]) -> None:
        """Script the responses for a path ("/papers/trending") or path plus query."""
        if not responses:
            raise ValueError("a route needs at least one response")
        with self._lock:
            self._routes[path_and_query] = list(responses)
            self._served[path_and_query] = 0

    def targets(self) -> list[str]:
        """Path plus query of every request received, in order."""
        return [r.target for r in self.requests]

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_response(self, request: ReceivedRequest) -> tuple[int, dict[str, str | None], bytes, float]:
        with self._lock:
            self.requests.append(request)
            key = request.target if request.target in self._routes else request.path
            if key not in self._routes:
                return 404, {"Content-Type": "text/plain"}, b"no route", 0.0
            responses = self._routes[key]
            index = min(self._served[key], len(responses) - 1)
            self._served[key] += 1
        status, headers, body, *rest = responses[index]
        return status, dict(headers), body, float(rest[0]) if rest else 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    feed: FeedServer

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that time out hang up on a sleeping handler; that is the point.
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        feed = self.server.feed
        status, headers, body, delay = feed._next_response(
            ReceivedRequest(self.command, self.path, {k: v for k, v in self.headers.items()})
        )
        if delay and feed._stopping.wait(delay):
            return
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            if value is not None:
                self.send_header(name, value)
        self.end_headers()
        if status not in (204, 304):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass
