"""Build of the compiled core (``sip_otel._core``): C sources in src/sip_otel/_c plus the Cython
binding src/sip_otel/_core.pyx. Project metadata lives in pyproject.toml.

SIP_OTEL_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer (the fuzz
variant, tests/fuzz/); SIP_OTEL_DEBUG=1 builds without optimisation.
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
if os.environ.get("SIP_OTEL_DEBUG"):
    cflags += ["-O0", "-g"]
else:
    cflags += ["-O2"]
if os.environ.get("SIP_OTEL_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
           "-fno-omit-frame-pointer", "-g"]
    cflags += san
    ldflags += san

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
