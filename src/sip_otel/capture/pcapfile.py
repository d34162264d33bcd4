"""Capture files: classic pcap and pcapng, read into :class:`Frame` batches; pcap written.

Own reader rather than a library: dpkt (the maintained pure-Python option) hands timestamps out as
floats, which cannot hold nanoseconds at epoch scale (a double has ~0.24 us resolution there).
Python reads the file in regions of :data:`CHUNK` bytes and checks its magic; the records are
iterated in C over each region (``sip_otel/_c/so_pcap.c``, bound as
``sip_otel._core.PcapCursor``), which asks for the next region when a record runs past the end
of this one. Memory stays flat whatever the size of the file.

The file is read with ``read()``, never mapped: a mapped file that shrinks under the reader
(``truncate``, a rotated log) kills the process with SIGBUS, while ``read()`` just ends early --
reported as "file shrank/truncated during replay at byte N" when the file had been longer when
it was opened. ``-`` reads standard input and a named pipe is read as it comes; a
gzip-compressed capture (``.pcap.gz``, recognised by its magic, not its name) is decompressed as
it is read. Compressed data that ends early is reported after the frames decompressed before the
cut, as a truncated capture is.

Errors are :class:`CaptureFileError` with one human sentence (file name, offset, what is wrong);
the CLI prints it as one line. Frames read before a corruption are still delivered. A pcapng
frame whose time falls outside 0..INT64_MAX ns (an absurd if_tsresol or if_tsoffset) is
dropped and counted (``timestamp_range``; the pipeline counts it as ``pcap.timestamp_range``).
"""

from __future__ import annotations

import os
import stat
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from .._core import PcapCursor
from ..net.types import Frame

__all__ = ["BATCH", "CHUNK", "CaptureFileError", "PcapReader", "PcapWriter", "read_frames"]

BATCH = 1024  # frames per batch handed to the pipeline: amortises call overhead, bounds latency
CHUNK = 1 << 20  # bytes read per region (a record larger than this gets a region of its size)
# A record larger than this is corruption (tshark refuses records over 256 KiB).
MAX_RECORD = 256 * 1024 * 1024  # SO_PCAP_MAX_RECORD

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1",  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d",
}
_PCAPNG_SHB = 0x0A0D0D0A
_GZIP_MAGIC = b"\x1f\x8b"
_NEED = 3  # PcapCursor state: the next region is needed


class CaptureFileError(Exception):
    """The capture file is unreadable, truncated or corrupt (message is one line)."""


class _Raw:
    """Bytes of a file descriptor from an offset (``pread`` on a regular file, so that a second
    iteration can start over; ``read`` on a pipe). ``error``: the file was shorter at the end
    than when it was opened."""

    def __init__(self, fd: int, size: int | None, read: Callable[[int], bytes] | None) -> None:
        self._fd = fd
        self._size = size  # regular file: its size when opened
        self._read = read
        self.pos = 0
        self.error: str | None = None

    def read(self, n: int) -> bytes:
        try:
            if self._read is not None:
                data = self._read(n)
            elif self._size is None:
                data = os.read(self._fd, n)
            else:
                data = os.pread(self._fd, n, self.pos)
        except OSError as e:
            self.error = f"read error at byte {self.pos}: {e.strerror or e}"
            return b""
        self.pos += len(data)
        if not data and self._size is not None and self.pos < self._size:
            self.error = (
                f"file shrank/truncated during replay at byte {self.pos} "
                f"(it had {self._size} bytes when opened)"
            )
        return data


class _Gunzip:
    """The decompressed bytes of gzip members read from ``raw``; ``error`` once compressed data
    ended early or was corrupt (what came before stays delivered)."""

    def __init__(self, raw: _Raw, head: bytes) -> None:
        self._raw = raw
        self._pending = head  # compressed bytes read but not fed yet
        self._unzip = zlib.decompressobj(wbits=31)  # 31: with the gzip header and trailer
        self._fed = False  # the current member has had input
        self._done = False
        self.error: str | None = None

    def read(self, n: int) -> bytes:
        while not self._done:
            data = self._unzip.unconsumed_tail or self._pending
            self._pending = b""
            if not data:
                data = self._raw.read(CHUNK)
                if not data:
                    self._done = True
                    if self._fed and not self._unzip.eof and not self._raw.error:
                        self.error = "compressed data cut short"
                    break
            try:
                out = self._unzip.decompress(data, n)
            except zlib.error as exc:
                self.error = f"compressed data corrupt ({exc})"
                self._done = True
                break
            self._fed = True
            if self._unzip.eof:  # concatenated members (gzip -c a b > c) follow
                self._pending = self._unzip.unused_data
                self._unzip = zlib.decompressobj(wbits=31)
                self._fed = False
            if out:
                return out
        return b""


class _Stream:
    """One pass over the file: regions handed to a PcapCursor."""

    def __init__(self, raw: _Raw) -> None:
        self.raw = raw
        self.source: _Raw | _Gunzip = raw
        # the first region holds at least a classic pcap header (so_pcap_open checks it)
        head, self.eof = self._read(b"", max(CHUNK, 24))
        if head[:2] == _GZIP_MAGIC:
            self.source = _Gunzip(raw, head)
            head, self.eof = self._read(b"", max(CHUNK, 24))
        self.head = head

    @property
    def error(self) -> str | None:
        """Why the bytes ended early (the file shrank, compressed data cut or corrupt)."""
        return self.raw.error or (self.source.error if self.source is not self.raw else None)

    def _read(self, keep: bytes, want: int) -> tuple[bytes, bool]:
        parts = [keep]
        n = len(keep)
        while n < want:
            data = self.source.read(want - n)
            if not data:
                return b"".join(parts), True
            parts.append(data)
            n += len(data)
        return b"".join(parts), False

    def refill(self, cursor: PcapCursor, region: bytes) -> bytes:
        """The cursor asked for the next region: the rest of this one plus what follows."""
        keep = region[cursor.region_offset :]
        region, self.eof = self._read(keep, max(cursor.need, CHUNK))
        cursor.refill(region, cursor.offset, self.eof)
        return region


class PcapReader:
    """Iterate a pcap or pcapng file as batches of frames (``list[Frame]``).

    ``progress`` is the byte offset reached in the (decompressed) capture, for progress display;
    ``size`` the file's size when that is known and means the same (a regular uncompressed
    file), else 0.
    """

    def __init__(self, path: str) -> None:
        self.path = "stdin" if path == "-" else path
        self.progress = 0
        self.size = 0
        self._closed = False
        self._owns_fd = True
        path = self.path
        size: int | None = None
        read: Callable[[int], bytes] | None = None
        if self.path == "stdin":
            self._fd = -1
            self._owns_fd = False
            if sys.stdin is None:  # started with standard input closed
                raise CaptureFileError("stdin: standard input is closed")
            stdin = sys.stdin.buffer
            read = getattr(stdin, "read1", stdin.read)
        else:
            try:
                self._fd = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise CaptureFileError(f"{path}: cannot open: {e.strerror}") from None
            st = os.fstat(self._fd)
            if stat.S_ISDIR(st.st_mode):
                os.close(self._fd)
                raise CaptureFileError(f"{path}: not a regular file (a directory)")
            if stat.S_ISREG(st.st_mode):
                size = st.st_size
        self._file_size = size
        self._read = read
        self._stream: _Stream | None = _Stream(_Raw(self._fd, size, read))
        stream = self._stream
        if stream.source is stream.raw and size is not None:
            self.size = size
        head = stream.head
        self._cursors: list[PcapCursor] = []  # each holds a region: released before closing
        self._feed: tuple[PcapCursor, _Stream, list[bytes]] | None = None
        self.timestamp_range = 0  # frames dropped: time outside 0..INT64_MAX ns
        if not head:
            self.close()
            if stream.error:
                raise CaptureFileError(f"{path}: {stream.error}")
            what = "empty input" if size is None else "empty file"
            raise CaptureFileError(f"{path}: {what}, not a capture")
        magic = head[:4]
        if magic in _PCAP_MAGICS:
            self.format = "pcap"
        elif len(magic) == 4 and struct.unpack("<I", magic)[0] == _PCAPNG_SHB:
            self.format = "pcapng"
        else:
            self.close()
            if stream.error and len(magic) < 4:
                raise CaptureFileError(f"{path}: {stream.error}")
            raise CaptureFileError(f"{path}: not a pcap or pcapng file (magic {magic.hex()})")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for cursor in self._cursors:
            cursor.release()
        if self._owns_fd:
            os.close(self._fd)

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> tuple[PcapCursor, _Stream, list[bytes]]:
        """A cursor over the first region of a pass (the one read at open, else a new pass)."""
        stream = self._stream
        self._stream = None
        if stream is None:
            if self._file_size is None:
                raise CaptureFileError(f"{self.path}: a stream cannot be read twice")
            stream = _Stream(_Raw(self._fd, self._file_size, self._read))
        cursor = PcapCursor(stream.head, stream.eof)
        self._cursors.append(cursor)
        return cursor, stream, [stream.head]

    def _error(self, cursor: PcapCursor, stream: _Stream) -> CaptureFileError:
        progress = cursor.error_progress
        if progress is not None:
            self.progress = progress
        # A source that ended early (the file shrank, compressed data cut) explains a record
        # cut in the middle.
        if stream.error:
            return CaptureFileError(f"{self.path}: {stream.error}")
        return CaptureFileError(cursor.error_text(self.path))

    def batches(self, batch: int = BATCH) -> Iterator[list[Frame]]:
        """Frames in file order, ``batch`` at a time; a corruption raises CaptureFileError
        after the frames before it."""
        return self._batches(batch)

    def _batches(self, batch: int) -> Iterator[list[Frame]]:
        cursor, stream, region = self._start()
        while True:
            frames = cursor.next_batch(batch)
            state = cursor.state
            more = self._advance(cursor, stream, region, state)
            if frames:
                yield frames
            if not more:
                self._end(cursor, stream, state)
                return

    def feed(self, pipeline: Any, max_frames: int) -> bool:
        """Hand up to ``max_frames`` frames straight to a compiled pipeline
        (``_core.PipelineCore.feed_pcap``: no Python object per frame); False once the whole
        file was read. A corruption raises CaptureFileError after the frames before it."""
        if self._feed is None:
            self._feed = self._start()
        cursor, stream, region = self._feed
        state = pipeline.feed_pcap(cursor, max_frames)
        if self._advance(cursor, stream, region, state):
            return True
        self._end(cursor, stream, state)
        return False

    def _advance(
        self, cursor: PcapCursor, stream: _Stream, region: list[bytes], state: int
    ) -> bool:
        """The cursor stopped in ``state``: give it the next region if it needs one, note the
        progress; True while there is more to read."""
        self.timestamp_range = cursor.timestamp_range
        if state == _NEED:
            region[0] = stream.refill(cursor, region[0])
        if state in (0, _NEED, 1):
            self.progress = cursor.offset
        return state in (0, _NEED)

    def _end(self, cursor: PcapCursor, stream: _Stream, state: int) -> None:
        """A pass stopped in ``state``: raise CaptureFileError unless the file ended cleanly
        (called after the frames read before the stop were handed on)."""
        if state != 1:
            raise self._error(cursor, stream)
        if stream.error:
            raise CaptureFileError(f"{self.path}: {stream.error}")


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
