"""Fuzz the compiled core under ASan/UBSan with atheris (docs/fuzzing.md).

    .venv/bin/python tests/fuzz/fuzz_run.py                   # 50,000 inputs
    .venv/bin/python tests/fuzz/fuzz_run.py -n 1000000 --coverage

1. Builds the fuzz variant of ``sip_otel._core`` (setup.py with SIP_OTEL_FUZZ=1, and
   SIP_OTEL_COVERAGE=1 with ``--coverage``) into its own folder under build/ (the normal
   in-place extension is never touched), and a preload library that holds the ASan/UBSan
   runtime and libFuzzer together: CPython is not built with ASan, so the runtime must be
   preloaded, and libFuzzer's coverage hooks must come first in the process's symbol lookup
   (ASan's runtime defines weak stand-ins for them that would swallow the C coverage).
2. Writes the seeds from ../shared/pcaps (seeds.py) when the seed folder is empty; the inputs
   in tests/fuzz/regressions/ are seeds too, so every run replays earlier findings first.
3. Runs fuzz_target.py for ``-n`` inputs in a child with LD_PRELOAD, PYTHONMALLOC=malloc (every
   Python object its own allocation, so ASan sees their bounds; ``--python-malloc pymalloc`` is
   faster and weaker) and leak detection off (CPython keeps interned and cached objects until
   exit by design: every run would "leak").
4. Prints inputs, wall time, crashes, sanitizer reports, Python exceptions, ``internal.*`` counts,
   frames/SIP messages/records processed, and (``--coverage``) line/branch/function coverage of
   src/sip_otel/_c. Crashing inputs are copied to tests/fuzz/regressions/ (replayed by
   test_fuzz.py). Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
C_DIR = ROOT / "src" / "sip_otel" / "_c"
REGRESSIONS = HERE / "regressions"
CLANG = os.environ.get("SIP_OTEL_CC", "clang")


def _runtime_dir() -> Path:
    out = subprocess.run([CLANG, "-print-runtime-dir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def build_preload(out: Path) -> Path:
    """ASan (with UBSan) and libFuzzer in one shared library (what atheris calls
    asan_with_fuzzer.so). ASan's static runtime minus its .preinit_array object, which a
    shared library may not have."""
    lib = out / "asan_fuzzer.so"
    if lib.exists():
        return lib
    rt = _runtime_dir()
    with tempfile.TemporaryDirectory() as tmp:
        asan = Path(tmp) / "asan.a"
        shutil.copy(rt / "libclang_rt.asan-x86_64.a", asan)
        subprocess.run(["ar", "d", str(asan), "asan_preinit.cpp.o"], check=True)
        cmd = [CLANG, "-shared", "-o", str(lib), "-Wl,--whole-archive", str(asan),
               str(rt / "libclang_rt.asan_cxx-x86_64.a"),
               str(rt / "libclang_rt.fuzzer_no_main-x86_64.a"), "-Wl,--no-whole-archive",
               "-lstdc++", "-lpthread", "-ldl", "-lm", "-lrt"]  # fmt: skip
        subprocess.run(cmd, check=True)
    return lib


def build_core(out: Path, coverage: bool) -> Path:
    """The fuzz variant into ``out``/lib; rebuilt (``--force``) when a source or the build
    script changed since the last build there."""
    sources = sorted(
        glob(str(C_DIR / "*.[ch]")) + glob(str(ROOT / "src/sip_otel/*.p[yx][xi]"))
        + glob(str(ROOT / "bpf/*.h")) + [str(ROOT / "setup.py")]
    )  # fmt: skip
    h = hashlib.sha256(f"coverage={coverage}".encode())
    for s in sources:
        h.update(Path(s).read_bytes())
    stamp = out / "stamp"
    lib = out / "lib"
    built = glob(str(lib / "sip_otel" / "_core*.so"))
    if built and stamp.exists() and stamp.read_text() == h.hexdigest():
        return Path(built[0])
    env = dict(os.environ, SIP_OTEL_FUZZ="1")
    if coverage:
        env["SIP_OTEL_COVERAGE"] = "1"
    cmd = [sys.executable, "setup.py", "-q", "build_ext", "--force", "--parallel", "2",
           "--build-lib", str(lib), "--build-temp", str(out / "tmp")]  # fmt: skip
    t0 = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    print(f"fuzz_run: built the fuzz variant in {time.monotonic() - t0:.0f} s", flush=True)
    stamp.write_text(h.hexdigest())
    return Path(glob(str(lib / "sip_otel" / "_core*.so"))[0])


def coverage_summary(so: Path, profdir: Path) -> dict[str, tuple[int, int]]:
    """Lines/branches/functions of src/sip_otel/_c (covered, total) from llvm-cov."""
    raws = glob(str(profdir / "*.profraw"))
    if not raws:
        return {}
    merged = profdir / "merged.profdata"
    subprocess.run(["llvm-profdata", "merge", "-sparse", "-o", str(merged), *raws], check=True)
    out = subprocess.run(
        ["llvm-cov", "export", "-summary-only", "-instr-profile", str(merged), str(so)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    totals = {"lines": [0, 0], "branches": [0, 0], "functions": [0, 0]}
    for f in json.loads(out.stdout)["data"][0]["files"]:
        if not os.path.abspath(os.path.join(ROOT, f["filename"])).startswith(f"{C_DIR}{os.sep}"):
            continue
        for key in totals:
            totals[key][0] += f["summary"][key]["covered"]
            totals[key][1] += f["summary"][key]["count"]
    return {k: (v[0], v[1]) for k, v in totals.items()}


REPORT_PATTERNS = {
    "asan": re.compile(r"^==\d+==ERROR: AddressSanitizer", re.M),
    "ubsan": re.compile(r"runtime error: ", re.M),
    "libfuzzer": re.compile(r"^==\d+== ERROR: libFuzzer", re.M),
}


def run(args: argparse.Namespace) -> dict:
    build = Path(args.build_dir)
    out = build / ("cov" if args.coverage else "plain")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    preload = build_preload(build)
    so = build_core(out, args.coverage)
    build_s = time.monotonic() - t0

    seeds = Path(args.seeds or build / "seeds")
    if not seeds.is_dir() or not any(seeds.iterdir()):
        sys.path.insert(0, str(HERE))
        import seeds as seedmod

        if seedmod.build(seeds, args.max_len) == 0:
            print(f"fuzz_run: {seedmod.PCAPS} is absent: synthetic seeds only", file=sys.stderr)
    work = Path(args.work or build / "work")
    shutil.rmtree(work, ignore_errors=True)
    corpus, artifacts, prof = work / "corpus", work / "artifacts", work / "profraw"
    for d in (corpus, artifacts, prof):
        d.mkdir(parents=True)
    stats_path = work / "stats.json"
    log_path = work / "fuzz.log"

    env = dict(os.environ)
    env.update(
        LD_PRELOAD=str(preload),
        PYTHONMALLOC=args.python_malloc,
        # Leaks off: CPython frees little at exit by design. abort_on_error off so the
        # report is flushed and libFuzzer writes the input that crashed.
        ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:handle_abort=1:"
        "detect_stack_use_after_return=0:symbolize=1",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
        LLVM_PROFILE_FILE=str(prof / "%p-%m.profraw"),
    )
    cmd = [sys.executable, str(HERE / "fuzz_target.py"), "--build-lib", str(out / "lib"),
           "--stats", str(stats_path), "--artifacts", str(artifacts), "--",
           f"-runs={args.runs}", f"-max_len={args.max_len}", f"-seed={args.seed}",
           f"-artifact_prefix={artifacts}/", f"-timeout={args.timeout}", "-rss_limit_mb=4096",
           "-print_final_stats=1", str(corpus), str(seeds)]  # fmt: skip
    cmd += [str(Path(s).resolve()) for s in args.extra_seeds]
    if REGRESSIONS.is_dir() and any(REGRESSIONS.iterdir()):
        cmd.append(str(REGRESSIONS))  # every earlier finding is run again first
    t1 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    wall = time.monotonic() - t1
    text = log_path.read_text(errors="replace")
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}

    reports = {k: len(p.findall(text)) for k, p in REPORT_PATTERNS.items()}
    kinds = ("crash", "oom", "timeout", "leak")  # libFuzzer's artifact prefixes
    crashes = sorted(p for p in artifacts.iterdir() if p.name.split("-")[0] in kinds)
    saved = []
    for p in [*crashes, *sorted(artifacts.glob("exception-*"))]:
        dest = p
        if not args.no_save:
            dest = REGRESSIONS / p.name
            REGRESSIONS.mkdir(exist_ok=True)
            shutil.copy(p, dest)
        saved.append(str(dest))
    done = re.findall(r"Done (\d+) runs in (\d+) second", text)
    result = {
        "runs_requested": args.runs,
        "libfuzzer_runs": int(done[-1][0]) if done else None,
        "inputs": stats.get("inputs", 0),
        "build_seconds": round(build_s, 1),
        "wall_seconds": round(wall, 1),
        "exit_status": proc.returncode,
        "crashes": len(crashes),
        "sanitizer_reports": reports,
        "python_exceptions": stats.get("exceptions", {}),
        "internal": stats.get("internal", {}),
        "frames": stats.get("frames", 0),
        "sip_messages": stats.get("sip_messages", 0),
        "records": stats.get("records", 0),
        "timers": stats.get("timers", 0),
        "seeds": len(os.listdir(seeds)),
        "corpus": len(os.listdir(corpus)),
        "saved_inputs": saved,
        "log": str(log_path),
        "load_average": os.getloadavg(),
    }
    if args.coverage:
        result["coverage"] = coverage_summary(so, prof)
    result["ok"] = (
        proc.returncode == 0 and not crashes and not any(reports.values())
        and not result["python_exceptions"] and not result["internal"]
    )  # fmt: skip
    if stats.get("tracebacks"):
        result["tracebacks"] = stats["tracebacks"]
    return result


def print_report(r: dict) -> None:
    def pct(c: tuple[int, int]) -> str:
        return f"{100 * c[0] / c[1]:.1f} % ({c[0]}/{c[1]})" if c[1] else "n/a"

    print(f"inputs:             {r['inputs']:,} (libFuzzer runs {r['libfuzzer_runs']})")
    print(f"wall time:          {r['wall_seconds']} s (+ {r['build_seconds']} s build)")
    print(f"crashes:            {r['crashes']}")
    print(f"sanitizer reports:  {r['sanitizer_reports']}")
    print(f"python exceptions:  {r['python_exceptions'] or 0}")
    print(f"internal.*:         {r['internal'] or 0}")
    print(f"frames:             {r['frames']:,}")
    print(f"SIP messages:       {r['sip_messages']:,}")
    print(f"records:            {r['records']:,}")
    print(f"timer calls:        {r['timers']:,}")
    print(f"seeds / corpus:     {r['seeds']} / {r['corpus']}")
    if "coverage" in r:
        for k, v in r["coverage"].items():
            print(f"coverage {k + ':':10} {pct(v)}")
    for t in r.get("tracebacks", []):
        print(t)
    if r["saved_inputs"]:
        print("failing inputs:", *r["saved_inputs"], sep="\n  ")
    la = ", ".join(f"{x:.2f}" for x in r["load_average"])
    print(f"load average:       {la}")
    print(f"log:                {r['log']}")
    print("result:            ", "OK" if r["ok"] else "FAILED")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", "--runs", type=int, default=50_000, help="inputs to run")
    ap.add_argument("--coverage", action="store_true", help="coverage build and report")
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    ap.add_argument("--timeout", type=int, default=30, help="seconds per input")
    ap.add_argument("--build-dir", default=str(ROOT / "build" / "fuzz"))
    ap.add_argument("--seeds", help="seed folder (default: BUILD_DIR/seeds, made if empty)")
    ap.add_argument(
        "--python-malloc",
        choices=("malloc", "pymalloc"),
        default="malloc",
        help="PYTHONMALLOC of the child: malloc (default) gives every Python object, every "
        "frame's bytes included, its own ASan-checked allocation; pymalloc is ~1.6x faster but "
        "objects up to 512 bytes share pools, where ASan sees no bounds",
    )
    ap.add_argument("--extra-seeds", nargs="*", default=[], help="more seed folders")
    ap.add_argument("--work", help="scratch folder of the run (default: BUILD_DIR/work)")
    ap.add_argument("--no-save", action="store_true", help="leave crashing inputs in BUILD_DIR")
    ap.add_argument("--json", help="write the result as JSON to this file too")
    args = ap.parse_args()
    result = run(args)
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
