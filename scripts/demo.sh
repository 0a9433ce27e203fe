#!/usr/bin/env bash
# The main job: set up, then a streamed chat and a completion with logprobs
# on the embedded model (no API key, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh local
exec .venv/bin/gptmagic demo "$@"
