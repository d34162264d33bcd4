"""atheris entry point (run by fuzz_run.py in a child process, never imported by pytest).

    fuzz_target.py --build-lib DIR --stats FILE --artifacts DIR -- [libFuzzer flags] [corpus dirs]

Imports the sanitizer build of ``sip_otel._core`` from ``--build-lib`` (put first on the
package's path, so the normal in-place build is never touched), then lets libFuzzer call
harness.run_one. A Python exception out of an input is not a crash for libFuzzer: it is counted,
the input saved under ``--artifacts`` (``exception-<sha1>``) with its traceback, and the run goes
on. The totals are written to ``--stats`` as JSON every few thousand inputs and at exit (libFuzzer
ends the process with exit(), which runs C atexit handlers, not Python's).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-lib", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--artifacts", required=True)
    args, fuzzer_args = ap.parse_known_args()
    if fuzzer_args and fuzzer_args[0] == "--":
        fuzzer_args = fuzzer_args[1:]

    import sip_otel

    sip_otel.__path__.insert(0, os.path.join(args.build_lib, "sip_otel"))
    import sip_otel._core as core

    if not core.__file__.startswith(os.path.abspath(args.build_lib)):
        sys.exit(f"fuzz_target: imported {core.__file__}, not the sanitizer build")

    import atheris

    sys.path.insert(0, HERE)
    from harness import Totals, run_one

    totals = Totals()
    exceptions: dict[str, int] = {}
    first_tracebacks: list[str] = []
    start = time.monotonic()

    def write_stats() -> None:
        out = {
            "inputs": totals.inputs,
            "frames": totals.frames,
            "sip_messages": totals.sip_messages,
            "records": totals.records,
            "timers": totals.timers,
            "reasons": totals.reasons,
            "internal": totals.internal(),
            "exceptions": exceptions,
            "tracebacks": first_tracebacks,
            "seconds": round(time.monotonic() - start, 1),
        }
        tmp = args.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f)
        os.replace(tmp, args.stats)

    # atexit() itself is a static stub in glibc; __cxa_atexit is the exported registration.
    at_exit = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _arg: write_stats())
    ctypes.CDLL(None).__cxa_atexit(at_exit, None, None)

    def test_one_input(data: bytes) -> None:
        try:
            run_one(data, totals)
        except Exception as exc:
            name = type(exc).__name__
            exceptions[name] = exceptions.get(name, 0) + 1
            digest = hashlib.sha1(data).hexdigest()
            path = os.path.join(args.artifacts, f"exception-{digest}")
            with open(path, "wb") as f:
                f.write(data)
            if len(first_tracebacks) < 5:
                first_tracebacks.append(path + "\n" + traceback.format_exc())
        if totals.inputs % 5000 == 0:
            write_stats()

    write_stats()
    atheris.Setup([sys.argv[0], *fuzzer_args], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
