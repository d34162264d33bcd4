"""Whole capture files, mutated, through ``sip-otel replay``: exit 0 or 1, at most one line.

Seeds are the captures of ``../shared/pcaps`` (cut at a record boundary to at most
``--max-seed`` bytes, so that a run stays short) and synthetic captures made here (classic pcap
in both byte orders and resolutions, pcapng with several interfaces and timestamp options, gzip
variants) -- the synthetic ones alone when the corpus is absent. Each file gets 1-5 mutations:
bit flips, bytes set to edge values, truncation (anywhere, or at a record boundary +- a few
bytes), a structural field (file header, record or block header, block trailer, option)
set to an edge value (0, 1, 11, 12, 16, the bytes left +- 1, 2^31 - 1, 2^32 - 1, ...),
splices of two files, a duplicated or zeroed region; a tenth are then gzip-compressed (a third
of those cut short or corrupted).

Every file runs as ``sip-otel replay FILE --format json`` in its own process (half with
``--all-ports``), with a timeout. A run passes when:

- the exit status is 0 or 1 (not a signal, not a timeout, not 2 or anything else);
- stderr is at most one line starting ``sip-otel: `` (the port hint, ``sip-otel: no SIP messages
  on ports ...``, may come on top), never a traceback, and exactly one line when the status is 1;
- stdout is empty or one JSON summary.

Usage (docs/fuzzing.md)::

    .venv/bin/python tests/fuzz/pcap_mutator.py -n 1000 -j 2 --keep build/mutator-failures

prints the files run, exits 0 / 1, failures (each with its reason and the kept file), wall time,
and exits 1 when any run failed.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from flows import FLOWS  # noqa: E402
from seeds import PCAPS, captures  # noqa: E402

EDGE32 = (0, 1, 4, 11, 12, 16, 20, 24, 28, 32, 0xFFFF, 262144, 262145, 0x10000000, 0x7FFFFFFF,
          0x80000000, 0xFFFFFFFC, 0xFFFFFFFF)  # fmt: skip
HINT = "sip-otel: no SIP messages on ports"
PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")


# -- seeds --------------------------------------------------------------------------------------


def _block(btype: int, body: bytes, endian: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)


def _flow_frames() -> list[bytes]:
    return [f for k, flow in enumerate(FLOWS) for f in flow(f"call-{k}@mutator")]


def synthetic_seeds() -> list[bytes]:
    """Captures built here: every header variant the reader knows."""
    frames = _flow_frames()
    out = []
    for endian in "<>":
        for magic, mult in ((0xA1B2C3D4, 1000), (0xA1B23C4D, 1)):
            buf = io.BytesIO()
            buf.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1))
            for i, f in enumerate(frames):
                sec, frac = 1_700_000_000 + i // 10, (i % 10) * 100_000_000 // mult
                buf.write(struct.pack(endian + "IIII", sec, frac, len(f), len(f)) + f)
            out.append(buf.getvalue())
    for endian in "<>":
        data = _block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)
        for resol, offset in ((6, None), (9, 0), (0x80 | 20, 1_000), (9, -5)):
            opts = struct.pack(endian + "HHB3x", 9, 1, resol)
            if offset is not None:
                opts += struct.pack(endian + "HHq", 14, 8, offset)
            opts += struct.pack(endian + "HH", 0, 0)
            data += _block(1, struct.pack(endian + "HHI", 1, 0, 0) + opts, endian)
        for i, f in enumerate(frames):
            ts = 1_700_000_000_000_000 + i * 20_000
            body = struct.pack(endian + "IIIII", i % 4, ts >> 32, ts & 0xFFFFFFFF, len(f), len(f))
            data += _block(6, body + f, endian)
            if i % 7 == 0:
                data += _block(3, struct.pack(endian + "I", len(f)) + f, endian)  # simple block
                data += _block(5, b"\0" * 16, endian)  # interface statistics: skipped
        out.append(data)
    out.append(gzip.compress(out[0]))
    half = len(out[-2]) // 2
    out.append(gzip.compress(out[-2][:half]) + gzip.compress(out[-2][half:]))  # two members
    return out


def boundaries(data: bytes) -> list[int]:
    """Offsets of the records or blocks of a little- or big-endian capture (as far as they
    parse), and the offsets of their header fields: where mutations hurt most."""
    fields: list[int] = []
    if len(data) < 24:
        return fields
    magic = data[:4]
    if magic in PCAP_MAGICS:
        endian = "<" if magic[0] in (0xD4, 0x4D) else ">"
        fields += [4, 6, 8, 12, 16, 20]
        off = 24
        while off + 16 <= len(data):
            fields += [off, off + 4, off + 8, off + 12]
            off += 16 + struct.unpack_from(endian + "I", data, off + 8)[0]
        return fields
    if magic == b"\x0a\x0d\x0d\x0a":
        endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        off = 0
        while off + 12 <= len(data):
            length = struct.unpack_from(endian + "I", data, off + 4)[0]
            fields += [off, off + 4, off + 8, off + 12, off + 16, off + 20, off + 24]
            if length < 12 or length % 4:
                break
            fields.append(off + length - 4)
            off += length
    return fields


def _cut_at_boundary(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    starts = [o for o in boundaries(data) if o <= limit]
    return data[: max(starts)] if starts else data[:limit]


def corpus_seeds(max_seed: int) -> list[bytes]:
    out = []
    for path in captures() + captures(PCAPS / "bad"):
        out.append(_cut_at_boundary(path.read_bytes(), max_seed))
    return out


# -- mutations ----------------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> tuple[bytes, list[str]]:
    buf = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
        ops = ["flip", "byte", "cut", "field", "field", "splice", "dup", "zero"]
        op = rng.choice(ops)
        if not buf:
            op = "splice"
        fields = boundaries(bytes(buf)) if op in ("field", "cut") else []
        if op == "flip":
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op == "byte":
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(len(buf))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op == "cut":
            if fields and rng.random() < 0.6:
                at = rng.choice(fields) + rng.randint(-3, 3)
            else:
                at = rng.randrange(len(buf) + 1)
            del buf[max(0, at) :]
        elif op == "field":
            at = rng.choice(fields) if fields else rng.randrange(len(buf))
            left = max(0, len(buf) - at)
            value = rng.choice((*EDGE32, left, left + 1, max(0, left - 1), left + 4))
            width = rng.choice((4, 4, 4, 2, 8))
            endian = rng.choice("<>")
            fmt = {2: "H", 4: "I", 8: "Q"}[width]
            packed = struct.pack(endian + fmt, value & ((1 << (8 * width)) - 1))
            buf[at : at + width] = packed
        elif op == "splice":
            other = rng.choice(seeds)
            i = rng.randrange(len(buf) + 1)
            j = rng.randrange(len(other) + 1)
            buf = buf[:i] + other[j:]
        elif op == "dup":
            i = rng.randrange(len(buf))
            j = min(len(buf), i + rng.randint(1, 256))
            k = rng.randrange(len(buf) + 1)
            buf[k:k] = buf[i:j]
        else:  # zero
            i = rng.randrange(len(buf))
            buf[i : i + rng.randint(1, 64)] = bytes(min(len(buf) - i, 64))
        done.append(op)
    out = bytes(buf)
    if rng.random() < 0.1:
        out = gzip.compress(out, compresslevel=1)
        done.append("gzip")
        r = rng.random()
        if r < 0.15 and len(out) > 20:
            out = out[: rng.randrange(10, len(out))]
            done.append("gzip-cut")
        elif r < 0.3 and len(out) > 20:
            b = bytearray(out)
            b[rng.randrange(10, len(b))] ^= 0xFF
            out = bytes(b)
            done.append("gzip-flip")
    return out, done


# -- running ------------------------------------------------------------------------------------


@dataclass
class Result:
    files: int = 0
    exits: Counter[int] = field(default_factory=Counter)
    failures: list[dict[str, object]] = field(default_factory=list)
    stderr_lines: Counter[str] = field(default_factory=Counter)


def check(proc: subprocess.CompletedProcess[str]) -> str | None:
    """Why a run fails the contract, or None."""
    if proc.returncode not in (0, 1):
        if proc.returncode < 0:
            return f"killed by signal {-proc.returncode}"
        return f"exit status {proc.returncode}"
    lines = proc.stderr.splitlines()
    if "Traceback" in proc.stderr:
        return "traceback on stderr"
    errors = [line for line in lines if not line.startswith(HINT)]
    if any(not line.startswith("sip-otel: ") for line in lines):
        return "a stderr line not from sip-otel"
    if len(errors) > 1:
        return f"{len(errors)} error lines"
    if proc.returncode == 1 and len(errors) != 1:
        return "exit 1 without an error line"
    if proc.returncode == 0 and errors:
        return "exit 0 with an error line"
    if proc.stdout.strip():
        try:
            json.loads(proc.stdout)
        except ValueError:
            return "stdout is not one JSON summary"
    return None


Proc = subprocess.CompletedProcess[str]


def run_file(path: Path, all_ports: bool, timeout: float) -> tuple[Proc | None, str | None]:
    cmd = [sys.executable, "-m", "sip_otel", "replay", str(path), "--format", "json"]
    if all_ports:
        cmd.append("--all-ports")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return None, f"no exit within {timeout} s (hang)"
    return proc, check(proc)


def run(n: int, seed: int, jobs: int, timeout: float, max_seed: int, keep: Path | None,
        work: Path) -> Result:  # fmt: skip
    rng = random.Random(seed)
    seeds = corpus_seeds(max_seed) + synthetic_seeds()
    plans = []
    for i in range(n):
        data, ops = mutate(rng, rng.choice(seeds), seeds)
        path = work / f"m{i:06d}.pcap"
        path.write_bytes(data)
        plans.append((i, path, ops, i % 2 == 1))
    result = Result()

    def one(plan: tuple[int, Path, list[str], bool]) -> tuple[int, Path, list[str], object, object]:
        i, path, ops, all_ports = plan
        proc, why = run_file(path, all_ports, timeout)
        return i, path, ops, proc, why

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for _, path, ops, proc, why in pool.map(one, plans):
            result.files += 1
            if isinstance(proc, subprocess.CompletedProcess):
                result.exits[proc.returncode] += 1
                for line in proc.stderr.splitlines():
                    # the kind of message, without the file name and numbers
                    kind = line.split(": ", 2)[-1]
                    kind = re.sub(r"\(magic [0-9a-f]*\)", "(magic X)", kind)
                    kind = re.sub(r"0x[0-9a-f]+", "0xX", kind)
                    result.stderr_lines[re.sub(r"\d+", "N", kind)[:56]] += 1
            if why is not None:
                failure: dict[str, object] = {"file": str(path), "why": why, "mutations": ops}
                if isinstance(proc, subprocess.CompletedProcess):
                    failure["stderr"] = proc.stderr[-500:]
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    kept = keep / path.name
                    kept.write_bytes(path.read_bytes())
                    failure["file"] = str(kept)
                result.failures.append(failure)
            path.unlink()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000, help="files to run (default 1000)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="replays at a time (default 2)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per replay (default 60)")
    ap.add_argument("--max-seed", type=int, default=64 * 1024,
                    help="corpus captures cut to this many bytes (default 64 KiB)")  # fmt: skip
    ap.add_argument("--keep", type=Path, help="copy failing files here")
    ap.add_argument("--json", type=Path, help="write the result here as JSON")
    args = ap.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sip-otel-mutator-") as tmp:
        work = Path(tmp)
        result = run(args.n, args.seed, args.jobs, args.timeout, args.max_seed, args.keep, work)
    wall = time.monotonic() - started
    load = os.getloadavg()[0]
    print(f"files {result.files}, exit 0: {result.exits[0]}, exit 1: {result.exits[1]}, "
          f"failures: {len(result.failures)}, wall {wall:.0f} s, load {load:.1f}")  # fmt: skip
    print("stderr messages (kind: count):")
    for kind, count in result.stderr_lines.most_common(25):
        print(f"  {count:6d}  {kind}")
    for failure in result.failures:
        print(f"FAIL {failure['why']}: {failure['file']} ({'+'.join(failure['mutations'])})")  # type: ignore[arg-type]
        if "stderr" in failure:
            print("   ", str(failure["stderr"]).replace("\n", "\n    "))
    if args.json:
        args.json.write_text(json.dumps({
            "files": result.files, "exit_0": result.exits[0], "exit_1": result.exits[1],
            "failures": result.failures, "wall_s": round(wall, 1), "load": load,
        }, indent=1))  # fmt: skip
    return 1 if result.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
