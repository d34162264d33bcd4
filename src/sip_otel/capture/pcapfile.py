"""Capture files: classic pcap and pcapng, read into :class:`Frame` batches; pcap written.

Own reader rather than a library: dpkt (the maintained pure-Python option) hands timestamps out as
floats, which cannot hold nanoseconds at epoch scale (a double has ~0.24 us resolution there).
Python opens and maps the file and checks its magic; the records are iterated in C over the
``mmap`` (``sip_otel/_c/so_pcap.c``, bound as ``sip_otel._core.PcapCursor``).

Errors are :class:`CaptureFileError` with one human sentence (file name, offset, what is wrong);
the CLI prints it as one line. Frames read before a corruption are still delivered.

``-`` reads standard input; a gzip-compressed capture (``.pcap.gz``, recognised by its magic, not
its name) is decompressed. Both, and pipes, are first copied into an unlinked temporary file
(``$TMPDIR``) that is then mapped like any capture: memory stays flat whatever the size, at the
cost of that much temporary disk. Compressed data that ends early is reported after the frames
decompressed before the cut, as a truncated capture is.
"""

from __future__ import annotations

import mmap
import os
import shutil
import stat
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from .._core import PcapCursor
from ..net.types import Frame

__all__ = ["BATCH", "CaptureFileError", "PcapReader", "PcapWriter", "read_frames"]

BATCH = 1024  # frames per batch handed to the pipeline: amortises call overhead, bounds latency
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
SPOOL_CHUNK = 1 << 20  # bytes per copy step into the temporary file


def _gunzip(src: BinaryIO, dst: BinaryIO) -> str | None:
    """Decompress the gzip members of ``src`` into ``dst`` chunk by chunk, keeping everything
    before a cut or a corruption; returns the error that ended it early, or None."""
    unzip = zlib.decompressobj(wbits=31)  # 31: with the gzip header and trailer
    fed = False  # the current member has had input
    while data := src.read(SPOOL_CHUNK):
        try:
            while data:
                dst.write(unzip.decompress(data))
                fed = True
                if not unzip.eof:
                    break
                data = unzip.unused_data  # concatenated members (gzip -c a b > c) follow
                unzip = zlib.decompressobj(wbits=31)
                fed = False
        except zlib.error as exc:
            return f"compressed data corrupt ({exc})"
    if fed and not unzip.eof:
        return "compressed data cut short"
    return None


def _spool(src: BinaryIO, gunzip: bool = False) -> tuple[int, str | None]:
    """Copy (or decompress) ``src`` into an unlinked temporary file: (its descriptor, the error
    that ended the copy early or None). What came before an error stays in the file."""
    with tempfile.TemporaryFile(prefix="sip-otel-replay-") as tmp:
        error = None
        if gunzip:
            error = _gunzip(src, tmp)
        else:
            shutil.copyfileobj(src, tmp, SPOOL_CHUNK)
        tmp.flush()
        tmp.seek(0)  # the descriptor shares this offset: a reader starts at the beginning
        return os.dup(tmp.fileno()), error


# Granularity of giving read pages back during a replay (a multiple of any page size).
_DROP_STEP = 4 << 20


class CaptureFileError(Exception):
    """The capture file is unreadable, truncated or corrupt (message is one line)."""


class PcapReader:
    """Iterate a pcap or pcapng file as batches of frames (``list[Frame]``).

    ``progress`` is the byte offset reached, for progress display.
    """

    def __init__(self, path: str) -> None:
        self.path = "stdin" if path == "-" else path
        self.progress = 0
        # Set when the source ended in an error after the data spooled so far: raised once
        # those frames have been delivered.
        self._trailing_error: str | None = None
        path = self.path
        if self.path == "stdin":
            try:
                self._fd, _ = _spool(sys.stdin.buffer)
            except OSError as e:
                raise CaptureFileError(f"stdin: cannot read: {e.strerror or e}") from None
        else:
            try:
                self._fd = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise CaptureFileError(f"{path}: cannot open: {e.strerror}") from None
            st = os.fstat(self._fd)
            if stat.S_ISDIR(st.st_mode):
                os.close(self._fd)
                raise CaptureFileError(f"{path}: not a regular file (a directory)")
            if not stat.S_ISREG(st.st_mode):  # a pipe or device: spool it
                with os.fdopen(self._fd, "rb") as src:
                    self._fd, _ = _spool(src)
        if os.pread(self._fd, 2, 0) == _GZIP_MAGIC:
            with os.fdopen(self._fd, "rb") as raw:
                self._fd, error = _spool(raw, gunzip=True)
            if error:
                self._trailing_error = f"{path}: {error}"
        st = os.fstat(self._fd)
        self.size = st.st_size
        if self.size == 0:
            os.close(self._fd)
            if self._trailing_error:
                raise CaptureFileError(self._trailing_error)
            raise CaptureFileError(f"{path}: empty file, not a capture")
        try:
            self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        except OSError as e:
            os.close(self._fd)
            raise CaptureFileError(f"{path}: cannot map the file: {e.strerror}") from None
        self._cursors: list[PcapCursor] = []  # each holds the map: released before it closes
        self._feed_cursor: PcapCursor | None = None
        self._dropped = 0  # bytes at the front already given back (madvise)
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
            for cursor in self._cursors:
                cursor.release()
            self._map.close()
        finally:
            os.close(self._fd)

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(self, batch: int = BATCH) -> Iterator[list[Frame]]:
        """Frames in file order, ``batch`` at a time; a corruption raises CaptureFileError
        after the frames before it."""
        return self._batches(batch)

    def _batches(self, batch: int) -> Iterator[list[Frame]]:
        cursor = PcapCursor(self._map)
        self._cursors.append(cursor)
        while True:
            frames = cursor.next_batch(batch)
            state = cursor.state
            if state == 0:  # more to come
                self.progress = cursor.offset
                yield frames
                continue
            if state == 1:  # end of file
                self.progress = self.size
                if frames:
                    yield frames
                if self._trailing_error:
                    raise CaptureFileError(self._trailing_error)
                return
            progress = cursor.error_progress
            if progress is not None:
                self.progress = progress
            if frames:
                yield frames
            raise CaptureFileError(self._trailing_error or cursor.error_text(self.path))

    def feed(self, pipeline: Any, max_frames: int) -> bool:
        """Hand up to ``max_frames`` frames straight to a compiled pipeline
        (``_core.PipelineCore.feed_pcap``: no Python object per frame); False once the whole
        file was read. A corruption raises CaptureFileError after the frames before it."""
        if self._feed_cursor is None:
            self._feed_cursor = PcapCursor(self._map)
            self._cursors.append(self._feed_cursor)
        cursor = self._feed_cursor
        state = pipeline.feed_pcap(cursor, max_frames)
        self._drop_read_pages(cursor.offset)
        if state == 0:
            self.progress = cursor.offset
            return True
        if state == 1:
            self.progress = self.size
            if self._trailing_error:
                raise CaptureFileError(self._trailing_error)
            return False
        progress = cursor.error_progress
        if progress is not None:
            self.progress = progress
        # A decompression that stopped early explains a record cut in the middle.
        raise CaptureFileError(self._trailing_error or cursor.error_text(self.path))

    def _drop_read_pages(self, offset: int) -> None:
        """Unmap the pages behind the reader: a replay's resident memory stays flat instead of
        growing with the file (the page cache still holds them for the next run)."""
        end = offset - offset % _DROP_STEP
        if end > self._dropped and hasattr(mmap, "MADV_DONTNEED"):
            try:
                self._map.madvise(mmap.MADV_DONTNEED, self._dropped, end - self._dropped)
            except (OSError, ValueError):
                return
            self._dropped = end


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
