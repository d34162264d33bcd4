"""Make a veth carry 802.1Q / QinQ tags on a kernel without the 802.1Q driver.

    unshare -m python vlan_tc.py NETNS DEV PROTO:VID[,PROTO:VID]   (outer tag first)

Loads two tc programs with bcc: on egress, bpf_skb_vlan_push of each tag (inner first, so the
outer one ends in skb metadata and the inner one inline, as a real QinQ stack sends them); on
ingress, pops them all again after packet taps have seen them (taps run before tc ingress), so
the IP stack gets plain frames. Programs are pinned in a bpffs mounted in this process's private
mount namespace (hence ``unshare -m``) just long enough for ``tc ... object-pinned`` to load them;
the tc filters keep them alive, and deleting the namespace removes everything.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import tempfile

from bcc import BPF
from bcc.libbcc import lib

TEXT = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
int push(struct __sk_buff *skb) {
    PUSHES
    return TC_ACT_OK;
}
int pop(struct __sk_buff *skb) {
    bpf_skb_vlan_pop(skb);
    bpf_skb_vlan_pop(skb);
    return TC_ACT_OK;
}
"""


def main() -> int:
    netns, dev, spec = sys.argv[1:4]
    tags = [(int(p, 16), int(v)) for p, v in (t.split(":") for t in spec.split(","))]
    pushes = "\n".join(
        f"bpf_skb_vlan_push(skb, htons(0x{proto:x}), {vid});" for proto, vid in reversed(tags)
    )
    b = BPF(text=TEXT.replace("PUSHES", pushes))
    fns = {name: b.load_func(name.encode(), BPF.SCHED_CLS) for name in ("push", "pop")}
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["mount", "-t", "bpf", "bpf", d], check=True)
        try:
            tc = ["ip", "netns", "exec", netns, "tc"]
            subprocess.run([*tc, "qdisc", "add", "dev", dev, "clsact"], check=True)
            for name, hook in (("push", "egress"), ("pop", "ingress")):
                path = f"{d}/{name}".encode()
                lib.bpf_obj_pin.argtypes = [ctypes.c_int, ctypes.c_char_p]
                if lib.bpf_obj_pin(fns[name].fd, path) != 0:
                    raise OSError(ctypes.get_errno(), f"bpf_obj_pin {path!r}")
                subprocess.run(
                    [
                        *tc,
                        "filter",
                        "add",
                        "dev",
                        dev,
                        hook,
                        "bpf",
                        "object-pinned",
                        path.decode(),
                        "direct-action",
                    ],
                    check=True,
                )
        finally:
            subprocess.run(["umount", d], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
