"""Media load (issue 12): 1,000 concurrent RTP streams replayed onto a veth the agent captures.

    .venv/bin/python benchmarks/media_load.py gen /tmp/media_load.pcap [--calls 500] [--duration 30]
    sudo .venv/bin/python benchmarks/media_load.py run /tmp/media_load.pcap [--modes base,media]

``gen`` writes a classic pcap (Ethernet, nanosecond timestamps) of ``--calls`` calls between
127.0.0.0/8 addresses only (caller 127.10.x.y, callee 127.20.x.y, SIP 5060 <-> 5060): per call
INVITE with a PCMA offer, 200 OK with the answer, ACK (one call per ms), then RTP both ways --
one stream per direction, G.711 20 ms (160-byte payload, 50 packets/s each; 500 calls -> 1,000
streams, 50,000 packets/s) for ``--duration`` seconds, each 20 ms tick's packets in 20 bursts
1 ms apart -- then BYE / 200 per call. ``--split N`` (default 2) deals the calls (with their
streams) out to N files replayed by N tcpreplay processes in parallel: one process does not
reach 50,000 packets/s here. It prints its own counts (JSON): SIP messages, RTP streams and
packets, the RTP phase's start and end relative to the first packet.

``run`` puts the two ends of a veth in network namespaces of their own (``mlr`` in the replay
namespace, ``mla`` in the agent's), starts ``sip-otel run --interface mla --capture-mode ebpf``
(plus ``--media`` in mode ``media``) in the agent's namespace, replays the capture with
``tcpreplay -K --pps`` at the capture's RTP rate (50,000/s in all; each file its share; at the
recorded timestamps tcpreplay fell behind here, 14-24 s for 12 s with any ``-T`` timer), and
reports per mode:

- tcpreplay's own statistics (packets sent, seconds, failed) and whether it kept up (its
  duration within 2 % of packets / rate);
- the agent's CPU over the RTP phase as % of one core: utime + stime (/proc/PID/stat) of the
  agent and its children, sampled 1 s into the RTP phase and 0.5 s before its end;
- what the agent counted against what was sent: ``sip_otel_frames_total`` (frames delivered to
  userspace: the SIP messages; without ``--media`` the socket filter rejects RTP in the kernel),
  capture drops, and with ``--media`` ``sip_otel_rtp_packets_total`` (RTP counted in the kernel)
  and ``sip_otel_rtp_packets_lost_total``;
- the whole machine's softirq time over the same window (/proc/stat; includes other
  processes): the socket filter runs in the receiving softirq, which the kernel charges to
  whatever task is current (here mostly tcpreplay, whose sendmsg drives the veth's receive),
  not to the agent -- so the agent's own figure does not include the per-packet BPF cost.

Mode ``idle`` runs the agent for the same window with no traffic at all: its own floor.
Without ``--media`` on the agent (``sip-otel run --help``), mode ``media`` is skipped with a note.
The frames carry 127.0.0.0/8 addresses, which the receiving stack drops as martians after the
packet taps. Needs root, bcc and tcpreplay. Keep the duration short on a shared machine: the
replay keeps one core busy (tcpreplay's timing loop).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests" / "e2e"), str(HERE.parent / "tests" / "capture")]

from e2ehelpers import Agent, capture_drops  # noqa: E402
from livenet import PYTHON, REPO, NetNs, live_skip_reason, sh  # noqa: E402

T0 = 1_700_000_000 * 10**9
MS = 1_000_000
PTIME = 20 * MS
PAYLOAD = b"\xd5" * 160  # PCMA silence, 20 ms at 8 kHz
RTP_START = 1000 * MS  # after the last call's set-up (calls start 1 ms apart)
CALLER_PORT, CALLEE_PORT = 20000, 30000
MAC_A, MAC_B = b"\x02\x00\x00\x00\x00\x0a", b"\x02\x00\x00\x00\x00\x0b"


def caller_ip(i: int) -> bytes:
    return bytes([127, 10, i // 200, i % 200 + 1])


def callee_ip(i: int) -> bytes:
    return bytes([127, 20, i // 200, i % 200 + 1])


def _dotted(a: bytes) -> str:
    return ".".join(map(str, a))


def _checksum(hdr: bytes) -> int:
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_headers(src: bytes, dst: bytes, sport: int, dport: int, payload_len: int) -> bytes:
    """Ethernet + IPv4 (checksummed) + UDP (checksum 0: none, legal on IPv4) headers."""
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + payload_len, 0, 0x4000, 64, 17,
                               0, src, dst))  # fmt: skip
    struct.pack_into("!H", ip, 10, _checksum(bytes(ip)))
    fwd = src[1] == 10
    eth = (MAC_B + MAC_A if fwd else MAC_A + MAC_B) + b"\x08\x00"
    return eth + bytes(ip) + struct.pack("!HHHH", sport, dport, 8 + payload_len, 0)


def sip_frame(i: int, from_caller: bool, text: str) -> bytes:
    a, b = (caller_ip(i), callee_ip(i)) if from_caller else (callee_ip(i), caller_ip(i))
    data = text.replace("\n", "\r\n").encode()
    return udp_headers(a, b, 5060, 5060, len(data)) + data


def _sdp(ip: bytes, port: int) -> str:
    return (
        f"v=0\no=- {port} 1 IN IP4 {_dotted(ip)}\ns=-\nc=IN IP4 {_dotted(ip)}\nt=0 0\n"
        f"m=audio {port} RTP/AVP 8\na=rtpmap:8 PCMA/8000\na=ptime:20\n"
    )


def call_messages(i: int, phase: str) -> list[tuple[bool, str]]:
    """(from the caller?, message text) for call ``i``: ``setup`` or ``teardown``."""
    a, b = _dotted(caller_ip(i)), _dotted(callee_ip(i))
    dialog = (
        f"From: <sip:a{i}@{a}>;tag=fa{i}\nTo: <sip:b{i}@{b}>{{totag}}\n"
        f"Call-ID: media-load-{i}@{a}\n"
    )
    via = f"Via: SIP/2.0/UDP {a}:5060;branch=z9hG4bK{phase}{i}\n"

    def req(method: str, cseq: int, body: str = "") -> str:
        ct = "Content-Type: application/sdp\n" if body else ""
        return (
            f"{method} sip:b{i}@{b}:5060 SIP/2.0\n{via}"
            + dialog.format(totag="" if method == "INVITE" else f";tag=tb{i}")
            + f"CSeq: {cseq} {method}\nContact: <sip:a{i}@{a}:5060>\nMax-Forwards: 70\n{ct}"
            f"Content-Length: {len(body.replace(chr(10), chr(13) + chr(10)))}\n\n{body}"
        )

    def resp(method: str, cseq: int, body: str = "") -> str:
        ct = "Content-Type: application/sdp\n" if body else ""
        return (
            f"SIP/2.0 200 OK\n{via}"
            + dialog.format(totag=f";tag=tb{i}")
            + f"CSeq: {cseq} {method}\nContact: <sip:b{i}@{b}:5060>\n{ct}"
            f"Content-Length: {len(body.replace(chr(10), chr(13) + chr(10)))}\n\n{body}"
        )

    if phase == "setup":
        return [
            (True, req("INVITE", 1, _sdp(caller_ip(i), CALLER_PORT))),
            (False, resp("INVITE", 1, _sdp(callee_ip(i), CALLEE_PORT))),
            (True, req("ACK", 1)),
        ]
    return [(True, req("BYE", 2)), (False, resp("BYE", 2))]


def split_paths(path: Path, n: int) -> list[Path]:
    """The files ``gen --split N`` writes: ``path`` itself for 1, else ``stem.K.pcap``."""
    return [path] if n == 1 else [path.with_suffix(f".{k}{path.suffix}") for k in range(n)]


def gen(path: Path, calls: int, duration_s: float, split: int = 1) -> dict[str, Any]:
    """Write the capture (call ``i`` and its two streams into file ``i % split``)."""
    ticks = int(duration_s * 1000 / 20)
    streams = 2 * calls
    # One tick's packets go out in 20 bursts, 1 ms apart (streams 0-49 at +0 ms, 50-99 at
    # +1 ms, ...): tcpreplay sleeps between packets of different times, and a sleep per packet
    # at 50,000/s is beyond its timer (10,500 packets/s per process measured here).
    burst = max(1, -(-streams // 20))
    rec = struct.Struct("<IIII")
    rtp = struct.Struct("!BBHII")
    heads = []
    for j in range(streams):
        i, back = divmod(j, 2)
        src, dst = (callee_ip(i), caller_ip(i)) if back else (caller_ip(i), callee_ip(i))
        sport, dport = (CALLEE_PORT, CALLER_PORT) if back else (CALLER_PORT, CALLEE_PORT)
        heads.append(udp_headers(src, dst, sport, dport, 12 + len(PAYLOAD)))
    frame_len = len(heads[0]) + 12 + len(PAYLOAD)
    sip_count = 0
    files = [p.open("wb") for p in split_paths(path, split)]
    try:
        for fh in files:
            fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))

        def put(i: int, ts: int, data: bytes) -> None:
            fh = files[i % split]
            fh.write(rec.pack(ts // 10**9, ts % 10**9, len(data), len(data)))
            fh.write(data)

        for i in range(calls):
            for k, (fwd, text) in enumerate(call_messages(i, "setup")):
                put(i, T0 + i * MS + k * 200_000, sip_frame(i, fwd, text))
                sip_count += 1
        for t in range(ticks):
            base = T0 + RTP_START + t * PTIME
            bufs = [bytearray() for _ in files]
            for j in range(streams):
                ts = base + (j // burst) * MS
                buf = bufs[(j // 2) % split]
                buf += rec.pack(ts // 10**9, ts % 10**9, frame_len, frame_len)
                buf += heads[j]
                buf += rtp.pack(0x80, 8, (j * 37 + t) & 0xFFFF, (160 * t) & 0xFFFFFFFF,
                                0x10000000 + j)  # fmt: skip
                buf += PAYLOAD
            for fh, buf in zip(files, bufs, strict=True):
                fh.write(buf)
        rtp_end = RTP_START + ticks * PTIME
        for i in range(calls):
            for k, (fwd, text) in enumerate(call_messages(i, "teardown")):
                put(i, T0 + rtp_end + 500 * MS + i * MS + k * 200_000, sip_frame(i, fwd, text))
                sip_count += 1
    finally:
        for fh in files:
            fh.close()
    return {
        "calls": calls,
        "split": split,
        "sip_messages": sip_count,
        "rtp_streams": streams,
        "rtp_packets": streams * ticks,
        "rtp_packets_per_s": streams * 1000 // 20,
        "rtp_start_s": RTP_START / 1e9,
        "rtp_end_s": rtp_end / 1e9,
        "duration_s": (rtp_end + 500 * MS + calls * MS) / 1e9,
    }


def agent_has_media() -> bool:
    out = subprocess.run(
        [str(PYTHON), "-m", "sip_otel", "run", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    ).stdout
    return "--media" in out


def tree_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants, in seconds."""
    tick = float(os.sysconf("SC_CLK_TCK"))
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0)
        todo.extend(c for c, pp in parents.items() if pp == p)
    return total / tick


def bpf_prog_stats(pid: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) summed over the BPF programs ``pid`` and its children hold
    (/proc/PID/fdinfo of each bpf-prog fd; the kernel counts only while
    kernel.bpf_stats_enabled is 1)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                pids.append(int(entry.name))
    progs: dict[int, tuple[int, int]] = {}
    for p in pids:
        try:
            fds = list(Path(f"/proc/{p}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) != "anon_inode:bpf-prog":
                    continue
                info = dict(
                    ln.split(":", 1)
                    for ln in Path(f"/proc/{p}/fdinfo/{fd.name}").read_text().splitlines()
                    if ":" in ln
                )
            except OSError:
                continue
            progs[int(info["prog_id"])] = (int(info["run_time_ns"]), int(info["run_cnt"]))
    return sum(t for t, _ in progs.values()), sum(c for _, c in progs.values())


def softirq_s() -> float:
    """Whole machine's softirq time so far (/proc/stat, all CPUs), in seconds."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[7]) / float(os.sysconf("SC_CLK_TCK"))


def _sum(m: dict[str, float], name: str) -> float:
    return sum(v for k, v in m.items() if k.split("{", 1)[0] == name)


def one_run(mode: str, pcap: Path, counts: dict[str, Any], tmp: Path) -> dict[str, Any]:
    load = Path("/proc/loadavg").read_text().split()[:3]
    # tcpreplay --pps at the RTP rate (each of the ``split`` files its share): in timestamp
    # mode it fell behind here (a 12 s capture took 14-24 s, whatever -T timer); --pps keeps
    # up. The SIP set-up goes at that rate too (0.1 s), then the RTP phase, then the BYEs.
    split = counts["split"]
    pps = counts["rtp_packets_per_s"] // split
    per_file = (counts["sip_messages"] + counts["rtp_packets"]) / split
    rtp_start = 3 * counts["calls"] / split / pps
    rtp_end = rtp_start + counts["rtp_packets"] / split / pps
    agent_ns, replay_ns = NetNs("mla"), NetNs("mlr")
    try:
        sh("ip", "link", "add", "mla", "netns", agent_ns.name, "type", "veth", "peer", "name",
           "mlr", "netns", replay_ns.name)  # fmt: skip
        agent_ns.ip("link", "set", "mla", "up")
        replay_ns.ip("link", "set", "mlr", "up")
        # 500 calls learn 2,000 endpoints (RTP + RTCP per side): more than the default 4,096
        # table's 8-slot probe windows hold without a few `media_endpoints.full` (docs/media.md)
        extra = ("--media", "--media-max-endpoints", "8192") if mode == "media" else ()
        agent = Agent(agent_ns, tmp, "--interface", "mla", "--capture-mode", "ebpf", *extra)
        try:
            agent.wait_ready(deadline_s=120)
            time.sleep(1.0)
            pid = agent.proc.pid
            t_start = time.monotonic()
            replays = [
                subprocess.Popen(
                    [
                        *replay_ns.exec_prefix(),
                        "tcpreplay",
                        "-K",
                        f"--pps={pps}",
                        "-i",
                        "mlr",
                        str(p),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for p in split_paths(pcap, counts["split"])
                if mode != "idle"  # idle: the agent alone, no traffic, the same window
            ]
            # the RTP phase at that rate (-K: loaded first, ~0.1 s per 100 MB; then 1 s in)
            time.sleep(max(0.0, t_start + rtp_start + 1.5 - time.monotonic()))
            cpu0, irq0, t0 = tree_cpu_s(pid), softirq_s(), time.monotonic()
            bpf0 = bpf_prog_stats(pid)
            time.sleep(max(0.0, t_start + rtp_end - 0.5 - time.monotonic()))
            cpu1, irq1, t1 = tree_cpu_s(pid), softirq_s(), time.monotonic()
            bpf1 = bpf_prog_stats(pid)
            outs = [r.communicate(timeout=3600)[0] for r in replays]
            for r, out in zip(replays, outs, strict=True):
                if r.returncode != 0:
                    raise SystemExit(f"tcpreplay failed: {out}")
            # media: final reports come media_linger (3 s) after each call's end
            if mode == "media":
                time.sleep(5.0)
            m = agent.settled(limit_s=60)
        finally:
            rc, _ = agent.stop()
    finally:
        agent_ns.close()
        replay_ns.close()
    sent, secs, failed = 0, per_file / pps if mode == "idle" else 0.0, 0
    for out in outs:
        actual = re.search(r"Actual: (\d+) packets \(\d+ bytes\) sent in ([\d.]+) seconds", out)
        fails = re.search(r"Failed packets:\s+(\d+)", out)
        if actual is None or fails is None:
            raise SystemExit(f"tcpreplay statistics not found: {out}")
        sent += int(actual[1])
        secs = max(secs, float(actual[2]))
        failed += int(fails[1])
    result: dict[str, Any] = {
        "mode": mode,
        "agent_exit": rc,
        "load": " ".join(load),
        "sent": sent,
        "sent_expected": 0 if mode == "idle" else counts["sip_messages"] + counts["rtp_packets"],
        "tcpreplay_s": secs,
        "tcpreplay_failed": failed,
        "replay_s_expected": round(per_file / pps, 2),
        "kept_up": abs(secs - per_file / pps) <= 0.02 * per_file / pps,
        "window_s": round(t1 - t0, 2),
        "agent_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "softirq_pct_all_cpus": round(100 * (irq1 - irq0) / (t1 - t0), 2),
        "filter_runs": bpf1[1] - bpf0[1],
        "filter_cpu_pct": round(100 * (bpf1[0] - bpf0[0]) / 1e9 / (t1 - t0), 2),
        "filter_ns_per_run": round((bpf1[0] - bpf0[0]) / max(1, bpf1[1] - bpf0[1]), 1),
        "frames": int(m.get("sip_otel_frames_total", 0)),
        "sip_sent": 0 if mode == "idle" else counts["sip_messages"],
        "drops": int(capture_drops(m)),
    }
    if mode == "media":
        result["rtp_counted"] = int(_sum(m, "sip_otel_rtp_packets_total"))
        result["rtp_lost"] = int(_sum(m, "sip_otel_rtp_packets_lost_total"))
        result["rtp_sent"] = counts["rtp_packets"]
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen", help="write the capture")
    g.add_argument("pcap", type=Path)
    g.add_argument("--calls", type=int, default=500)
    g.add_argument("--duration", type=float, default=30.0, help="RTP seconds (default 30)")
    g.add_argument(
        "--split", type=int, default=2, help="files, one tcpreplay each, in parallel (default 2)"
    )
    r = sub.add_parser("run", help="replay it onto a veth the agent captures")
    r.add_argument("pcap", type=Path)
    r.add_argument(
        "--modes",
        default="idle,base,media",
        help="idle (no traffic), base (no --media), media; comma list (default all three)",
    )
    r.add_argument("--json", action="store_true", help="one JSON line per run")
    r.add_argument(
        "--bpf-stats",
        action="store_true",
        help="set kernel.bpf_stats_enabled for the runs (machine-wide; restored after) and "
        "report the agent's BPF programs' own run time",
    )
    args = ap.parse_args()
    if args.cmd == "gen":
        counts = gen(args.pcap, args.calls, args.duration, args.split)
        args.pcap.with_suffix(".json").write_text(json.dumps(counts, indent=1) + "\n")
        print(json.dumps(counts))
        return 0
    reason = live_skip_reason(need_bcc=True)
    if reason or shutil.which("tcpreplay") is None:
        print(f"cannot run: {reason or 'tcpreplay not installed'}", file=sys.stderr)
        return 2
    counts = json.loads(args.pcap.with_suffix(".json").read_text())
    has_media = agent_has_media()
    stats_knob = Path("/proc/sys/kernel/bpf_stats_enabled")
    stats_before = stats_knob.read_text().strip() if args.bpf_stats else ""
    if args.bpf_stats:
        stats_knob.write_text("1\n")
    try:
        return _runs(args, counts, has_media)
    finally:
        if args.bpf_stats:
            stats_knob.write_text(stats_before + "\n")


def _runs(args: argparse.Namespace, counts: dict[str, Any], has_media: bool) -> int:
    for mode in args.modes.split(","):
        if mode == "media" and not has_media:
            print("media: skipped, the agent has no --media yet (issue 12 parts not merged)")
            continue
        with tempfile.TemporaryDirectory() as d:
            res = one_run(mode, args.pcap, counts, Path(d))
        if args.json:
            print(json.dumps(res), flush=True)
            continue
        line = (
            f"{mode:5}: tcpreplay sent {res['sent']}/{res['sent_expected']} in "
            f"{res['tcpreplay_s']:.2f} s (at {counts['rtp_packets_per_s']} packets/s: "
            f"{res['replay_s_expected']:.2f} s, "
            f"{'kept up' if res['kept_up'] else 'FELL BEHIND'}, failed "
            f"{res['tcpreplay_failed']}); agent CPU {res['agent_cpu_pct']:.2f} % of one core "
            f"over {res['window_s']} s of RTP; softirq (all CPUs, whole machine) "
            f"{res['softirq_pct_all_cpus']:.1f} %; frames {res['frames']} (SIP sent "
            f"{res['sip_sent']}), drops {res['drops']}"
        )
        if args.bpf_stats:
            line += (
                f"; filter {res['filter_runs']} runs, {res['filter_ns_per_run']} ns each, "
                f"{res['filter_cpu_pct']:.2f} % of one core"
            )
        if mode == "media":
            line += f"; RTP counted {res['rtp_counted']}/{res['rtp_sent']}, lost {res['rtp_lost']}"
        print(line + f"; load {res['load']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
