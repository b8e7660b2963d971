#!/usr/bin/env bash
# Run the whole test suite, installing or updating .venv first (quick when nothing changed).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-demo
exec .venv/bin/python -m pytest "$@"
