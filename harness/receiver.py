"""A webhook receiver for tests and benches: a small HTTP server on loopback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.procs import free_port


class Receiver:
    """A small HTTP server on loopback that records every POST (arrival time, headers, raw body). It can be
    stopped and started again on the same port, answer errors for a while, or redirect."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[float, dict, bytes]] = []
        self.fail_next = 0  # answer 500 to this many requests (the event arrived, the receiver says it did not)
        self.server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.received.append((time.time(), dict(self.headers), body))
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= failing
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", receiver.url)
                else:
                    self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> dict[str, dict]:
        """Deduplicated by event id, as a receiver must (delivery is at least once)."""
        with self.lock:
            return {json.loads(b)["id"]: json.loads(b) for _, _, b in self.received}

    def of_type(self, type_: str) -> list[dict]:
        return [e for e in self.events().values() if e["type"] == type_]
