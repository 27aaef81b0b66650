# Sourced by scripts/*: make and enter the project's virtualenv (.venv), installing pygarage.
# --system-site-packages lets a machine's preinstalled wheels count; a fresh one downloads.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv --system-site-packages .venv 2>/dev/null; then
    # Debian ships venv separately.
    if command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf .venv
    "$PY" -m venv --system-site-packages .venv
  fi
fi
# shellcheck disable=SC1091
source .venv/bin/activate
# Every pip install of the scripts takes the pinned versions (constraints.txt, written by
# scripts/pin-constraints): a new release of a dependency or tool cannot turn CI red.
export PIP_CONSTRAINT="$ROOT/constraints.txt"
