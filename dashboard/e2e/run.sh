#!/usr/bin/env bash
# dashboard/e2e/run.sh — the dashboard's browser tests: builds odometer,
# installs playwright-core from package-lock.json (npm ci) when node_modules
# is missing, and runs the tests in Debian's headless Chromium
# (/usr/bin/chromium; CHROMIUM=path for another). Screenshots go to
# ARTIFACTS (default dashboard/e2e/artifacts).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/odometer-dash.XXXXXX")
trap 'rm -rf "$work"' EXIT

command -v node >/dev/null || { echo "dashboard e2e: node is required" >&2; exit 1; }
[[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || { echo "dashboard e2e: Chromium is required (Debian: apt-get install chromium)" >&2; exit 1; }

(cd "$root" && go build -o "$work/odometer" ./cmd/odometer)
if [[ ! -d $here/node_modules/playwright-core ]]; then
	(cd "$here" && npm ci --no-audit --no-fund)
fi
cd "$here"
ODOMETER_BIN="$work/odometer" node --test
