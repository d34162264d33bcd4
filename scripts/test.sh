#!/usr/bin/env bash
# The whole test suite: make sure everything is installed (fast when it is), then lint, type-check
# and run pytest. Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
echo "test: ruff"
.venv/bin/ruff check --no-cache src tests benchmarks
.venv/bin/ruff format --check --no-cache src tests benchmarks
echo "test: mypy --strict (src)"
.venv/bin/mypy
echo "test: pytest"
exec .venv/bin/python -m pytest "$@"
