"""A loopback HTTP hop between an agent and the gateway that records each call it relays."""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Headers that belong to one hop; the proxy frames the relayed body itself.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
# What a failed call keeps of the gateway's answer, for the test's message.
_ERROR_EXCERPT = 600
# The longest an agent's model turn may take on a busy two-core machine.
_UPSTREAM_TIMEOUT = 180


@dataclass(frozen=True)
class Call:
    """One relayed request: what the agent asked and how the gateway answered."""

    method: str
    path: str
    status: int
    error_excerpt: bytes = b""

    def __str__(self) -> str:
        detail = f" {self.error_excerpt!r}" if self.error_excerpt else ""
        return f"{self.method} {self.path} -> {self.status}{detail}"


class RecordingProxy:
    """Relays every request to `target` (streams included, chunk by chunk) and records it."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target_host = parts.hostname or "127.0.0.1"
        self.target_port = parts.port or 80
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def paths(self, method: str = "POST") -> list[str]:
        """The paths of the recorded calls of `method`, query strings dropped."""
        with self._lock:
            return [c.path.split("?")[0] for c in self.calls if c.method == method]

    def report(self) -> str:
        with self._lock:
            return "\n".join(str(call) for call in self.calls) or "(no calls)"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Relay(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # the recorded calls are the log

            def do_GET(self) -> None:
                self._relay()

            def do_POST(self) -> None:
                self._relay()

            def do_DELETE(self) -> None:
                self._relay()

            def _body(self) -> bytes:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    return self.rfile.read(length)
                if self.headers.get("transfer-encoding", "").lower() != "chunked":
                    return b""
                body = b""
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return body

            def _relay(self) -> None:
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(
                    proxy.target_host, proxy.target_port, timeout=_UPSTREAM_TIMEOUT
                )
                answered = False
                try:
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    answer = upstream.getresponse()
                    answered = True
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in _HOP_BY_HOP:
                            self.send_header(name, value)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    excerpt = b""
                    while chunk := answer.read1(65536):
                        if answer.status >= 400 and len(excerpt) < _ERROR_EXCERPT:
                            excerpt += chunk[: _ERROR_EXCERPT - len(excerpt)]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    proxy.record(Call(self.command, self.path, answer.status, excerpt))
                except OSError as exc:
                    proxy.record(Call(self.command, self.path, 0, repr(exc).encode()))
                    if not answered:  # the agent gets an answer it can report
                        self.send_error(502, f"gateway unreachable: {exc!r}")
                    self.close_connection = True
                finally:
                    upstream.close()

        return Relay
