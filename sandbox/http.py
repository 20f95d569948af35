"""A small threaded HTTP server core shared by the Visma and Marketo sandboxes.

Real HTTP on 127.0.0.1 (port 0 = any free port), one thread per connection, so clients exercise
their real transport: headers, status codes, timeouts, concurrent calls. Each sandbox registers
routes ``(method, regex) -> handler(request) -> Response``.
"""

from __future__ import annotations

import json
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route pattern
    raw_query: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}

    def bearer_token(self) -> str | None:
        value = self.header("authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or str/bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False  # close the socket without answering (a timeout seen from the client)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), self.headers.get("Content-Type", "text/plain; charset=utf-8")
        return json.dumps(self.body).encode("utf-8"), "application/json; charset=utf-8"


Handler = Callable[[Request], Response]


class SandboxServer:
    """Routes requests to handlers; start()/stop() run it in a daemon thread."""

    def __init__(self, name: str, port: int = 0) -> None:
        self.name = name
        self._port = port
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} sandbox is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        if self._server is not None:
            return
        server = _QuietServer(("127.0.0.1", self._port), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"{self.name}-sandbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def dispatch(self, request: Request) -> Response:
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            allowed = True
            if method == request.method:
                request.params = match.groupdict()
                return handler(request)
        if allowed:
            return Response(405, {"message": f"method {request.method} not allowed on {request.path}"})
        return Response(404, {"message": f"no route for {request.path}"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
                return

            def setup(self) -> None:
                super().setup()
                # Headers and body leave in separate writes; without this, Nagle + delayed ACK add ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
                request = Request(method=self.command, path=split.path, query=query, raw_query=split.query,
                                  headers={k.lower(): v for k, v in self.headers.items()}, body=body)
                try:
                    response = server.dispatch(request)
                except Exception as exc:  # noqa: BLE001 - a sandbox bug must show as a 500, not a hang
                    response = Response(500, {"message": f"sandbox error: {type(exc).__name__}: {exc}"})
                if response.drop_connection:
                    self.close_connection = True
                    return
                payload, content_type = response.encoded()
                self.send_response(response.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in response.headers.items():
                    if name.lower() != "content-type":
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - BaseHTTPRequestHandler's names

        return _Handler


class _QuietServer(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of new connections would wait for TCP SYN retries
    # (1 s and more) instead of reaching the sandbox's own limits (e.g. Marketo's 615 for concurrency).
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout, an injected dropped connection) is normal here, not a traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class Latency:
    """A steady service time per call: fixed seconds, or uniform in a (low, high) range, seeded."""

    def __init__(self, latency: float | tuple[float, float] = 0.0, seed: int = 0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._latency = latency
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._sleep = sleep

    def sleep(self) -> None:
        latency = self._latency
        if isinstance(latency, tuple):
            with self._lock:
                latency = self._rng.uniform(*latency)
        if latency > 0:
            self._sleep(latency)

