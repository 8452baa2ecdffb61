"""A real webhook endpoint on loopback for paging tests: it keeps what it
receives and answers each POST with the next scripted answer (then 200)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    endless: bool = False  # a chunked body that never ends
    drip: float | None = None  # seconds between the bytes of an endless body


class Receiver:
    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.received: list[dict[str, Any]] = []
        self.bytes_sent = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(
                    {
                        "path": self.path,
                        "body": json.loads(raw),
                        "key": self.headers.get("Idempotency-Key"),
                    }
                )
                answer = receiver.script.pop(0) if receiver.script else Answer()
                self.send_response(answer.status)
                # One request per connection: a test that stops the receiver
                # must see the next page fail, not reuse a kept-alive socket.
                self.send_header("Connection", "close")
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.endless:
                    self._endless(answer)
                    return
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def _endless(self, answer: Answer) -> None:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"x" * (1 if answer.drip else 16384)
                try:
                    while True:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                        receiver.bytes_sent += len(chunk)
                        if answer.drip:
                            time.sleep(answer.drip)
                except OSError:
                    pass  # the client hung up: what a bounded reader does

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def running_receiver() -> Iterator[Receiver]:
    """For a fixture: `yield from running_receiver()`."""
    r = Receiver()
    yield r
    r.close()
