"""The agent's HTTP endpoint: ``/metrics`` (Prometheus exposition), ``/health`` and ``/``.

One thread runs a ``selectors`` event loop over non-blocking sockets: no thread per connection,
and every resource a client can hold is bounded (docs/deployment.md, "The scrape endpoint"):

- listen backlog :data:`BACKLOG` (the kernel caps it at ``net.core.somaxconn``);
- at most :data:`MAX_CONNECTIONS` connections: past the cap the connection that has waited
  longest for a request is closed to make room, else the new one gets a 503;
- a request head must arrive within :data:`HEADER_TIMEOUT_S` of connecting (or of its first
  byte on a kept-alive connection, idle at most :data:`IDLE_TIMEOUT_S`), be at most 8 KiB
  (httpproto.py), and its answer must be read within :data:`WRITE_TIMEOUT_S`;
- when ``accept()`` fails for want of file descriptors the loop closes the longest-waiting idle
  connection, else accepts with a reserved descriptor and closes at once, and stops polling the
  listener for :data:`ACCEPT_PAUSE_S` -- never a busy loop;
- client errors are counted by kind and logged at most once per kind per minute (httpproto.py).

``/metrics`` uses prometheus_client's exposition: the classic text format (0.0.4, as
sip-exporter serves) unless the scraper's ``Accept`` asks for OpenMetrics, gzip when
``Accept-Encoding`` allows it, ``HEAD`` answers the headers of the same response. Each
(format, encoding) variant is built at most once per :data:`CACHE_S` and shared by the scrapes
of that window (:class:`ExpositionCache`). Optional TLS and basic auth: webconfig.py.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder

from .httpproto import (
    ClientErrors,
    HttpError,
    Request,
    error_response,
    head_end,
    parse_head,
    response,
)

__all__ = ["ExpositionCache", "MetricsServer", "Render"]

log = logging.getLogger("sip_otel.telemetry.http")

BACKLOG = 1024
MAX_CONNECTIONS = 256
HEADER_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 10.0
ACCEPT_PAUSE_S = 0.1  # listener not polled this long after accept() ran out of descriptors
SWEEP_S = 0.1  # how often deadlines are checked
CACHE_S = 0.1  # an exposition is reused this long
MAX_ACCEPTS = 64  # per readiness event, so that accepting cannot starve the served
RECV_BYTES = 65536
# A scrape of a few hundred series is ~30 KB; gzip level 1 takes it to ~4 KB at a fraction of
# the cost of level 9.
GZIP_LEVEL = 1
FD_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
TEXT = "text/plain; charset=utf-8"

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


class ExpositionCache:
    """(Accept, gzip?) -> (body, content type), each variant built at most once per ``max_age``
    seconds of ``clock``. Used from one thread (the server's loop)."""

    def __init__(
        self, render: Render, clock: Callable[[], float] = time.monotonic, max_age: float = CACHE_S
    ) -> None:
        self._render = render
        self._clock = clock
        self._max_age = max_age
        self._cache: dict[tuple[str, bool], tuple[float, bytes]] = {}

    def get(self, accept: str, gz: bool) -> tuple[bytes, str]:
        ctype = choose_encoder(accept)[1]
        now = self._clock()
        hit = self._cache.get((ctype, gz))
        if hit is not None and now - hit[0] < self._max_age:
            return hit[1], ctype
        plain = self._cache.get((ctype, False))
        if plain is None or now - plain[0] >= self._max_age:
            body, ctype = self._render(accept)
            plain = (now, body)
            self._cache[(ctype, False)] = plain
        if not gz:
            return plain[1], ctype
        packed = (plain[0], gzip.compress(plain[1], GZIP_LEVEL))
        self._cache[(ctype, True)] = packed
        return packed[1], ctype


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    peer: object
    deadline: float
    since: float  # when it started waiting for a request (eviction order)
    inbuf: bytearray
    out: memoryview | None = None
    keep_alive: bool = False
    served: int = 0
    handshaking: bool = False
    events: int = selectors.EVENT_READ


class MetricsServer:
    def __init__(
        self,
        host: str,
        port: int,
        render: Render | None,
        ready: Callable[[], bool],
        *,
        tls: ssl.SSLContext | None = None,
        auth: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache = ExpositionCache(render, clock) if render is not None else None
        self._ready = ready
        self._tls = tls
        self._auth = auth
        self._clock = clock
        self.errors = ClientErrors(log, clock)
        family, kind, proto, _, addr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        self._lsock = socket.socket(family, kind, proto)
        try:
            self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._lsock.bind(addr)
            self._lsock.listen(BACKLOG)
            self._lsock.setblocking(False)
        except OSError:
            self._lsock.close()
            raise
        self.port = int(self._lsock.getsockname()[1])
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._lsock, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._conns: dict[socket.socket, _Conn] = {}
        self._reserve: int | None = self._open_reserve()
        self._paused_until = 0.0
        self._accept_logged = -60.0
        self._stop = False
        self._bug_logged = False
        self._thread = threading.Thread(target=self._run, name="sip-otel-http", daemon=True)
        self._thread.start()

    # -- public --------------------------------------------------------------------------------

    def client_errors(self) -> dict[str, int]:
        """Client errors by kind (every kind, zeros included)."""
        return dict(self.errors.counts)

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout=5)

    # -- loop ----------------------------------------------------------------------------------

    def _run(self) -> None:
        last_sweep = self._clock()
        try:
            while not self._stop:
                for key, _events in self._sel.select(SWEEP_S):
                    if key.fileobj is self._lsock:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        pass
                    else:
                        self._event(self._conns.get(key.fileobj))  # type: ignore[call-overload]
                now = self._clock()
                if self._paused_until and now >= self._paused_until:
                    self._paused_until = 0.0
                    self._sel.register(self._lsock, selectors.EVENT_READ, None)
                if now - last_sweep >= SWEEP_S:
                    last_sweep = now
                    self._sweep(now)
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._sel.close()
            self._lsock.close()
            self._wake_r.close()
            self._wake_w.close()
            if self._reserve is not None:
                os.close(self._reserve)

    def _event(self, conn: _Conn | None) -> None:
        if conn is None:
            return
        try:
            if conn.handshaking:
                self._handshake(conn)
            elif conn.out is not None:
                self._serve(conn)
            else:
                self._read(conn)
        except Exception:  # a bug: one connection, not the server
            if not self._bug_logged:
                self._bug_logged = True
                log.exception("bug: the HTTP server failed on a connection")
            self._close(conn)

    # -- accept --------------------------------------------------------------------------------

    @staticmethod
    def _open_reserve() -> int | None:
        try:
            return os.open(os.devnull, os.O_RDONLY)
        except OSError:
            return None

    def _accept(self) -> None:
        for _ in range(MAX_ACCEPTS):
            try:
                sock, peer = self._lsock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in FD_ERRNOS:
                    self.errors.count("fd_exhausted", detail=str(exc))
                    if self._evict_idle():
                        continue  # one descriptor free again: accept the next
                    self._shed()
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                now = self._clock()  # anything else: say so (once a minute), rest, retry
                if now - self._accept_logged >= 60:
                    self._accept_logged = now
                    log.warning("http: accept() failed: %s; retrying", exc)
                self._pause_listener()
                return
            if len(self._conns) >= MAX_CONNECTIONS and not self._evict_idle():
                self.errors.count("over_capacity", peer)
                self._refuse(sock)
                continue
            self._add(sock, peer)

    def _add(self, sock: socket.socket, peer: object) -> None:
        sock.setblocking(False)
        now = self._clock()
        conn = _Conn(sock, peer, now + HEADER_TIMEOUT_S, now, bytearray())
        if self._tls is not None:
            try:
                conn.sock = self._tls.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            except (OSError, ValueError):
                self.errors.count("tls_error", peer)
                sock.close()
                return
            conn.handshaking = True
        self._conns[conn.sock] = conn
        self._sel.register(conn.sock, selectors.EVENT_READ, None)

    def _evict_idle(self) -> bool:
        """Close the connection that has waited longest for a request (none: False)."""
        oldest: _Conn | None = None
        for conn in self._conns.values():
            if conn.out is None and (oldest is None or conn.since < oldest.since):
                oldest = conn
        if oldest is None:
            return False
        self.errors.count("over_capacity", oldest.peer, "idle connection closed to make room")
        self._close(oldest)
        return True

    def _shed(self) -> None:
        """Out of descriptors with nothing to evict: accept one with the reserved descriptor and
        close it (the client sees a close, not a hang), then rest the listener a moment."""
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None
            try:
                sock, _ = self._lsock.accept()
                self._refuse(sock)
            except OSError:
                pass
            self._reserve = self._open_reserve()
        self._pause_listener()

    def _pause_listener(self) -> None:
        if not self._paused_until:
            self._sel.unregister(self._lsock)
        self._paused_until = self._clock() + ACCEPT_PAUSE_S

    @staticmethod
    def _refuse(sock: socket.socket) -> None:
        try:
            sock.setblocking(False)
            sock.send(error_response(503))
        except OSError:
            pass
        sock.close()

    # -- per connection ------------------------------------------------------------------------

    def _set_events(self, conn: _Conn, events: int) -> None:
        if conn.events != events:
            conn.events = events
            self._sel.modify(conn.sock, events, None)

    def _close(self, conn: _Conn) -> None:
        if self._conns.pop(conn.sock, None) is not None:
            self._sel.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()

    def _handshake(self, conn: _Conn) -> None:
        assert isinstance(conn.sock, ssl.SSLSocket)
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._set_events(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._set_events(conn, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as exc:
            self.errors.count("tls_error", conn.peer, str(exc))
            self._close(conn)
            return
        conn.handshaking = False
        self._set_events(conn, selectors.EVENT_READ)
        if conn.sock.pending():  # the request may have come with the handshake's last flight
            self._serve(conn)

    def _read(self, conn: _Conn) -> None:
        if self._fill(conn):
            self._serve(conn)

    def _fill(self, conn: _Conn) -> bool:
        """Read what the socket has into ``inbuf``; False if the connection is gone."""
        while True:
            try:
                data = conn.sock.recv(RECV_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return True
            except (ssl.SSLError, OSError) as exc:
                if conn.inbuf:
                    self.errors.count("disconnect", conn.peer, str(exc))
                self._close(conn)
                return False
            if not data:
                if conn.inbuf:
                    self.errors.count("disconnect", conn.peer, "closed mid-request")
                self._close(conn)
                return False
            if not conn.inbuf and conn.served:
                conn.deadline = self._clock() + HEADER_TIMEOUT_S  # a kept-alive one's next
            conn.inbuf += data
            pending = conn.sock.pending() if isinstance(conn.sock, ssl.SSLSocket) else 0
            if len(conn.inbuf) > 2 * RECV_BYTES or not pending:
                return True

    def _serve(self, conn: _Conn) -> None:
        """Answer the complete requests in ``inbuf`` in turn (pipelining: a loop, not
        recursion), until one is incomplete, the socket blocks or the connection closes."""
        while conn.sock in self._conns:
            if conn.out is not None and not self._write(conn):
                return
            if self._next_request(conn):
                continue
            if isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending() and self._fill(conn):
                continue  # decrypted bytes the kernel no longer signals
            return

    def _next_request(self, conn: _Conn) -> bool:
        """Queue the answer to the request at the head of ``inbuf`` if it is complete."""
        while conn.inbuf[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request
            del conn.inbuf[:2]
        try:
            end = head_end(conn.inbuf)
            if end < 0:
                return False
            head = bytes(conn.inbuf[:end])
            del conn.inbuf[:end]
            request = parse_head(head)
        except HttpError as exc:
            self.errors.count(exc.kind, conn.peer, f"status {exc.status}")
            self._respond(conn, error_response(exc.status), keep_alive=False)
            return True
        self._respond(conn, *self._answer(request))
        return True

    def _answer(self, req: Request) -> tuple[bytes, bool]:
        """(response bytes, keep the connection)."""
        head_only = req.method == "HEAD"
        keep = req.keep_alive

        def send(
            status: int, body: bytes, ctype: str = TEXT, extra: tuple[tuple[str, str], ...] = ()
        ) -> tuple[bytes, bool]:
            raw = response(
                status,
                body,
                ctype,
                head_only=head_only,
                keep_alive=keep,
                version=req.version,
                extra=extra,
            )
            return raw, keep

        if req.path == "/health":  # open: a probe needs no credentials
            ok = self._ready()
            return send(200 if ok else 503, b"ok\n" if ok else b"starting\n")
        if self._auth is not None and not self._auth(req.headers.get("authorization", "")):
            self.errors.count("unauthorized")
            keep = False
            return send(
                401, b"unauthorized\n", extra=(("WWW-Authenticate", 'Basic realm="sip-otel"'),)
            )
        if req.path == "/metrics" and self._cache is not None:
            gz = _accepts_gzip(req.headers.get("accept-encoding", ""))
            try:
                body, ctype = self._cache.get(req.headers.get("accept", ""), gz)
            except Exception:
                if not self._bug_logged:
                    self._bug_logged = True
                    log.exception("bug: rendering /metrics failed")
                keep = False
                return send(500, b"internal error\n")
            extra = (("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")) if gz else ()
            return send(200, body, ctype, extra)
        if req.path == "/":
            return send(200, b"sip-otel: /metrics /health\n")
        return send(404, b"not found\n")

    def _respond(self, conn: _Conn, raw: bytes, keep_alive: bool) -> None:
        conn.out = memoryview(raw)
        conn.keep_alive = keep_alive
        conn.deadline = self._clock() + WRITE_TIMEOUT_S

    def _write(self, conn: _Conn) -> bool:
        """Send the queued answer; True when all of it went and the connection stays open."""
        out = conn.out
        assert out is not None
        while out:
            try:
                n = conn.sock.send(out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                self._set_events(conn, selectors.EVENT_WRITE)
                conn.out = out
                return False
            except (ssl.SSLError, OSError) as exc:
                self.errors.count("disconnect", conn.peer, str(exc))
                self._close(conn)
                return False
            out = out[n:]
        conn.out = None
        conn.served += 1
        if not conn.keep_alive:
            self._close(conn)
            return False
        now = self._clock()
        conn.since = now
        conn.deadline = now + (HEADER_TIMEOUT_S if conn.inbuf else IDLE_TIMEOUT_S)
        self._set_events(conn, selectors.EVENT_READ)
        return True

    def _sweep(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            if conn.out is not None:
                self.errors.count("write_timeout", conn.peer)
            elif conn.inbuf or not conn.served:
                self.errors.count("header_timeout", conn.peer)
            # else: a kept-alive connection idle too long: closed, not an error
            self._close(conn)
