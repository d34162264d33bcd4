"""The agent's HTTP endpoint: ``/metrics`` (Prometheus text) and ``/health``.

A small threaded ``http.server`` rather than ``prometheus_client.start_http_server``, which has
no ``/health``. ``/metrics`` always answers the classic text format (0.0.4), as sip-exporter does.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MetricsServer"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
POLL_S = 0.05  # how quickly close() stops the serving loop


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    def __init__(
        self, host: str, port: int, render: Callable[[], bytes] | None, ready: Callable[[], bool]
    ) -> None:
        render_fn = render
        ready_fn = ready

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics" and render_fn is not None:
                    self._send(200, render_fn(), CONTENT_TYPE)
                elif path == "/health":
                    ok = ready_fn()
                    self._send(
                        200 if ok else 503,
                        b"ok\n" if ok else b"starting\n",
                        "text/plain; charset=utf-8",
                    )
                elif path == "/":
                    self._send(200, b"sip-otel: /metrics /health\n", "text/plain; charset=utf-8")
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
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
