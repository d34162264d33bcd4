"""`sip-otel replay` end to end on small hand-built captures: text, json, flags, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from netbuild import DST4, SRC4, eth_udp4, ethernet, ipv4, tcp, udp
from sip_otel.capture.pcapfile import PcapWriter

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def msg(start: str, cseq: str, branch: str, to_tag: str = "") -> bytes:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{start}\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n"
        f"From: <sip:alice@example.com>;tag=a\r\nTo: {to}\r\nCall-ID: c1@192.0.2.1\r\n"
        f"CSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def write(path: Path, frames: list[tuple[int, bytes]]) -> Path:
    with path.open("wb") as fh:
        w = PcapWriter(fh, 1)
        for ts, data in frames:
            w.write(ts, data)
    return path


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sip_otel", "replay", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def call_capture(tmp_path: Path, port: int = 5060) -> Path:
    inv = msg("INVITE sip:bob@example.com SIP/2.0", "1 INVITE", "z9hG4bK1")
    return write(
        tmp_path / "call.pcap",
        [
            (T0, eth_udp4(inv, 40000, port)),
            (T0 + 500 * MS, eth_udp4(inv, 40000, port)),  # retransmission
            (
                T0 + 600 * MS,
                eth_udp4(msg("SIP/2.0 180 Ringing", "1 INVITE", "z9hG4bK1", "b"), port, 40000),
            ),
            (
                T0 + 1000 * MS,
                eth_udp4(msg("SIP/2.0 486 Busy Here", "1 INVITE", "z9hG4bK1", "b"), port, 40000),
            ),
            (
                T0 + 1010 * MS,
                eth_udp4(
                    msg("ACK sip:bob@example.com SIP/2.0", "1 ACK", "z9hG4bK1", "b"), 40000, port
                ),
            ),
            (T0 + 1020 * MS, ethernet(b"\x00" * 28, ethertype=0x0806)),  # ARP: skipped
            (T0 + 1030 * MS, ethernet(ipv4(udp(b"xx", 5060, 5060, length=99)))),  # bad UDP length
        ],
    )


def test_json_summary_by_hand(tmp_path: Path) -> None:
    out = replay(str(call_capture(tmp_path)), "--format", "json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["frames"] == 7
    assert got["messages"] == 5
    assert got["requests"] == {"INVITE": 2, "ACK": 1}
    assert got["responses"] == {"180": 1, "486": 1}
    assert got["retransmissions"] == {"INVITE": 1}
    assert got["errors"] == {"net.bad_udp_length": 1}
    assert got["skipped"] == {"ethertype": 1}
    # one attempt answered 486: SER 0, SEER 100 (486 is effective), ISA 0, SCR 0
    rfc = got["rfc6076"]
    assert (rfc["ser"], rfc["seer"], rfc["isa"], rfc["scr"], rfc["ira"]) == (
        0.0,
        100.0,
        0.0,
        0.0,
        None,
    )
    # RFC 6076 §4.3.2: the first non-100 provisional (180 at 0.6 s after the first INVITE; the
    # retransmission does not reset t1) of an attempt that fails is a failure SRD, never success
    assert rfc["srd_success"]["count"] == 0
    assert rfc["srd_failure"]["count"] == 1
    assert abs(rfc["srd_failure"]["mean_s"] - 0.6) < 1e-9
    assert got["dialogs"]["failed_4xx"] == 1


def test_text_summary_lists_sections(tmp_path: Path) -> None:
    out = replay(str(call_capture(tmp_path)))
    assert out.returncode == 0, out.stderr
    for needle in (
        "frames read     7",
        "SIP messages    5",
        "INVITE  2",
        "486  1",
        "net.bad_udp_length",
        "SER   0.00 %",
        "IRA   undefined",
    ):
        assert needle in out.stdout, needle


def test_sip_ports_flag(tmp_path: Path) -> None:
    cap = call_capture(tmp_path, port=6060)
    assert json.loads(replay(str(cap), "--format", "json").stdout)["messages"] == 0
    got = json.loads(replay(str(cap), "--format", "json", "--sip-ports", "6060").stdout)
    assert got["messages"] == 5
    got = json.loads(replay(str(cap), "--format", "json", "--all-ports").stdout)
    assert got["messages"] == 5


def test_all_ports_skips_non_sip_payloads(tmp_path: Path) -> None:
    cap = write(
        tmp_path / "x.pcap",
        [
            (T0, eth_udp4(b"\x80\x00" + b"\x00" * 170, 16000, 16002)),  # RTP-like
            (
                T0 + 1,
                ethernet(
                    ipv4(
                        tcp(b"GET / HTTP/1.1\r\n\r\n", 1, 0x18, 40000, 80),
                        proto=6,
                        src=SRC4,
                        dst=DST4,
                    )
                ),
            ),
        ],
    )
    got = json.loads(replay(str(cap), "--format", "json", "--all-ports").stdout)
    assert got["messages"] == 0 and got["errors"] == {}
    assert sum(got["skipped"].values()) == 2


def test_bad_arguments_exit_2_without_traceback(tmp_path: Path) -> None:
    out = replay(str(tmp_path / "x.pcap"), "--sip-ports", "0,70000")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "ports must be 1-65535" in out.stderr


def test_a_correlation_header_sip_defines_is_refused(tmp_path: Path) -> None:
    out = replay(str(tmp_path / "x.pcap"), "--correlation-header", "Call-ID")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("sip-otel: correlation header 'Call-ID': expected a header name")
    out = subprocess.run(
        [sys.executable, "-m", "sip_otel", "run", "--correlation-header", "Via"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "correlation header 'Via'" in out.stderr and "--correlation-header" in out.stderr


def test_missing_file(tmp_path: Path) -> None:
    out = replay(str(tmp_path / "nope.pcap"))
    assert out.returncode == 1
    assert out.stderr.strip().startswith("sip-otel: ") and "cannot open" in out.stderr
    assert "Traceback" not in out.stderr


def test_truncated_file_reports_what_was_read(tmp_path: Path) -> None:
    cap = call_capture(tmp_path)
    data = cap.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])
    out = replay(str(cut), "--format", "json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["frames"] == 6
    err = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "cut short" in err[0] and "Traceback" not in out.stderr


def test_other_ports_hint(tmp_path: Path) -> None:
    cap = call_capture(tmp_path, port=6060)  # 5 SIP messages, all on 6060; plus ARP, bad UDP
    out = replay(str(cap), "--format", "json")
    assert out.returncode == 0
    assert json.loads(out.stdout)["messages"] == 0
    err = out.stderr.strip().splitlines()
    # 5 SIP datagrams on 6060 and the bad-length one on 5060 -> 6060 (its ports are 5060 both
    # ways: it is counted as an error, not skipped): 5 UDP packets on other ports
    assert err == [
        "sip-otel: no SIP messages on ports 5060,5061, but 5 UDP/TCP packets on other ports: "
        "try --all-ports, or --sip-ports with the capture's SIP ports"
    ]
    assert replay(str(cap), "--format", "json", "--sip-ports", "6060").stderr == ""
    assert replay(str(cap), "--all-ports").stderr == ""


def test_text_delays_in_milliseconds(tmp_path: Path) -> None:
    out = replay(str(call_capture(tmp_path)))
    # failure SRD: INVITE at 0 ms, 180 at 600 ms (by construction of call_capture)
    assert "srd_failure  n=1 mean=600.0 ms p50=" in out.stdout, out.stdout
    assert "no samples" in out.stdout


def test_stdin_and_gzip_input(tmp_path: Path) -> None:
    import gzip

    cap = call_capture(tmp_path)
    data = cap.read_bytes()
    want = json.loads(replay(str(cap), "--format", "json").stdout)
    del want["file"], want["elapsed_s"], want["messages_per_s"], want["frames_per_s"]
    gz = tmp_path / "call.pcap.gz"
    gz.write_bytes(gzip.compress(data))
    for source, stdin in ((str(gz), None), ("-", data), ("-", gz.read_bytes())):
        proc = subprocess.run(
            [sys.executable, "-m", "sip_otel", "replay", source, "--format", "json"],
            input=stdin,
            capture_output=True,
            cwd=REPO,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout)
        assert got["file"] == source
        for key in want:
            assert got[key] == want[key], (source, key)


def test_gzip_cut_short(tmp_path: Path) -> None:
    import gzip

    cap = call_capture(tmp_path)
    packed = gzip.compress(cap.read_bytes())
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(packed[: len(packed) - 12])  # the trailer (CRC, size) and some data gone
    out = replay(str(cut), "--format", "json")
    assert out.returncode == 1
    err = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "compressed data cut short" in err[0], out.stderr
    assert json.loads(out.stdout)["frames"] >= 1  # what came before the cut is reported


def test_span_uris_flag_and_deprecated_alias() -> None:
    from sip_otel.cli import _build_parser

    parser = _build_parser()
    for flag in ("--span-uris", "--include-uris"):
        args = parser.parse_args(["replay", "x.pcap", flag])
        assert args.span_uris or args.include_uris_deprecated
    run = parser.parse_args(["run", "--span-uris"])
    assert run.span_uris is True


def test_span_addresses_switch_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    """On by default; ``--no-span-addresses`` or the variable set to false turns it off, for
    ``run`` (through the settings) and ``replay`` (its flag) alike."""
    from sip_otel.cli import _build_parser
    from sip_otel.config import load_settings

    parser = _build_parser()
    assert parser.parse_args(["replay", "x.pcap"]).span_addresses is True
    assert parser.parse_args(["replay", "x.pcap", "--no-span-addresses"]).span_addresses is False
    assert parser.parse_args(["run"]).span_addresses is None  # not given: the variable decides
    assert parser.parse_args(["run", "--no-span-addresses"]).span_addresses is False
    assert parser.parse_args(["run", "--span-addresses"]).span_addresses is True
    monkeypatch.delenv("SIP_EXPORTER_SPAN_ADDRESSES", raising=False)
    assert load_settings().agent_config().span_addresses is True
    assert load_settings(span_addresses=False).agent_config().span_addresses is False
    monkeypatch.setenv("SIP_EXPORTER_SPAN_ADDRESSES", "false")
    assert load_settings().agent_config().span_addresses is False
    assert load_settings(span_addresses=True).agent_config().span_addresses is True


def test_deprecated_flag_says_so(tmp_path: Path) -> None:
    cap = str(call_capture(tmp_path))
    out = replay(cap, "--format", "json", "--include-uris")
    assert out.returncode == 0
    assert out.stderr == "sip-otel: --include-uris is deprecated; use --span-uris\n"
    assert replay(cap, "--format", "json", "--span-uris").stderr == ""


def test_bad_otlp_endpoint_is_one_line(tmp_path: Path) -> None:
    out = replay(str(call_capture(tmp_path)), "--otlp", "--otlp-endpoint", "http//collector:4317")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "invalid OTLP endpoint 'http//collector:4317'" in out.stderr


# -- capture files that must never crash (issue 11, row 6): one line, exit 1, no traceback -------


def _one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sip-otel: "), out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


_SHRINK_DRIVER = """
import os, sys
from sip_otel import cli, pipeline
from sip_otel.capture import pcapfile
path, cut = sys.argv[1], int(sys.argv[2])
cli.REPLAY_CHUNK = 50  # frames per call into the core
pcapfile.CHUNK = 4096  # bytes per region read
feed = pipeline.Pipeline.feed_capture
calls = []
def feed_then_truncate(self, reader, n):
    more = feed(self, reader, n)
    calls.append(n)
    if len(calls) == 1:
        os.truncate(path, cut)  # as another process would, while the replay runs
    return more
pipeline.Pipeline.feed_capture = feed_then_truncate
sys.exit(cli.main(["replay", path, "--format", "json"]))
"""


def test_file_shrinking_during_replay(tmp_path: Path) -> None:
    # Exactly what `sip-otel replay` does, with the file truncated by another writer after the
    # first 50 frames. A mapped file would die of SIGBUS (exit 135) here.
    path = write(tmp_path / "big.pcap", [(T0 + i, b"\x00" * 184) for i in range(2000)])
    assert path.stat().st_size == 24 + 2000 * 200
    out = subprocess.run(
        [sys.executable, "-c", _SHRINK_DRIVER, str(path), "200001"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert _one_error_line(out) == (
        f"sip-otel: {path}: file shrank/truncated during replay at byte 200001 "
        f"(it had 400024 bytes when opened)"
    )
    assert json.loads(out.stdout)["frames"] == 999  # records ending by byte 200,001


def test_short_pcapng_packet_block_at_the_end(tmp_path: Path) -> None:
    import struct

    def block(btype: int, body: bytes) -> bytes:
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(1, struct.pack("<HHI", 1, 0, 0))
    p = tmp_path / "short.pcapng"
    p.write_bytes(shb + idb + struct.pack("<III", 6, 12, 12))
    out = replay(str(p), "--format", "json")
    assert out.returncode == 1
    assert _one_error_line(out) == (
        f"sip-otel: {p}: corrupt packet block at offset 48: block length 12 is shorter than "
        "the 32 bytes of its fixed fields (type 0x6)"
    )
    assert json.loads(out.stdout)["frames"] == 0  # the summary of what was read comes first


def test_timestamps_beyond_int64_ns_are_counted_and_said(tmp_path: Path) -> None:
    import struct

    def block(btype: int, body: bytes) -> bytes:
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))

    inv = eth_udp4(msg("INVITE sip:bob@example.com SIP/2.0", "1 INVITE", "z9hG4bK1"), 40000, 5060)
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    # if_tsresol 10^0 s: 2^63 s does not fit; 1,700,000,000 s does
    idb = block(1, struct.pack("<HHIHHB3xHH", 1, 0, 0, 9, 1, 0, 0, 0))
    epbs = b""
    for ts in (1 << 63, 1_700_000_000, 1 << 62):
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(inv), len(inv)) + inv
        body += b"\0" * (-len(body) % 4)
        epbs += block(6, body)
    p = tmp_path / "ts.pcapng"
    p.write_bytes(shb + idb + epbs)
    out = replay(str(p), "--format", "json")
    assert out.returncode == 1
    assert _one_error_line(out) == (
        f"sip-otel: {p}: 2 packets dropped: their timestamps fall outside the 64-bit "
        "nanosecond range (pcap.timestamp_range)"
    )
    got = json.loads(out.stdout)
    assert got["frames"] == 1 and got["messages"] == 1
    assert got["errors"]["pcap.timestamp_range"] == 2


def test_named_pipe_with_a_writer_and_without_data(tmp_path: Path) -> None:
    import os
    import threading

    cap = call_capture(tmp_path)
    want = json.loads(replay(str(cap), "--format", "json").stdout)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = cap.read_bytes()

    def writer(payload: bytes) -> None:
        with open(fifo, "wb", buffering=0) as fh:
            for i in range(0, len(payload), 100):
                fh.write(payload[i : i + 100])

    t = threading.Thread(target=writer, args=(data,))
    t.start()
    out = replay(str(fifo), "--format", "json")
    t.join(10)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["frames"] == want["frames"] == 7 and got["messages"] == want["messages"]
    t = threading.Thread(target=writer, args=(b"",))  # opens and closes: empty input
    t.start()
    out = replay(str(fifo), "--format", "json")
    t.join(10)
    assert out.returncode == 1
    assert _one_error_line(out) == f"sip-otel: {fifo}: empty input, not a capture"


def test_bad_inputs_are_one_line_and_exit_1(tmp_path: Path) -> None:
    import gzip

    good = call_capture(tmp_path).read_bytes()
    packed = gzip.compress(good)
    cases = {
        "empty.pcap": (b"", "empty file, not a capture"),
        "header.pcap": (good[:20], "truncated pcap file header (20 of 24 bytes)"),
        "text.pcap": (b"hello", "not a pcap or pcapng file (magic 68656c6c)"),
        "corrupt.pcap.gz": (
            packed[:30] + bytes(b ^ 0xFF for b in packed[30:60]) + packed[60:],
            "compressed data corrupt",
        ),
        "cut.pcap.gz": (packed[:40], "compressed data cut short"),
        "magic.gz": (packed[:2], "compressed data cut short"),
    }
    for name, (data, text) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        out = replay(str(p))
        assert out.returncode == 1, name
        assert _one_error_line(out).startswith(f"sip-otel: {p}: {text}"), (name, out.stderr)
    out = replay(str(tmp_path))
    assert out.returncode == 1
    assert _one_error_line(out) == f"sip-otel: {tmp_path}: not a regular file (a directory)"


def test_unreadable_file_as_another_user(tmp_path: Path) -> None:
    import os
    import shutil

    import pytest

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run the replay as another user")
    p = tmp_path / "secret.pcap"
    p.write_bytes(call_capture(tmp_path).read_bytes())
    p.chmod(0o600)
    tmp_path.chmod(0o755)
    user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    out = subprocess.run(
        [*user, sys.executable, "-m", "sip_otel", "replay", str(p)],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=120,
    )
    if "Permission denied" not in out.stderr:
        pytest.skip(f"the other user cannot run the replay here: {out.stderr[-200:]}")
    assert out.returncode == 1
    assert _one_error_line(out) == f"sip-otel: {p}: cannot open: Permission denied"


def test_stdin_empty_or_closed_and_a_device() -> None:
    cmd = [sys.executable, "-m", "sip_otel", "replay"]
    out = subprocess.run(
        [*cmd, "-"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1
    assert _one_error_line(out) == "sip-otel: stdin: empty input, not a capture"
    closed = subprocess.run(
        ["sh", "-c", '"$@" <&-', "sh", *cmd, "-"], capture_output=True, text=True, timeout=120
    )
    assert closed.returncode == 1
    assert _one_error_line(closed) == "sip-otel: stdin: standard input is closed"
    out = replay("/dev/zero")  # endless, not a capture: refused after its first bytes
    assert out.returncode == 1
    assert _one_error_line(out) == "sip-otel: /dev/zero: not a pcap or pcapng file (magic 00000000)"
