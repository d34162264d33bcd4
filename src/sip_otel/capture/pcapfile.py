"""Capture files: classic pcap and pcapng, read into :class:`Frame` batches; pcap written.

Own reader rather than a library: dpkt (the maintained pure-Python option) hands timestamps out as
floats, which cannot hold nanoseconds at epoch scale (a double has ~0.24 us resolution there), and
our reader over an ``mmap`` with ``struct.unpack_from`` is faster (figures in README.md).

Errors are :class:`CaptureFileError` with one human sentence (file name, offset, what is wrong);
the CLI prints it as one line. Frames read before a corruption are still delivered.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Iterator
from typing import BinaryIO

from ..net.types import Frame

__all__ = ["BATCH", "CaptureFileError", "PcapReader", "PcapWriter", "read_frames"]

BATCH = 1024  # frames per batch handed to the pipeline: amortises call overhead, bounds latency
# A record larger than this is corruption (tshark refuses records over 256 KiB).
MAX_RECORD = 256 * 1024 * 1024

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
_PCAPNG_SHB = 0x0A0D0D0A
_BOM = 0x1A2B3C4D


class CaptureFileError(Exception):
    """The capture file is unreadable, truncated or corrupt (message is one line)."""


class PcapReader:
    """Iterate a pcap or pcapng file as batches of frames (``list[Frame]``).

    ``progress`` is the byte offset reached, for progress display.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.progress = 0
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise CaptureFileError(f"{path}: cannot open: {e.strerror}") from None
        st = os.fstat(self._fd)
        self.size = st.st_size
        if not stat.S_ISREG(st.st_mode):
            os.close(self._fd)
            raise CaptureFileError(f"{path}: not a regular file (a directory, device or pipe)")
        if self.size == 0:
            os.close(self._fd)
            raise CaptureFileError(f"{path}: empty file, not a capture")
        try:
            self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        except OSError as e:
            os.close(self._fd)
            raise CaptureFileError(f"{path}: cannot map the file: {e.strerror}") from None
        head = self._map[:4]
        if head in _PCAP_MAGICS:
            self.format = "pcap"
        elif len(head) == 4 and struct.unpack("<I", head)[0] == _PCAPNG_SHB:
            self.format = "pcapng"
        else:
            self.close()
            raise CaptureFileError(
                f"{path}: not a pcap or pcapng file (magic {head.hex() or 'missing'})"
            )

    def close(self) -> None:
        try:
            self._map.close()
        finally:
            os.close(self._fd)

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(self, batch: int = BATCH) -> Iterator[list[Frame]]:
        if self.format == "pcap":
            return self._pcap(batch)
        return self._pcapng(batch)

    # -- classic pcap -----------------------------------------------------------------------
    def _pcap(self, batch: int) -> Iterator[list[Frame]]:
        buf = self._map
        size = self.size
        path = self.path
        if size < 24:
            raise CaptureFileError(f"{path}: truncated pcap file header ({size} of 24 bytes)")
        endian, mult = _PCAP_MAGICS[bytes(buf[:4])]
        _vmaj, _vmin, _tz, _sig, snaplen, network = struct.unpack_from(endian + "HHiIII", buf, 4)
        linktype = network & 0x0FFFFFFF  # upper bits: FCS length flags
        rec = struct.Struct(endian + "IIII")
        unpack = rec.unpack_from
        off = 24
        out: list[Frame] = []
        append = out.append
        while off < size:
            if off + 16 > size:
                self.progress = off
                if out:
                    yield out
                raise CaptureFileError(
                    f"{path}: truncated record header at offset {off} "
                    f"({size - off} of 16 bytes); the file was cut short"
                )
            sec, frac, caplen, _wirelen = unpack(buf, off)
            if caplen > MAX_RECORD or (snaplen and caplen > max(snaplen, 262144)):
                self.progress = off
                if out:
                    yield out
                raise CaptureFileError(
                    f"{path}: corrupt record at offset {off}: captured length {caplen} "
                    f"exceeds the snapshot length {snaplen}"
                )
            start = off + 16
            off = start + caplen
            if off > size:
                self.progress = size
                if out:
                    yield out
                raise CaptureFileError(
                    f"{path}: truncated packet at offset {start - 16} "
                    f"({size - start} of {caplen} bytes); the file was cut short"
                )
            append(Frame(sec * 1_000_000_000 + frac * mult, linktype, buf[start:off]))
            if len(out) >= batch:
                self.progress = off
                yield out
                out = []
                append = out.append
        self.progress = size
        if out:
            yield out

    # -- pcapng -----------------------------------------------------------------------------
    def _pcapng(self, batch: int) -> Iterator[list[Frame]]:
        buf = self._map
        size = self.size
        path = self.path
        off = 0
        endian = "<"
        # per interface: (linktype, multiplier numerator, divisor) -> ns = ts * num // div
        ifaces: list[tuple[int, int, int]] = []
        out: list[Frame] = []
        while off < size:
            if off + 12 > size:
                break_msg = f"truncated block header at offset {off}; the file was cut short"
                if out:
                    yield out
                raise CaptureFileError(f"{path}: {break_msg}")
            btype = struct.unpack_from("<I", buf, off)[0]
            if btype == _PCAPNG_SHB:
                bom = struct.unpack_from("<I", buf, off + 8)[0]
                if bom == _BOM:
                    endian = "<"
                elif bom == 0x4D3C2B1A:
                    endian = ">"
                else:
                    if out:
                        yield out
                    raise CaptureFileError(f"{path}: bad byte-order magic at offset {off}")
                ifaces = []  # interface ids restart per section
            else:
                btype = struct.unpack_from(endian + "I", buf, off)[0]
            blen = struct.unpack_from(endian + "I", buf, off + 4)[0]
            if blen < 12 or blen % 4 or off + blen > size:
                if out:
                    yield out
                what = "cut short" if off + blen > size and blen >= 12 else "corrupt"
                raise CaptureFileError(
                    f"{path}: {what} block at offset {off} (type {btype:#x}, length {blen})"
                )
            body = off + 8
            end = off + blen - 4
            if btype == 6:  # Enhanced Packet Block
                if_id, ts_hi, ts_lo, caplen, _orig = struct.unpack_from(endian + "IIIII", buf, body)
                if if_id >= len(ifaces) or body + 20 + caplen > end:
                    if out:
                        yield out
                    raise CaptureFileError(
                        f"{path}: corrupt packet block at offset {off} (interface {if_id}, "
                        f"captured length {caplen})"
                    )
                lt, num, div = ifaces[if_id]
                ts = ((ts_hi << 32) | ts_lo) * num // div
                out.append(Frame(ts, lt, buf[body + 20 : body + 20 + caplen], if_id))
            elif btype == 3:  # Simple Packet Block: no timestamp, interface 0
                if not ifaces:
                    if out:
                        yield out
                    raise CaptureFileError(f"{path}: packet block before any interface at {off}")
                orig = struct.unpack_from(endian + "I", buf, body)[0]
                caplen = min(orig, end - body - 4)
                out.append(Frame(0, ifaces[0][0], buf[body + 4 : body + 4 + caplen]))
            elif btype == 2:  # obsolete Packet Block
                if_id, _drops, ts_hi, ts_lo, caplen, _orig = struct.unpack_from(
                    endian + "HHIIII", buf, body
                )
                if if_id >= len(ifaces) or body + 20 + caplen > end:
                    if out:
                        yield out
                    raise CaptureFileError(f"{path}: corrupt packet block at offset {off}")
                lt, num, div = ifaces[if_id]
                ts = ((ts_hi << 32) | ts_lo) * num // div
                out.append(Frame(ts, lt, buf[body + 20 : body + 20 + caplen], if_id))
            elif btype == 1:  # Interface Description Block
                lt = struct.unpack_from(endian + "H", buf, body)[0]
                ifaces.append((lt, *_tsresol(buf, body + 8, end, endian)))
            off += blen
            if len(out) >= batch:
                self.progress = off
                yield out
                out = []
        self.progress = size
        if out:
            yield out


def _tsresol(buf: mmap.mmap, opt: int, end: int, endian: str) -> tuple[int, int]:
    """if_tsresol option -> (numerator, divisor) turning a timestamp into ns (default us)."""
    while opt + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, opt)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = buf[opt + 4]
            exp = v & 0x7F
            if v & 0x80:  # power of two
                return 1_000_000_000, 1 << exp
            if exp <= 9:
                return 10 ** (9 - exp), 1
            return 1, 10 ** (exp - 9)
        opt += 4 + ((length + 3) & ~3)
    return 1000, 1


def read_frames(path: str, batch: int = BATCH) -> Iterator[list[Frame]]:
    """Convenience: batches of frames from a file (closes it at the end)."""
    with PcapReader(path) as reader:
        yield from reader.batches(batch)


class PcapWriter:
    """Write a classic pcap with nanosecond timestamps (magic a1b23c4d)."""

    def __init__(self, fh: BinaryIO, linktype: int, snaplen: int = 262144) -> None:
        self._fh = fh
        self._rec = struct.Struct("<IIII")
        fh.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts_ns: int, data: bytes) -> None:
        sec, ns = divmod(ts_ns, 1_000_000_000)
        self._fh.write(self._rec.pack(sec, ns, len(data), len(data)))
        self._fh.write(data)
