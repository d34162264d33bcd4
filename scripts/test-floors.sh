#!/usr/bin/env bash
# The unit suite against the dependency floors: builds .venv-floors with every runtime
# dependency of pyproject.toml pinned to its lower bound (">=X" -> "==X"), then runs pytest
# without the live/e2e tests (those exercise the kernel, not the libraries). Extra arguments go
# to pytest. Run after scripts/setup.sh (the Debian packages: compiler, Python headers).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
venv="$here/.venv-floors"
say() { printf 'test-floors: %s\n' "$*"; }

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
/usr/bin/python3 - "$constraints" <<'PY'
import re, sys, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
pins = []
for dep in deps:
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([^,\s]+)(,.*)?", dep)
    if not m:
        sys.exit(f"test-floors: dependency without a floor: {dep!r}")
    pins.append(f"{m.group(1)}=={m.group(2)}")
open(sys.argv[1], "w").write("\n".join(pins) + "\n")
PY
say "floors: $(tr '\n' ' ' < "$constraints")"

if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    /usr/bin/python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
# The pins are constraints: pip fails if any floor cannot be installed with the others.
"$venv/bin/python" -m pip install -q -c "$constraints" -e ".[test]"
"$venv/bin/python" -m pip freeze | grep -iE '^(opentelemetry|prometheus|pydantic)' \
    | sed 's/^/test-floors: installed /'
# Floors must be what got installed (pip could not have picked anything else under ==).
say "pytest (unit suite, no live/e2e tests)"
exec "$venv/bin/python" -m pytest -q -m "not live and not slow" --ignore=tests/e2e "$@"
