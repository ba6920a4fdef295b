#!/usr/bin/env bash
# Runs the browser tests: installs Debian's Chromium and the pinned npm packages when
# needed (deploy/dev/tools.sh), then Node's test runner over tests/. Screenshots go to
# tests/browser/output/screenshots/ (BROWSER_OUTPUT_DIR to change it). Arguments go to
# `node --test` (whose --test-timeout bounds each file as a whole, so it is generous), e.g. `tests/browser/run.sh --test-name-pattern keyboard`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/dev/tools.sh
source "$here/../../deploy/dev/tools.sh"
ensure_chromium
ensure_browser_deps
cd "$here"
exec node --test --test-concurrency=1 --test-timeout=600000 "$@" tests/
