"""The agent's HTTP endpoint: ``/metrics`` (Prometheus exposition) and ``/health``.

A small threaded ``http.server`` rather than ``prometheus_client.start_http_server``, which has
no ``/health``. ``/metrics`` uses prometheus_client's exposition: the classic text format
(0.0.4, as sip-exporter serves) unless the scraper's ``Accept`` asks for OpenMetrics, gzip when
``Accept-Encoding`` allows it, and ``HEAD`` answers the headers of the same response.
The server model (one thread per connection, as before) is unchanged here.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MetricsServer", "Render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
POLL_S = 0.05  # how quickly close() stops the serving loop
# A scrape of a few hundred series is ~30 KB; gzip level 1 takes it to ~4 KB at a fraction of
# the cost of level 9.
GZIP_LEVEL = 1

# (Accept header) -> (body, content type)
Render = Callable[[str], tuple[bytes, str]]


def _accepts_gzip(header: str) -> bool:
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params or float(q) > 0
            except ValueError:
                return True
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    def __init__(
        self, host: str, port: int, render: Render | None, ready: Callable[[], bool]
    ) -> None:
        render_fn = render
        ready_fn = ready

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(body_too=True)

            def do_HEAD(self) -> None:
                self._answer(body_too=False)

            def _answer(self, body_too: bool) -> None:
                path = self.path.split("?", 1)[0]
                text = "text/plain; charset=utf-8"
                if path == "/metrics" and render_fn is not None:
                    body, ctype = render_fn(self.headers.get("Accept", ""))
                    gz = _accepts_gzip(self.headers.get("Accept-Encoding", ""))
                    if gz:
                        body = gzip.compress(body, GZIP_LEVEL)
                    self._send(200, body, ctype, body_too, "gzip" if gz else None)
                elif path == "/health":
                    ok = ready_fn()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"starting\n", text, body_too)
                elif path == "/":
                    self._send(200, b"sip-otel: /metrics /health\n", text, body_too)
                else:
                    self._send(404, b"not found\n", text, body_too)

            def _send(
                self,
                code: int,
                body: bytes,
                ctype: str,
                body_too: bool = True,
                encoding: str | None = None,
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                    self.send_header("Vary", "Accept-Encoding")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body_too:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds: not worth a log line each

        server_cls = _Server6 if ":" in host else _Server
        self._httpd = server_cls((host, port), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(POLL_S,), name="sip-otel-http", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
