"""A service's health URL on loopback, for the failover's probe: it answers
every GET with the status a test sets (200 until told otherwise) and counts
the GETs it got."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ProbeTarget:
    def __init__(self) -> None:
        self.status = 200
        self.gets = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target.gets += 1
                self.send_response(target.status)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/healthz"


@contextmanager
def probe_target() -> Iterator[ProbeTarget]:
    target = ProbeTarget()
    thread = threading.Thread(target=target._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield target
    finally:
        target._server.shutdown()
        target._server.server_close()
        thread.join(timeout=5)
