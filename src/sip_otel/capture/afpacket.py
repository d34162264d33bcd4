"""Fallback capture: AF_PACKET + classic BPF filter + PACKET_MMAP (TPACKET_V3) ring.

Used when bcc cannot compile or load the eBPF filter (no kernel headers, no CAP_BPF, old
kernel). Needs only CAP_NET_RAW. The classic filter (:func:`build_filter`) keeps what the eBPF one
keeps: Ethernet with up to two inline 802.1Q/802.1ad tags, IPv4 fragments, UDP/TCP with a SIP
source or destination port, over IPv4 or IPv6 (IPv6 extension headers other than the fragment
header are not walked here), and drops the outgoing copy on loopback.

Ring: blocks of :data:`BLOCK_SIZE` bytes; the kernel fills a block with packets and hands it over
(``TP_STATUS_USER``) when full or after :data:`BLOCK_TIMEOUT_MS`; the compiled core
(``_c/so_ring.c``) reads every packet and gives the block back (``TP_STATUS_KERNEL``). Each
packet: ``tpacket3_hdr`` (timestamp in CLOCK_REALTIME, snaplen, wire len, MAC offset, VLAN
metadata) then ``sockaddr_ll`` (ifindex, pkttype).
Drops come from ``PACKET_STATISTICS`` (reading it resets the kernel counter: we accumulate).
"""

from __future__ import annotations

import mmap
import select
import socket
import struct
from collections.abc import Sequence
from typing import Any

from sip_otel import _core
from sip_otel.capture.base import (
    DEFAULT_BATCH,
    SO_ATTACH_FILTER,
    CaptureError,
    Interface,
    loopback_ifindex,
    open_packet_socket,
)
from sip_otel.net.types import Frame

__all__ = ["AfPacketCapture", "Insn", "build_filter"]

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2

# A block must hold the largest packet (64 KiB on loopback) plus headers: 128 KiB. Not larger: a
# block is handed over when full *or* at the timeout, so at modest rates each block carries only
# a timeout's worth of packets and the ring buffers (ring bytes / BLOCK_SIZE) x timeout of time.
# With 1 MiB blocks a 16 MiB ring held only 160 ms and dropped under a 1,500 calls/s SIPp load.
BLOCK_SIZE = 128 << 10
# Latency bound for a partly filled block (and, with the ring size, the stall it absorbs:
# 16 MiB = 128 blocks x 20 ms = 2.5 s at low rates).
BLOCK_TIMEOUT_MS = 20
SNAPLEN = 0x40000  # cBPF accept length: whole packets (above the 64 KiB IP maximum)

_STATS = struct.Struct("<III")  # tpacket_stats_v3: packets, drops, freeze_q_cnt

# --- classic BPF -------------------------------------------------------------------------------
# opcodes (linux/filter.h)
_LD_W_ABS, _LD_H_ABS, _LD_B_ABS = 0x20, 0x28, 0x30
_LD_H_IND, _LD_B_IND = 0x48, 0x50
_LDX_IMM = 0x01
_ALU_AND_K, _ALU_LSH_K, _ALU_ADD_X, _ALU_ADD_K = 0x54, 0x64, 0x0C, 0x04
_TAX, _TXA = 0x07, 0x87
_JA, _JEQ_K, _JSET_K = 0x05, 0x15, 0x45
_RET_K = 0x06
_SKF_AD_OFF = -0x1000
_SKF_AD_PKTTYPE = 4
_SKF_AD_IFINDEX = 8

Insn = tuple[int, int, int, int]  # code, jt, jf, k


class _Asm:
    """Tiny assembler: jumps name labels; offsets are resolved (and range-checked) at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | int, str | int, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def op(self, code: int, k: int = 0) -> None:
        self.code.append((code, 0, 0, k))

    def jmp(self, code: int, k: int, jt: str | int, jf: str | int = 0) -> None:
        self.code.append((code, jt, jf, k))

    def assemble(self) -> list[Insn]:
        out: list[Insn] = []
        for pc, (code, jt, jf, k) in enumerate(self.code):

            def rel(target: str | int, pc: int = pc) -> int:
                if isinstance(target, int):
                    return target
                off = self.labels[target] - pc - 1
                if not 0 <= off <= 255:
                    raise ValueError(f"cBPF jump to {target} out of range ({off})")
                return off

            if code == _JA and isinstance(jt, str):
                out.append((code, 0, 0, rel(jt)))
            else:
                out.append((code, rel(jt), rel(jf), k & 0xFFFFFFFF))
        return out


def build_filter(ports: frozenset[int], lo_ifindex: int, all_ports: bool = False) -> list[Insn]:
    """Classic BPF program equivalent to bpf/sip_filter.c (see the module docstring)."""
    a = _Asm()
    # Loopback: drop the outgoing copy.
    a.op(_LD_W_ABS, _SKF_AD_OFF + _SKF_AD_PKTTYPE)
    a.jmp(_JEQ_K, 4, 0, "l2")
    a.op(_LD_W_ABS, _SKF_AD_OFF + _SKF_AD_IFINDEX)
    a.jmp(_JEQ_K, lo_ifindex, "drop", 0)
    # L2: A = ethertype, X = offset of the L3 header.
    a.label("l2")
    a.op(_LD_H_ABS, 12)
    a.op(_LDX_IMM, 14)
    a.jmp(_JEQ_K, 0x8100, "tag1", 0)
    a.jmp(_JEQ_K, 0x88A8, "tag1", "net")
    a.label("tag1")
    a.op(_LD_H_ABS, 16)
    a.op(_LDX_IMM, 18)
    a.jmp(_JEQ_K, 0x8100, "tag2", 0)
    a.jmp(_JEQ_K, 0x88A8, "tag2", "net")
    a.label("tag2")
    a.op(_LD_H_ABS, 20)
    a.op(_LDX_IMM, 22)
    a.label("net")
    a.jmp(_JEQ_K, 0x0800, "ip4", 0)
    a.jmp(_JEQ_K, 0x86DD, "ip6", "drop")
    # IPv4: every fragment passes; else X += IHL * 4.
    a.label("ip4")
    a.op(_LD_H_IND, 6)
    a.jmp(_JSET_K, 0x3FFF, "keep", 0)
    a.op(_LD_B_IND, 9)
    a.jmp(_JEQ_K, 17, "ip4l4", 0)
    a.jmp(_JEQ_K, 6, "ip4l4", "drop")
    a.label("ip4l4")
    a.op(_LD_B_IND, 0)
    a.op(_ALU_AND_K, 0x0F)
    a.op(_ALU_LSH_K, 2)
    a.op(_ALU_ADD_X)
    a.op(_TAX)
    a.jmp(_JA, 0, "ports")
    # IPv6: fragment header -> pass; UDP/TCP right after the fixed header -> ports.
    a.label("ip6")
    a.op(_LD_B_IND, 6)
    a.jmp(_JEQ_K, 44, "keep", 0)
    a.jmp(_JEQ_K, 17, "ip6l4", 0)
    a.jmp(_JEQ_K, 6, "ip6l4", "drop")
    a.label("ip6l4")
    a.op(_TXA)
    a.op(_ALU_ADD_K, 40)
    a.op(_TAX)
    a.label("ports")
    if all_ports:
        a.jmp(_JA, 0, "keep")
    else:
        for field in (0, 2):
            a.op(_LD_H_IND, field)
            for port in sorted(ports):
                a.jmp(_JEQ_K, port, "keep", 0)
    a.label("drop")
    a.op(_RET_K, 0)
    a.label("keep")
    a.op(_RET_K, SNAPLEN)
    return a.assemble()


def attach_filter(sock: socket.socket, prog: Sequence[Insn]) -> None:
    """SO_ATTACH_FILTER with a ``struct sock_fprog`` built in a ctypes buffer."""
    import ctypes

    raw = b"".join(struct.pack("=HBBI", *insn) for insn in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class _Ring:
    """One socket's TPACKET_V3 receive ring."""

    def __init__(self, sock: socket.socket, ring_bytes: int) -> None:
        self.sock = sock
        self.nblocks = max(2, ring_bytes // BLOCK_SIZE)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        req = struct.pack(
            "IIIIIII",
            BLOCK_SIZE,
            self.nblocks,
            2048,
            BLOCK_SIZE // 2048 * self.nblocks,
            BLOCK_TIMEOUT_MS,
            0,
            0,
        )
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        self.map = mmap.mmap(
            sock.fileno(),
            BLOCK_SIZE * self.nblocks,
            mmap.MAP_SHARED,
            mmap.PROT_READ | mmap.PROT_WRITE,
        )
        # The compiled core walks the blocks (_c/so_ring.c): packets go to the pipeline without a
        # Python object each; blocks go back to the kernel once read.
        self.cursor = _core.TpacketCursor(self.map, BLOCK_SIZE, self.nblocks)
        self.drops = 0

    def poll_drops(self) -> int:
        _pk, drops, _fz = _STATS.unpack(
            self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        )
        self.drops += drops
        return self.drops

    def close(self) -> None:
        self.cursor.release()
        self.map.close()
        self.sock.close()


class AfPacketCapture:
    """One TPACKET_V3 socket per interface (or one unbound for all), polled through epoll."""

    path = "afpacket"

    def __init__(
        self,
        interfaces: Sequence[Interface],
        ports: frozenset[int],
        ring_bytes: int,
        all_ports: bool = False,
    ) -> None:
        self._rings: list[_Ring] = []
        self._names: dict[str, tuple[int, _Ring | None]] = {}
        self._closed_drops = 0  # drops of rings closed by relink (the counter never goes back)
        self._epoll = select.epoll()
        self._prog = build_filter(ports, loopback_ifindex(), all_ports)
        self._ring_bytes = ring_bytes // len(interfaces)
        try:
            for iface in interfaces:
                self._names[iface.name] = (iface.ifindex, self._open(iface))
        except CaptureError:
            self.close()
            raise

    def _open(self, iface: Interface) -> _Ring:
        sock = open_packet_socket(iface)
        try:
            attach_filter(sock, self._prog)
            ring = _Ring(sock, self._ring_bytes)
        except OSError as exc:
            sock.close()
            raise CaptureError(f"AF_PACKET ring setup failed: {exc}") from None
        except BaseException:
            sock.close()
            raise
        self._rings.append(ring)
        self._epoll.register(sock.fileno(), select.EPOLLIN)
        return ring

    def interfaces(self) -> dict[str, int]:
        """Named interfaces -> the ifindex captured now (0: gone); {} for "all interfaces"."""
        return {name: ifindex for name, (ifindex, _r) in self._names.items() if name}

    def relink(self, name: str, ifindex: int) -> None:
        """Interface ``name`` now has ``ifindex`` (0: it is gone): close its old socket and
        ring (what is still in it is lost: read first) and open new ones."""
        if name not in self._names:
            return
        old_index, old = self._names[name]
        if old is not None and old_index == ifindex:
            return
        if old is not None:
            self._epoll.unregister(old.sock.fileno())
            self._rings.remove(old)
            try:
                self._closed_drops += old.poll_drops()
            except OSError:
                self._closed_drops += old.drops
            old.close()
        self._names[name] = (0, None)
        if ifindex:
            self._names[name] = (ifindex, self._open(Interface(name, ifindex)))

    def fileno(self) -> int:
        return self._epoll.fileno()

    def read(self, max_frames: int = DEFAULT_BATCH) -> list[Frame]:
        """Waiting packets as Frame tuples (tests, tools; the agent uses :meth:`feed`)."""
        frames: list[Frame] = []
        for ring in self._rings:
            frames += ring.cursor.read(max(0, max_frames - len(frames)))
        return frames

    def feed(self, pipeline: Any, max_frames: int) -> int:
        """Hand up to ``max_frames`` waiting packets to the pipeline; returns how many."""
        n = 0
        for ring in self._rings:
            n += int(pipeline.feed_tpacket(ring.cursor, max(0, max_frames - n)))
        return n

    def clear_errors(self) -> None:
        """The kernel sets ENETDOWN on a socket whose interface goes down; until it is read the
        socket polls EPOLLERR (level-triggered), which would wake the agent in a busy loop."""
        for ring in self._rings:
            ring.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def drops(self) -> int:
        return self._closed_drops + sum(ring.poll_drops() for ring in self._rings)

    def drop_reasons(self) -> dict[str, int]:
        """TPACKET_V3 drops are packets the kernel found no room for in the ring."""
        return {"ring_full": self.drops()}

    def counters(self) -> dict[str, int]:
        return {"drops": self.drops()}

    def close(self) -> None:
        for ring in self._rings:
            ring.close()
        self._rings.clear()
        self._names.clear()
        self._epoll.close()
