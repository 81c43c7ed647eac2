"""A real HTTP receiver for the notification tests: a local ``http.server`` in a thread that keeps every
request it gets and answers as a test scripts it (a code, a delay, a redirect)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """``answers``: codes to give, in order (then 200); ``delay``: seconds to wait before answering."""

    server: ThreadingHTTPServer
    got: list[Received] = field(default_factory=list)
    answers: deque[int] = field(default_factory=deque)
    delay: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.got]


def start_receiver() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint does

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            receiver.got.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            code = receiver.answers.popleft() if receiver.answers else 200
            if receiver.delay:
                time.sleep(receiver.delay)
            self.send_response(code)
            if 300 <= code < 400:
                self.send_header("location", receiver.url + "/moved")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
