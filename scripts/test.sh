#!/usr/bin/env bash
# Set up with the test tools, then run the whole test suite.
# The browser tests need Debian's chromium (never `playwright install`: it
# downloads a browser, which fails offline); it is installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# The report tests fetch the widget manager's JavaScript with npm (once, cached).
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "gptmagic: installing Debian packages for the browser tests: ${need[*]} ..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "The browser tests need: ${need[*]} (sudo apt-get install -y ${need[*]})." >&2
    exit 1
  fi
fi
bash scripts/setup.sh "local,local-gemma,dev"
# The layers hold (docs/architecture.md) and the types check: a wrong import or a
# type error fails here, before any test.
.venv/bin/lint-imports --no-cache
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
