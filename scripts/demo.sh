#!/usr/bin/env bash
# The main job: set up .venv, then run the quickstart and batch-evaluation notebooks
# on the embedded model (no API key) into report/: executed notebooks and an HTML
# report that opens offline with its widgets. Extra arguments go to `gptmagic demo`,
# e.g. `bash scripts/demo.sh other-dir`. The terminal-only demo: .venv/bin/gptmagic demo
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh local,local-gemma,notebooks
exec .venv/bin/gptmagic demo --report "$@"
