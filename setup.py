"""Build of the compiled core (``sip_otel._core``): C sources in src/sip_otel/_c plus the Cython
binding src/sip_otel/_core.pyx. Project metadata lives in pyproject.toml.

Build variants, chosen by environment variables (docs/fuzzing.md):

- ``SIP_OTEL_FUZZ=1``: the fuzz variant (tests/fuzz/). clang with AddressSanitizer and
  UndefinedBehaviorSanitizer, every UBSan finding fatal (``-fno-sanitize-recover=all``), signed
  overflow left undefined so UBSan sees it (``-fno-wrapv``), ``-O1 -g``, and libFuzzer's
  coverage instrumentation without its main (``-fsanitize=fuzzer-no-link``) so atheris is
  guided by the C code's edges. Loading it under CPython needs the ASan runtime preloaded
  (tests/fuzz/fuzz_run.py does that).
- ``SIP_OTEL_COVERAGE=1``: clang source-based coverage (``-fprofile-instr-generate
  -fcoverage-mapping``) for line/branch/function figures of src/sip_otel/_c (llvm-cov).
  Combines with ``SIP_OTEL_FUZZ``.
- ``SIP_OTEL_DEBUG=1``: no optimisation, debug information.

Build a variant into its own directory, never over the normal in-place extension:
``SIP_OTEL_FUZZ=1 python setup.py build_ext --build-lib build/fuzz/plain/lib --build-temp
build/fuzz/plain/tmp`` (tests/fuzz/fuzz_run.py does).
"""

from __future__ import annotations

import os
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup

C_DIR = "src/sip_otel/_c"
sources = ["src/sip_otel/_core.pyx", *sorted(glob(f"{C_DIR}/*.c"))]
depends = sorted(glob(f"{C_DIR}/*.h") + glob("src/sip_otel/*.pxi") + glob("bpf/*.h"))

cflags = ["-std=gnu11", "-D_GNU_SOURCE", "-fvisibility=hidden", "-Wall", "-Wextra",
          "-Wno-unused-parameter", "-Wno-unused-function", "-Wno-missing-field-initializers"]
ldflags: list[str] = []
fuzz = bool(os.environ.get("SIP_OTEL_FUZZ"))
coverage = bool(os.environ.get("SIP_OTEL_COVERAGE"))
if fuzz:
    # The last -O wins: CPython's own CFLAGS (-O2, sometimes -fwrapv) come first on the line.
    cflags += ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-wrapv"]
elif os.environ.get("SIP_OTEL_DEBUG"):
    cflags += ["-O0", "-g"]
else:
    cflags += ["-O2"]
if fuzz:
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           "-fsanitize=fuzzer-no-link"]
    # Cython's fast-call wrappers compute ``args + nargs`` with a NULL ``args`` when a function
    # gets no argument (NULL + 0, undefined, and fatal under UBSan): the fuzz build takes
    # arguments as tuples instead.
    cflags += san + ["-DCYTHON_METH_FASTCALL=0", "-DCYTHON_VECTORCALL=0"]
    # No runtime linked into the extension: the process preloads one that holds ASan, UBSan
    # and libFuzzer together (fuzz_run.py builds it), so the coverage hooks reach libFuzzer.
    ldflags += san
if coverage:
    cov = ["-fprofile-instr-generate", "-fcoverage-mapping"]
    cflags += cov
    ldflags += cov
if fuzz or coverage:
    # Sanitizers and source-based coverage are clang's; the instrumented objects must be linked
    # by clang too (its runtimes).
    os.environ["CC"] = os.environ.get("SIP_OTEL_CC", "clang")
    os.environ["LDSHARED"] = os.environ["CC"] + " -shared"
    # Cython's generated code trips -Wextra warnings under clang that gcc does not report.
    cflags += ["-Wno-unused-but-set-variable", "-Wno-unreachable-code-fallthrough"]

extensions = [
    Extension(
        "sip_otel._core",
        sources=sources,
        depends=depends,
        include_dirs=[C_DIR, "bpf"],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": True, "wraparound": False, "embedsignature": True},
    ),
)
