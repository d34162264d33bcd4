"""Record the replay outputs of every corpus capture (the golden files the golden test checks).

Run from the repository root with the project's venv:

    .venv/bin/python tests/golden/record.py [--out DIR]

For each capture in ../shared/pcaps and each mode in :data:`MODES`, ``sip-otel replay`` runs
in-process in the three formats (json, text, prometheus); timing fields are removed
(:func:`normalise`) and the outputs are written to ``<out>/<format>.json.gz`` as one JSON object
``{"<mode>/<capture>": output}``. The files in this folder were recorded from main as it was
before the compiled core (commit c3d3720) with only the two corrections of issue 8 applied
(case-sensitive methods, one SRD per forked dialog); see tests/test_golden.py.

Issue 10 changed one meaning on purpose: ``sip_exporter_invite_total`` counts INVITE session
attempts (the SER base, as sip-exporter 1.x users' rules need) instead of INVITEs on the wire.
``--migrate-invite-attempts`` rewrote the recorded prometheus outputs for it without replaying
anything: the family's HELP line is the new description and its value is the
``sip_rfc6076_session_attempts_total`` value recorded in the same output.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED_PCAPS = REPO.parent / "shared" / "pcaps"
FORMATS = ("json", "text", "prometheus")
# mode name -> extra replay arguments
MODES: dict[str, tuple[str, ...]] = {
    "default": (),
    "all_ports": ("--all-ports",),
    "all_ports_challenge_new": ("--all-ports", "--challenge-retry-new-attempt"),
}
# Timing fields: the only parts of an output that may differ between two runs.
JSON_TIMING = ("elapsed_s", "messages_per_s", "frames_per_s")


def captures() -> list[Path]:
    if not SHARED_PCAPS.is_dir():
        return []
    return sorted(
        p
        for p in SHARED_PCAPS.iterdir()
        if p.is_file() and p.suffix in (".pcap", ".pcapng", ".cap")
    )


_DELAY_FIELD = re.compile(r"\b(mean|p50|p95)=(undefined|[0-9.]+ m?s)")


def mask_delays(text: str) -> str:
    """Delay figures of the text summary replaced by ``#``: their unit changed from seconds with
    two decimals to milliseconds (issue 10); the JSON golden output checks the values, the text
    one the layout and the sample counts."""
    return _DELAY_FIELD.sub(r"\1=#", text)


# Families added after the golden outputs were recorded (issue 11's memory budget): their byte
# figures depend on the build's struct sizes, so the comparison leaves them out (their values
# are tested in tests/telemetry and tests/test_memory_budget.py).
_NEW_FAMILIES = ("sip_otel_memory_bytes", "sip_otel_memory_limit_bytes")


def _drop_new_families(out: str) -> str:
    keep = []
    for line in out.splitlines(keepends=True):
        name = line.split()[2] if line.startswith("# ") and len(line.split()) > 2 else line
        if not name.startswith(_NEW_FAMILIES):
            keep.append(line)
    return "".join(keep)


def normalise(fmt: str, out: str) -> str:
    """Drop timing fields and the directory of the file name; mask text delay figures; leave
    out the Prometheus families added since the recording."""
    if fmt == "json":
        obj = json.loads(out)
        for key in JSON_TIMING:
            obj.pop(key, None)
        obj["file"] = Path(obj["file"]).name
        return json.dumps(obj, sort_keys=False)
    if fmt == "text":
        lines = []
        for line in out.splitlines():
            if line.startswith("elapsed "):
                continue
            if line.startswith("file "):
                line = "file            " + Path(line[5:].strip()).name
            lines.append(line)
        return mask_delays("\n".join(lines))
    return _drop_new_families(out)


def replay(path: Path, fmt: str, extra: tuple[str, ...]) -> str:
    from sip_otel.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["replay", str(path), "--format", fmt, "--progress", "never", *extra])
    return f"exit {code}\n" + normalise(fmt, buf.getvalue())


def record(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = captures()
    if not paths:
        sys.exit(f"no captures in {SHARED_PCAPS}")
    for fmt in FORMATS:
        outputs: dict[str, str] = {}
        for mode, extra in MODES.items():
            for path in paths:
                outputs[f"{mode}/{path.name}"] = replay(path, fmt, extra)
        data = json.dumps(outputs, indent=0, sort_keys=True).encode()
        with gzip.GzipFile(out_dir / f"{fmt}.json.gz", "wb", mtime=0) as fh:
            fh.write(data)
        print(f"{fmt}: {len(outputs)} outputs", file=sys.stderr)


INVITE_HELP = (
    "# HELP sip_exporter_invite_total New INVITE session attempts, as sip-exporter 1.x counts "
    "them: no retransmissions (sip_exporter_sip_retransmission_total), no re-INVITEs "
    "(sip_exporter_reinvite_total), a credentialed retry after 401/407 not again (unless "
    "--challenge-retry-new-attempt); the SER base. Every INVITE on the wire: "
    'sip_requests_total{method="INVITE"}.'
)


def migrate_invite_attempts(text: str) -> str:
    """One recorded prometheus output with the issue-10 meaning of sip_exporter_invite_total."""
    lines = text.split("\n")
    (attempts,) = [ln for ln in lines if ln.startswith("sip_rfc6076_session_attempts_total ")]
    value = attempts.split(" ", 1)[1]
    out = []
    for ln in lines:
        if ln.startswith("# HELP sip_exporter_invite_total "):
            ln = INVITE_HELP
        elif ln.startswith("sip_exporter_invite_total "):
            ln = f"sip_exporter_invite_total {value}"
        out.append(ln)
    return "\n".join(out)


def migrate(out_dir: Path) -> None:
    path = out_dir / "prometheus.json.gz"
    with gzip.open(path) as fh:
        outputs: dict[str, str] = json.loads(fh.read())
    migrated = {k: migrate_invite_attempts(v) for k, v in outputs.items()}
    data = json.dumps(migrated, indent=0, sort_keys=True).encode()
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(data)
    changed = sum(migrated[k] != outputs[k] for k in outputs)
    print(f"prometheus: {changed} of {len(outputs)} outputs rewritten", file=sys.stderr)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--migrate-invite-attempts", action="store_true")
    args = ap.parse_args()
    if args.migrate_invite_attempts:
        migrate(args.out)
    else:
        record(args.out)
