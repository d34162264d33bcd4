"""The scrape endpoint under hostile or merely numerous clients (docs/reliability.md).

    sudo .venv/bin/python benchmarks/scrape_load.py load --clients 200 --seconds 20
    sudo .venv/bin/python benchmarks/scrape_load.py idle --nofile 200 --hold 400
    sudo .venv/bin/python benchmarks/scrape_load.py disconnect --count 1000

Each mode starts a real agent (``sip-otel run --capture-mode afpacket --interface lo``, /metrics
on 127.0.0.1 and a free port; needs root for the capture socket) unless ``--url`` names a
running one (``load`` only), and reports:

``load``: CLIENTS asyncio scrapers, each in a closed loop for SECONDS: connect, ``GET
/metrics`` with Prometheus' headers (OpenMetrics Accept, ``Accept-Encoding: gzip``), read the
whole response, close (``--keep-alive``: reuse the connection). A scrape that takes longer
than ``--timeout`` (10 s, Prometheus' default scrape timeout) or fails to connect or answers
anything but 200 is a failure. Reported: requests, failures by kind, latency p50/p99/max, the
agent's CPU (% of one core, /proc/PID/stat) over the run, and the load average.

``idle``: the agent runs under ``RLIMIT_NOFILE`` = NOFILE; HOLD connections are opened and left
idle (never a byte sent); then one ``GET /metrics`` (answered or not within 5 s), the agent's
CPU over the next 5 s (a spinning accept loop shows ~100 %), and its log lines.

``disconnect``: COUNT clients that misbehave in turn -- request then reset at once, request
then reset after a few bytes of the answer, half a request then close -- and the agent's log:
lines written, tracebacks, lines naming the client address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
HZ = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sip_otel() -> str:
    here = Path(sys.executable).parent / "sip-otel"
    return str(here) if here.exists() else (shutil.which("sip-otel") or "sip-otel")


class Agent:
    """A real agent on lo, /metrics on 127.0.0.1:PORT, its log in a temporary file."""

    def __init__(self, nofile: int | None = None) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+b", prefix="scrape-load-", suffix=".log")  # noqa: SIM115

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        cmd = [
            sip_otel(),
            "run",
            "--capture-mode",
            "afpacket",
            "--interface",
            "lo",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"agent exited {self.proc.returncode}: {self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.close()
        sys.exit("agent not ready within 30 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ

    def runqueue_wait_s(self) -> float:
        """Time the agent's threads spent runnable but waiting for a CPU (schedstat)."""
        total = 0
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            with contextlib.suppress(OSError):
                total += int(
                    Path(f"/proc/{self.proc.pid}/task/{tid}/schedstat").read_text().split()[1]
                )
        return total / 1e9

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


# -- load ----------------------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _scraper(
    host: str, port: int, end: float, timeout: float, keep_alive: bool, out: dict[str, list]
) -> None:
    request = (
        f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: Prometheus/2.53.0\r\n"
        f"Accept: {ACCEPT}\r\nAccept-Encoding: gzip\r\n"
        "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
        + ("" if keep_alive else "Connection: close\r\n")
        + "\r\n"
    ).encode()
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                reader, writer = conn
                writer.write(request)
                status = await _read_response(reader)
            if status != 200:
                out["fail"].append(f"status_{status}")
            else:
                out["lat"].append(time.monotonic() - t0)
        except TimeoutError:
            out["fail"].append("timeout")
            conn = _drop(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            out["fail"].append(type(exc).__name__)
            conn = _drop(conn)
            await asyncio.sleep(0.01)
        if not keep_alive:
            conn = _drop(conn)


def _drop(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
) -> None:
    if conn is not None:
        conn[1].close()
    return None


def run_clients(
    host: str, port: int, n: int, end: float, timeout: float, keep_alive: bool
) -> tuple[list[float], list[str]]:
    """N scrapers in this process's event loop until ``end`` (time.monotonic)."""
    out: dict[str, list] = {"lat": [], "fail": []}

    async def main() -> None:
        await asyncio.gather(
            *(_scraper(host, port, end, timeout, keep_alive, out) for _ in range(n))
        )

    asyncio.run(main())
    return out["lat"], out["fail"]


def run_load(args: argparse.Namespace) -> None:
    agent = None if args.url else Agent()
    url = args.url or (agent.url if agent else "")
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
            body = r.read()
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        print(f"target {url}/metrics: {len(body)} bytes, {series} series")
        out: dict[str, list] = {"lat": [], "fail": []}
        cpu0 = agent.cpu_s() if agent else 0.0
        wait0 = agent.runqueue_wait_s() if agent else 0.0
        t0 = time.monotonic()
        end = t0 + args.seconds

        per, extra = divmod(args.clients, args.procs)
        shares = [per + (i < extra) for i in range(args.procs)]
        jobs = [(host, int(port), n, end, args.timeout, args.keep_alive) for n in shares]
        with multiprocessing.Pool(args.procs) as pool:
            for lat, fail in pool.starmap(run_clients, jobs):
                out["lat"] += lat
                out["fail"] += fail
        wall = time.monotonic() - t0
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = 100 * (ru.ru_utime + ru.ru_stime) / wall
        lat = sorted(out["lat"])
        n = len(lat) + len(out["fail"])
        fails = Counter(out["fail"])
        print(
            f"clients {args.clients} in {args.procs} processes, {wall:.1f} s, "
            f"keep-alive {args.keep_alive}: "
            f"{n} requests ({n / wall:.0f}/s), {len(out['fail'])} failures "
            f"({100 * len(out['fail']) / max(n, 1):.2f} %) {dict(fails)}"
        )
        print(
            f"latency p50 {1000 * percentile(lat, 50):.1f} ms, p99 {1000 * percentile(lat, 99):.1f}"
            f" ms, max {1000 * (lat[-1] if lat else float('nan')):.1f} ms"
        )
        if agent:
            print(
                f"agent CPU {100 * (agent.cpu_s() - cpu0) / wall:.0f} % of a core, "
                f"{agent.threads()} threads at the end; clients {client_cpu:.0f} %; the agent's "
                f"threads waited {agent.runqueue_wait_s() - wait0:.1f} s for a CPU"
            )
        print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    finally:
        if agent:
            agent.close()


# -- idle ----------------------------------------------------------------------------------------


def run_idle(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.hold + 256)), hard))
    agent = Agent(nofile=args.nofile)
    held: list[socket.socket] = []
    try:
        failed = 0
        for _ in range(args.hold):  # one at a time; give up after 5 connects in a row time out
            try:
                held.append(socket.create_connection(("127.0.0.1", agent.port), timeout=1))
                failed = 0
            except OSError:
                failed += 1
                if failed == 5:
                    break
        time.sleep(1)
        print(
            f"agent under RLIMIT_NOFILE {args.nofile}, {len(held)} idle connections: "
            f"{agent.fds()} descriptors open, {agent.threads()} threads"
        )
        print(f"  GET /metrics while held: {probe(agent.url)}")
        cpu0, t0 = agent.cpu_s(), time.monotonic()
        time.sleep(5)
        cpu = 100 * (agent.cpu_s() - cpu0) / (time.monotonic() - t0)
        print(f"  agent CPU over 5 s while held: {cpu:.0f} % of a core")
        for s in held:
            s.close()
        held.clear()
        time.sleep(1)
        print(f"  GET /metrics after release: {probe(agent.url)}")
        lines = agent.log_text().splitlines()
        print(f"  agent log: {len(lines)} lines; last: {lines[-3:]}")
        print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        for s in held:
            s.close()
        agent.close()


def probe(url: str) -> str:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
            n = len(r.read())
        return f"{r.status}, {n} bytes in {1000 * (time.monotonic() - t0):.0f} ms"
    except Exception as exc:
        return f"failed after {time.monotonic() - t0:.1f} s: {exc}"


# -- disconnect ----------------------------------------------------------------------------------

REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n"


def _reset(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def run_disconnect(args: argparse.Namespace) -> None:
    agent = Agent()
    try:
        before = len(agent.log_text().splitlines())
        for i in range(args.count):
            s = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            kind = i % 3
            with contextlib.suppress(OSError):
                if kind == 0:
                    s.sendall(REQUEST)
                elif kind == 1:
                    s.sendall(REQUEST)
                    s.recv(64)
                else:
                    s.sendall(REQUEST[:20])
            _reset(s)
        time.sleep(2)
        print(f"/metrics after {args.count} misbehaving clients: {probe(agent.url)}")
        text = agent.log_text()
        lines = text.splitlines()[before:]
        print(
            f"agent log: {len(lines)} new lines, {text.count('Traceback')} tracebacks, "
            f"{sum('127.0.0.1' in line for line in lines)} lines naming the client address"
        )
        for line in lines[:5]:
            print(f"  {line}")
    finally:
        agent.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    lo = sub.add_parser("load")
    lo.add_argument("--clients", type=int, default=200)
    lo.add_argument("--seconds", type=float, default=20)
    lo.add_argument("--timeout", type=float, default=10)
    lo.add_argument("--keep-alive", action="store_true")
    lo.add_argument("--procs", type=int, default=4, help="client processes sharing the clients")
    lo.add_argument("--url", help="a running agent (http://HOST:PORT) instead of starting one")
    idle = sub.add_parser("idle")
    idle.add_argument("--nofile", type=int, default=200)
    idle.add_argument("--hold", type=int, default=400)
    dc = sub.add_parser("disconnect")
    dc.add_argument("--count", type=int, default=1000)
    args = p.parse_args()
    {"load": run_load, "idle": run_idle, "disconnect": run_disconnect}[args.mode](args)


if __name__ == "__main__":
    main()
