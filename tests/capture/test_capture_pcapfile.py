"""pcap/pcapng reader and writer: hand-built files, every truncation point, corrupt headers."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from conftest import SHARED_PCAPS as SHARED
from sip_otel.capture.pcapfile import CaptureFileError, PcapReader, PcapWriter, read_frames


def _read_all(path: Path) -> list[tuple[int, int, bytes]]:
    return [(f.ts_ns, f.linktype, bytes(f.data)) for b in read_frames(str(path)) for f in b]


def test_writer_roundtrip_keeps_nanoseconds(tmp_path: Path) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    w.write(1_700_000_000_123_456_789, b"abc")
    w.write(1_700_000_001_000_000_001, b"")
    p = tmp_path / "x.pcap"
    p.write_bytes(buf.getvalue())
    assert _read_all(p) == [
        (1_700_000_000_123_456_789, 1, b"abc"),
        (1_700_000_001_000_000_001, 1, b""),
    ]


@pytest.mark.parametrize("endian", ["<", ">"])
def test_microsecond_pcap_both_byte_orders(tmp_path: Path, endian: str) -> None:
    head = struct.pack(endian + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113)
    rec = struct.pack(endian + "IIII", 10, 250_000, 2, 60) + b"hi"
    p = tmp_path / "u.pcap"
    p.write_bytes(head + rec)
    assert _read_all(p) == [(10_250_000_000, 113, b"hi")]


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _shb() -> bytes:
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(linktype: int, tsresol: int | None = None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts = struct.pack("<HH", 9, 1) + bytes([tsresol]) + b"\0\0\0" + struct.pack("<HH", 0, 0)
    return _block(1, struct.pack("<HHI", linktype, 0, 0) + opts)


def _epb(if_id: int, ts: int, data: bytes) -> bytes:
    return _block(
        6, struct.pack("<IIIII", if_id, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data
    )


def test_pcapng_resolutions_and_interfaces(tmp_path: Path) -> None:
    data = (
        _shb()
        + _idb(1)  # default resolution: microseconds
        + _idb(101, 9)  # nanoseconds
        + _idb(113, 0x80 | 10)  # 2^-10 s
        + _epb(0, 5_000_001, b"a")  # 5.000001 s
        + _epb(1, 7_000_000_009, b"bb")
        + _epb(2, 3 * 1024 + 512, b"ccc")  # 3.5 s
        + _block(5, b"\0" * 8)  # an unknown block type is skipped
    )
    p = tmp_path / "n.pcapng"
    p.write_bytes(data)
    assert _read_all(p) == [
        (5_000_001_000, 1, b"a"),
        (7_000_000_009, 101, b"bb"),
        (3_500_000_000, 113, b"ccc"),
    ]


def test_pcapng_packet_before_interface_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.pcapng"
    p.write_bytes(_shb() + _epb(0, 1, b"x"))
    with pytest.raises(CaptureFileError, match="corrupt packet block"):
        _read_all(p)


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_every_truncation_gives_frames_or_one_clear_error(tmp_path: Path, kind: str) -> None:
    if kind == "pcap":
        buf = io.BytesIO()
        w = PcapWriter(buf, 1)
        for i in range(3):
            w.write(i, bytes(range(20 + i)))
        whole = buf.getvalue()
    else:
        whole = _shb() + _idb(1, 9) + _epb(0, 1, b"x" * 21) + _epb(0, 2, b"y" * 7)
    for cut in range(len(whole)):
        p = tmp_path / f"t{cut}"
        p.write_bytes(whole[:cut])
        frames: list[object] = []
        try:
            with PcapReader(str(p)) as r:
                for b in r.batches():
                    frames.extend(b)
        except CaptureFileError as e:
            msg = str(e)
            assert "\n" not in msg and str(p) in msg
        # a cut exactly at a record boundary is a valid shorter file; never an exception type
        # other than CaptureFileError (pytest would fail on it)


def test_not_a_capture(tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("hello world")
    with pytest.raises(CaptureFileError, match="not a pcap or pcapng file"):
        PcapReader(str(p))
    p.write_bytes(b"")
    with pytest.raises(CaptureFileError, match="empty file"):
        PcapReader(str(p))
    with pytest.raises(CaptureFileError, match="cannot open"):
        PcapReader(str(tmp_path / "missing.pcap"))
    with pytest.raises(CaptureFileError, match="not a regular file"):
        PcapReader(str(tmp_path))


def test_batches_are_bounded(tmp_path: Path) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    for i in range(10):
        w.write(i, b"z")
    p = tmp_path / "b.pcap"
    p.write_bytes(buf.getvalue())
    with PcapReader(str(p)) as r:
        assert [len(b) for b in r.batches(4)] == [4, 4, 2]


@pytest.mark.skipif(not (SHARED / "bad").is_dir(), reason="../shared/pcaps is absent")
def test_corrupt_corpus_file() -> None:
    with pytest.raises(CaptureFileError, match="corrupt record at offset 24"):
        _read_all(SHARED / "bad" / "pkts_cool.pcap")


# -- what the compiled reader adds or pins down -------------------------------------------------


def _block_be(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(">II", btype, n) + body + struct.pack(">I", n)


def test_pcapng_big_endian_section_then_little_endian_section(tmp_path: Path) -> None:
    be = (
        _block_be(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
        + _block_be(1, struct.pack(">HHI", 101, 0, 0))
        + _block_be(6, struct.pack(">IIIII", 0, 0, 7, 2, 2) + b"be")
    )
    le = _shb() + _idb(1, 9) + _epb(0, 9, b"le")
    p = tmp_path / "sections.pcapng"
    p.write_bytes(be + le)
    assert _read_all(p) == [(7_000, 101, b"be"), (9, 1, b"le")]


def test_pcapng_simple_and_obsolete_packet_blocks(tmp_path: Path) -> None:
    spb = _block(3, struct.pack("<I", 3) + b"abc")
    pb = _block(2, struct.pack("<HHIIII", 0, 0, 0, 5, 2, 2) + b"xy")
    p = tmp_path / "old.pcapng"
    p.write_bytes(_shb() + _idb(113) + spb + pb)
    frames = [f for b in read_frames(str(p)) for f in b]
    assert [(f.ts_ns, f.linktype, f.data, f.ifindex) for f in frames] == [
        (0, 113, b"abc", 0),
        (5_000, 113, b"xy", 0),
    ]


def test_pcapng_many_interfaces_and_extreme_resolutions(tmp_path: Path) -> None:
    # more interfaces than any fixed table would hold; 10^-30 s and 2^-100 s ticks give 0 ns;
    # 10^0 s ticks of 2^63 s do not fit int64 ns: that frame is dropped and counted
    idbs = b"".join(_idb(1) for _ in range(300)) + _idb(101, 30) + _idb(113, 0x80 | 100)
    idbs += _idb(228, 0)
    data = _shb() + idbs + _epb(299, 1, b"a") + _epb(300, 1 << 60, b"b")
    data += _epb(301, (1 << 64) - 1, b"c") + _epb(302, 1 << 63, b"d")
    p = tmp_path / "ifaces.pcapng"
    p.write_bytes(data)
    assert _read_all(p) == [
        (1_000, 1, b"a"),
        (0, 101, b"b"),
        (0, 113, b"c"),
    ]
    with PcapReader(str(p)) as r:
        assert sum(len(b) for b in r.batches()) == 3
        assert r.timestamp_range == 1


def test_pcapng_error_messages(tmp_path: Path) -> None:
    cases = {
        b"": "truncated block header at offset 28; the file was cut short",
        _block(6, struct.pack("<IIIII", 0, 0, 1, 99, 99)): (
            "corrupt packet block at offset 28 (interface 0, captured length 99)"
        ),
        _block(2, struct.pack("<HHIIII", 3, 0, 0, 1, 0, 0)): "corrupt packet block at offset 28",
        struct.pack("<II", 6, 14) + b"\0" * 6: "corrupt block at offset 28 (type 0x6, length 14)",
        struct.pack("<II", 6, 400) + b"\0" * 8: (
            "cut short block at offset 28 (type 0x6, length 400)"
        ),
        struct.pack("<III", 0x0A0D0D0A, 28, 0x11223344): "bad byte-order magic at offset 28",
    }
    for i, (tail, msg) in enumerate(cases.items()):
        p = tmp_path / f"e{i}.pcapng"
        p.write_bytes(_shb() + tail + (b"\0" * 5 if not tail else b""))
        with pytest.raises(CaptureFileError) as err:
            _read_all(p)
        assert str(err.value) == f"{p}: {msg}"
    p = tmp_path / "spb.pcapng"
    p.write_bytes(_shb() + _block(3, struct.pack("<I", 1) + b"x"))
    with pytest.raises(CaptureFileError, match="packet block before any interface at 28"):
        _read_all(p)


def test_pcap_errors_keep_frames_and_progress(tmp_path: Path) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    w.write(1, b"abcd")
    whole = buf.getvalue()
    p = tmp_path / "cut.pcap"
    p.write_bytes(whole + struct.pack("<IIII", 0, 0, 10, 10) + b"12345")
    with PcapReader(str(p)) as r:
        got = []
        with pytest.raises(CaptureFileError) as err:
            for b in r.batches():
                got.extend(b)
        assert [f.data for f in got] == [b"abcd"]
        assert r.progress == r.size
    assert str(err.value) == (
        f"{p}: truncated packet at offset {len(whole)} (5 of 10 bytes); the file was cut short"
    )
    p.write_bytes(whole[:20])
    with pytest.raises(CaptureFileError, match=r"truncated pcap file header \(20 of 24 bytes\)"):
        _read_all(p)


def test_batches_restart_and_close_while_iterating(tmp_path: Path) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    for i in range(5):
        w.write(i, b"z")
    p = tmp_path / "r.pcap"
    p.write_bytes(buf.getvalue())
    r = PcapReader(str(p))
    it = r.batches(2)
    assert len(next(it)) == 2
    assert [len(b) for b in r.batches(2)] == [2, 2, 1]  # a second iteration starts over
    r.close()  # an unfinished iteration does not keep the file mapped


# -- read in regions, streams, and the capture-file defects of issue 11 (row 6) -----------------


def _frames(path: Path) -> list[tuple[int, int, bytes, int]]:
    with PcapReader(str(path)) as r:
        return [(f.ts_ns, f.linktype, bytes(f.data), f.ifindex) for b in r.batches(3) for f in b]


@pytest.mark.parametrize("chunk", [1, 5, 13, 64])
def test_small_regions_give_the_same_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    import gzip

    import sip_otel.capture.pcapfile as pcapfile

    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    for i in range(7):
        w.write(1_000_000_000 * i + i, bytes(range(i * 9)))
    ng = _shb() + _idb(1, 9) + _epb(0, 11, b"a" * 30) + _shb() + _idb(113) + _epb(0, 2, b"bc")
    ng += _block(5, b"\0" * 40) + _epb(0, 3, b"")
    want_pcap = [(1_000_000_000 * i + i, 1, bytes(range(i * 9)), 0) for i in range(7)]
    want_ng = [(11, 1, b"a" * 30, 0), (2_000, 113, b"bc", 0), (3_000, 113, b"", 0)]
    for name, data, want in (("p.pcap", buf.getvalue(), want_pcap), ("n.pcapng", ng, want_ng)):
        p = tmp_path / name
        p.write_bytes(data)
        z = tmp_path / (name + ".gz")
        z.write_bytes(gzip.compress(data) + gzip.compress(b""))  # two members
        monkeypatch.setattr(pcapfile, "CHUNK", chunk)
        assert _frames(p) == want
        assert _frames(z) == want
        # a cut in the last record is reported at its file offset, whatever the region size
        cut = tmp_path / ("cut-" + name)
        cut.write_bytes(data[:-1])
        with pytest.raises(CaptureFileError) as err:
            _frames(cut)
        monkeypatch.setattr(pcapfile, "CHUNK", 1 << 20)
        with pytest.raises(CaptureFileError) as whole:
            _frames(cut)
        assert str(err.value) == str(whole.value)


def test_short_enhanced_packet_block_at_the_end(tmp_path: Path) -> None:
    # issue 11: 28-byte SHB + IDB + a 12-byte EPB (no room for its 20 bytes of fixed fields)
    p = tmp_path / "short.pcapng"
    head = _shb() + _idb(1)
    assert len(_shb()) == 28
    p.write_bytes(head + struct.pack("<III", 6, 12, 12))
    with pytest.raises(CaptureFileError) as err:
        _read_all(p)
    assert str(err.value) == (
        f"{p}: corrupt packet block at offset {len(head)}: block length 12 is shorter than the "
        "32 bytes of its fixed fields (type 0x6)"
    )


def _idb_offset(linktype: int, offset_s: int, tsresol: int = 6) -> bytes:
    opts = struct.pack("<HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
    opts += struct.pack("<HHq", 14, 8, offset_s) + struct.pack("<HH", 0, 0)
    return _block(1, struct.pack("<HHI", linktype, 0, 0) + opts)


def test_timestamps_outside_int64_ns_are_dropped_and_counted(tmp_path: Path) -> None:
    # if_tsoffset 1,700,000,000 s + 5 us; 2^62 s is beyond int64 ns (2^63 ns ~ 292 years);
    # -100 s before a 5 us stamp is before 1970; 2^64-1 s ticks with 10^0 resolution overflow
    data = _shb() + _idb_offset(1, 1_700_000_000) + _epb(0, 5, b"ok")
    data += _idb_offset(1, 1 << 62) + _epb(1, 5, b"far")
    data += _idb_offset(1, -100) + _epb(2, 5, b"before")
    data += _idb(1, 0) + _epb(3, (1 << 64) - 1, b"huge") + _epb(3, 9, b"nine s")
    p = tmp_path / "ts.pcapng"
    p.write_bytes(data)
    with PcapReader(str(p)) as r:
        got = [(f.ts_ns, bytes(f.data)) for b in r.batches() for f in b]
        assert r.timestamp_range == 3
    assert got == [(1_700_000_000_000_005_000, b"ok"), (9_000_000_000, b"nine s")]


def test_timestamps_going_backwards_are_kept_in_file_order(tmp_path: Path) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    for ts in (5_000_000_000, 1_000_000_000, 0, (2**32 - 1) * 1_000_000_000 + 999_999_999):
        w.write(ts, b"x")
    p = tmp_path / "back.pcap"
    p.write_bytes(buf.getvalue())
    assert [t for t, _, _ in _read_all(p)] == [
        5_000_000_000,
        1_000_000_000,
        0,
        4_294_967_295_999_999_999,  # the largest classic pcap time fits int64 ns
    ]


def test_file_shrinking_between_regions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import sip_otel.capture.pcapfile as pcapfile

    monkeypatch.setattr(pcapfile, "CHUNK", 1000)
    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    for i in range(50):
        w.write(i, b"r" * 84)  # 100-byte records after the 24-byte header
    p = tmp_path / "shrink.pcap"
    p.write_bytes(buf.getvalue())
    got = 0
    with PcapReader(str(p)) as r, pytest.raises(CaptureFileError) as err:
        for b in r.batches(2):
            got += len(b)
            if got == 2:
                os.truncate(p, 2_050)  # the reader holds bytes 0-999
    assert got == 20  # records ending at or before byte 2,050: (2050 - 24) // 100
    assert str(err.value) == (
        f"{p}: file shrank/truncated during replay at byte 2050 (it had 5024 bytes when opened)"
    )


def test_named_pipe_is_read_as_a_stream(tmp_path: Path) -> None:
    import os
    import threading

    buf = io.BytesIO()
    w = PcapWriter(buf, 1)
    for i in range(300):
        w.write(i, bytes([i % 256]) * 333)
    data = buf.getvalue()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "wb", buffering=0) as fh:
            for i in range(0, len(data), 4093):  # pieces that cut records anywhere
                fh.write(data[i : i + 4093])

    t = threading.Thread(target=writer)
    t.start()
    try:
        frames = [f for b in read_frames(str(fifo)) for f in b]
    finally:
        t.join(10)
    assert [(f.ts_ns, f.data) for f in frames] == [(i, bytes([i % 256]) * 333) for i in range(300)]

    t = threading.Thread(target=lambda: open(fifo, "wb").close())  # a writer that sends nothing
    t.start()
    try:
        with pytest.raises(CaptureFileError) as err:
            PcapReader(str(fifo))
    finally:
        t.join(10)
    assert str(err.value) == f"{fifo}: empty input, not a capture"


def test_unreadable_file(tmp_path: Path) -> None:
    import os

    p = tmp_path / "secret.pcap"
    p.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 20)
    p.chmod(0)
    if os.access(p, os.R_OK):  # root reads anything
        pytest.skip("running as root: permissions do not apply")
    with pytest.raises(CaptureFileError, match="cannot open: Permission denied"):
        PcapReader(str(p))


def test_truncated_and_odd_headers(tmp_path: Path) -> None:
    p = tmp_path / "h.pcap"
    p.write_bytes(b"\xd4\xc3")  # two bytes of a magic
    with pytest.raises(CaptureFileError, match=r"not a pcap or pcapng file \(magic d4c3\)"):
        PcapReader(str(p))
    # snaplen 0 (no limit declared) and an unknown link type: frames are read as they are (the
    # pipeline counts net.unsupported_linktype)
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 0, 9999)
    p.write_bytes(head + struct.pack("<IIII", 1, 2, 3, 3) + b"abc")
    assert _read_all(p) == [(1_000_002_000, 9999, b"abc")]
