"""Drop every Nth RTP packet on a veth's egress: a tc classifier loaded with bcc (test tooling).

    unshare -m python tc_drop.py NETNS DEV --every N [--offset K] [--ports LO-HI]

The program (clsact egress, direct action) looks at IPv4 UDP packets (unfragmented, destination
port in LO..HI) whose payload is RTP: version 2, at least 12 bytes, and a second byte outside
200..207 (RTCP SR/RR/SDES/BYE/APP/RTPFB/PSFB/XR as RFC 5761 4 tells them apart: payload type
72..79 with the marker bit). Per stream (addresses, ports, SSRC) it numbers the packets 1, 2, ...
and drops number i when (i + K) % N == 0 -- N=20, K=0 drops the 20th, 40th, ...; K=10 the 10th,
30th, ... It counts, per stream, packets seen and dropped, and in total: UDP packets looked at,
RTP packets seen, dropped, RTCP packets passed, other UDP passed.

Like vlan_tc.py, the program is pinned in a bpffs mounted in this process's private mount
namespace (hence ``unshare -m``) just long enough for ``tc ... object-pinned`` to attach it; the
filter keeps it alive. This process then stays up holding the maps: it prints ``ready``, answers
each line on stdin with one JSON line of counts, and exits at EOF (the filter stays until the
namespace is deleted). :class:`TcDropper` drives it from a test.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

TEXT = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>

struct skey {
    u32 saddr;
    u32 daddr;
    u16 sport;
    u16 dport;
    u32 ssrc;
};
struct sval {
    u64 seen;
    u64 dropped;
};
BPF_HASH(streams, struct skey, struct sval, 4096);
/* 0 UDP looked at, 1 RTP seen, 2 RTP dropped, 3 RTCP passed, 4 other UDP passed */
BPF_PERCPU_ARRAY(totals, u64, 5);

static __always_inline void count(u32 i) {
    u64 *v = totals.lookup(&i);
    if (v)
        *v += 1;
}

int drop_nth(struct __sk_buff *skb) {
    u8 ip[20];
    u8 udp[8];
    u8 rtp[12];
    u16 proto = skb->protocol;
    if (proto != htons(ETH_P_IP))
        return TC_ACT_OK;
    if (bpf_skb_load_bytes(skb, ETH_HLEN, ip, sizeof(ip)) < 0)
        return TC_ACT_OK;
    if ((ip[0] >> 4) != 4 || ip[9] != IPPROTO_UDP)
        return TC_ACT_OK;
    if (((ip[6] & 0x3f) | ip[7]) != 0) /* MF or a fragment offset */
        return TC_ACT_OK;
    u32 off = ETH_HLEN + (u32)(ip[0] & 0x0f) * 4;
    if (bpf_skb_load_bytes(skb, off, udp, sizeof(udp)) < 0)
        return TC_ACT_OK;
    count(0);
    u16 dport = ((u16)udp[2] << 8) | udp[3];
    if (dport < PORT_MIN || dport > PORT_MAX ||
        bpf_skb_load_bytes(skb, off + 8, rtp, sizeof(rtp)) < 0) {
        count(4);
        return TC_ACT_OK;
    }
    if ((rtp[0] >> 6) != 2) {
        count(4);
        return TC_ACT_OK;
    }
    if (rtp[1] >= 200 && rtp[1] <= 207) {
        count(3);
        return TC_ACT_OK;
    }
    count(1);
    struct skey k = {};
    __builtin_memcpy(&k.saddr, &ip[12], 4);
    __builtin_memcpy(&k.daddr, &ip[16], 4);
    k.sport = ((u16)udp[0] << 8) | udp[1];
    k.dport = dport;
    k.ssrc = ((u32)rtp[8] << 24) | ((u32)rtp[9] << 16) | ((u32)rtp[10] << 8) | rtp[11];
    struct sval zero = {};
    struct sval *s = streams.lookup_or_try_init(&k, &zero);
    if (!s)
        return TC_ACT_OK;
    u64 i = __sync_fetch_and_add(&s->seen, 1) + 1;
    if ((i + OFFSET) % EVERY_N == 0) {
        __sync_fetch_and_add(&s->dropped, 1);
        count(2);
        return TC_ACT_SHOT;
    }
    return TC_ACT_OK;
}
"""

TOTALS = ("udp", "rtp_seen", "rtp_dropped", "rtcp_passed", "other_passed")


def _ip(addr: int) -> str:
    return ".".join(str(b) for b in addr.to_bytes(4, "little"))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("netns")
    p.add_argument("dev")
    p.add_argument("--every", type=int, required=True)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--ports", default="1-65535")
    a = p.parse_args()
    lo, _, hi = a.ports.partition("-")
    from bcc import BPF
    from bcc.libbcc import lib

    flags = [f"-DEVERY_N={a.every}", f"-DOFFSET={a.offset}", f"-DPORT_MIN={lo}", f"-DPORT_MAX={hi}"]
    b = BPF(text=TEXT, cflags=flags)
    fn = b.load_func(b"drop_nth", BPF.SCHED_CLS)
    tc = ["ip", "netns", "exec", a.netns, "tc"]
    subprocess.run([*tc, "qdisc", "add", "dev", a.dev, "clsact"], check=True)
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["mount", "-t", "bpf", "bpf", d], check=True)
        try:
            path = f"{d}/drop_nth"
            lib.bpf_obj_pin.argtypes = [ctypes.c_int, ctypes.c_char_p]
            if lib.bpf_obj_pin(fn.fd, path.encode()) != 0:
                raise OSError(ctypes.get_errno(), f"bpf_obj_pin {path}")
            subprocess.run(
                [
                    *tc,
                    "filter",
                    "add",
                    "dev",
                    a.dev,
                    "egress",
                    "bpf",
                    "object-pinned",
                    path,
                    "direct-action",
                ],
                check=True,
            )
        finally:
            subprocess.run(["umount", d], check=False)
    print("ready", flush=True)
    for _ in sys.stdin:
        totals = [sum(v) for v in b["totals"].values()]
        streams = [
            {
                "src": f"{_ip(k.saddr)}:{k.sport}",
                "dst": f"{_ip(k.daddr)}:{k.dport}",
                "ssrc": k.ssrc,
                "seen": v.seen,
                "dropped": v.dropped,
            }
            for k, v in b["streams"].items()
        ]
        print(
            json.dumps({"totals": dict(zip(TOTALS, totals, strict=True)), "streams": streams}),
            flush=True,
        )
    return 0


class TcDropper:
    """Runs this module as a subprocess on ``dev`` in namespace ``netns``; :meth:`counts` asks
    it for its counters. Close it (or leave the ``with``) before deleting the namespace."""

    def __init__(
        self, python: str, netns: str, dev: str, every: int, offset: int = 0, ports: str = ""
    ) -> None:
        cmd = ["unshare", "-m", python, str(Path(__file__).resolve()), netns, dev]
        cmd += ["--every", str(every), "--offset", str(offset)]
        if ports:
            cmd += ["--ports", ports]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"tc_drop did not start (rc {self.proc.returncode}): {line!r}")

    def counts(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        out: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return out

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> TcDropper:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":
    raise SystemExit(main())
