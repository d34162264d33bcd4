"""HTTP/1.x for the scrape endpoint, sans I/O: parse one request head, build one response, and
count and log client errors (server.py does the sockets).

Only what a scraper needs: ``GET`` and ``HEAD`` without a body, HTTP/1.0 and 1.1, keep-alive.
Everything else is a :class:`HttpError` carrying the status to answer and the client-error kind
(:data:`CLIENT_ERROR_KINDS`, a fixed set: the ``kind`` label of
``sip_otel_http_client_errors_total``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "CLIENT_ERROR_KINDS",
    "MAX_HEAD_BYTES",
    "ClientErrors",
    "HttpError",
    "Request",
    "parse_head",
    "response",
]

MAX_HEAD_BYTES = 8192  # request line + headers
MAX_HEADERS = 64
LOG_EVERY_S = 60.0  # at most one log line per kind of client error per minute

# kind -> what it means (the log line's text). Fixed: the metric label's values.
CLIENT_ERROR_KINDS: dict[str, str] = {
    "bad_request": "malformed HTTP requests (400)",
    "request_too_large": "request heads over 8 KiB (414/431)",
    "method_not_allowed": "methods other than GET/HEAD (405)",
    "unauthorized": "requests without valid basic-auth credentials (401)",
    "header_timeout": "connections closed without a complete request within the header timeout",
    "write_timeout": "clients too slow to read their answer (connection closed)",
    "disconnect": "clients that disconnected or reset before the answer was sent",
    "tls_error": "failed TLS handshakes",
    "over_capacity": "connections closed to make room, or refused (503), at the connection or "
    "file-descriptor limit",
    "fd_exhausted": "accept() failed: file descriptors exhausted (EMFILE/ENFILE)",
}

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A request we answer with ``status`` and then close; ``kind`` is what gets counted."""

    def __init__(self, status: int, kind: str) -> None:
        super().__init__(status, kind)
        self.status = status
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Request:
    method: str  # GET | HEAD
    path: str  # without the query
    version: str  # HTTP/1.0 | HTTP/1.1
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, first occurrence

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        tokens = {t.strip() for t in conn.split(",")}
        if self.version == "HTTP/1.1":
            return "close" not in tokens
        return "keep-alive" in tokens


def head_end(buf: bytes | bytearray) -> int:
    """Index just past the blank line ending a request head, or -1 (also checks the size)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) >= MAX_HEAD_BYTES:
            first = buf.find(b"\r\n")
            raise HttpError(414 if first < 0 else 431, "request_too_large")
        return -1
    if end + 4 > MAX_HEAD_BYTES:
        raise HttpError(431, "request_too_large")
    return end + 4


def parse_head(head: bytes) -> Request:
    """One request head (through the blank line) -> :class:`Request`, or :class:`HttpError`."""
    text = head.decode("latin-1")  # any byte decodes
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HttpError(400, "bad_request")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(505 if version.startswith("HTTP/") else 400, "bad_request")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, "request_too_large")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or not name.isascii():
            raise HttpError(400, "bad_request")  # also obs-fold (a line starting with space)
        headers.setdefault(name.lower(), value.strip())
    if not (target.startswith("/") or target == "*"):
        raise HttpError(400, "bad_request")
    if method not in ("GET", "HEAD"):
        raise HttpError(405, "method_not_allowed")
    if "transfer-encoding" in headers or headers.get("content-length", "0") not in ("0", ""):
        raise HttpError(400, "bad_request")  # a scrape has no body
    return Request(method, target.split("?", 1)[0], version, headers)


def response(
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    *,
    head_only: bool = False,
    keep_alive: bool = False,
    version: str = "HTTP/1.1",
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    lines = [
        f"{version} {status} {REASONS.get(status, 'Error')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
        *(f"{k}: {v}" for k, v in extra),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def error_response(status: int) -> bytes:
    extra: tuple[tuple[str, str], ...] = ()
    if status == 405:
        extra = (("Allow", "GET, HEAD"),)
    reason = REASONS.get(status, "Error").lower()
    return response(status, f"{reason}\n".encode(), extra=extra)


class ClientErrors:
    """Counts client errors by kind; logs at most one line per kind per :data:`LOG_EVERY_S`
    (with how many were not logged), never a traceback, the client's address only at debug."""

    def __init__(self, log: logging.Logger, clock: Callable[[], float]) -> None:
        self.counts: dict[str, int] = dict.fromkeys(CLIENT_ERROR_KINDS, 0)
        self._log = log
        self._clock = clock
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = dict.fromkeys(CLIENT_ERROR_KINDS, 0)

    def count(self, kind: str, peer: object = None, detail: str = "") -> None:
        self.counts[kind] += 1
        if peer is not None and self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("http client %s: %s %s", peer, kind, detail)
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < LOG_EVERY_S:
            self._unlogged[kind] += 1
            return
        self._last[kind] = now
        more = self._unlogged[kind]
        self._unlogged[kind] = 0
        level = logging.WARNING if kind == "fd_exhausted" else logging.INFO
        self._log.log(
            level,
            'http: %s%s (sip_otel_http_client_errors_total{kind="%s"}; at most one line per '
            "minute)",
            CLIENT_ERROR_KINDS[kind],
            f", {more} more since the last line" if more else "",
            kind,
        )

    def snapshot(self) -> dict[str, int]:
        return {k: n for k, n in self.counts.items() if n}
