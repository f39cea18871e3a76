#!/usr/bin/env bash
# compat/openmeter-sdk/run.sh — checks that OpenMeter's published JavaScript
# SDK (@openmeter/sdk, pinned in package.json) works against Odometer.
#
# Builds odometer, starts `odometer serve` on a temporary data directory
# and a free port on 127.0.0.1, waits for /readyz, installs the SDK from
# package-lock.json (npm ci) when node_modules is missing, runs check.js and
# stops the server. Exits non-zero if any check fails.
#
# Needs go, node (20 or newer) and npm. The server uses its embedded store;
# set COMPAT_POSTGRES=URL to check it on PostgreSQL instead.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/odometer-compat.XXXXXX")
pid=""

cleanup() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
	echo "compat: $*" >&2
	if [[ -s $work/server.log ]]; then
		echo "--- server log (last 40 lines) ---" >&2
		tail -n 40 "$work/server.log" >&2
	fi
	exit 1
}

command -v node >/dev/null || fail "node is required"
command -v npm >/dev/null || fail "npm is required"

echo "compat: building odometer"
(cd "$root" && go build -o "$work/odometer" ./cmd/odometer)

serve_args=(serve --data "$work/data" --addr 127.0.0.1:0)
if [[ -n ${COMPAT_POSTGRES:-} ]]; then
	serve_args+=(--postgres "$COMPAT_POSTGRES")
fi
# The environment must not choose another store, address or config.
: >"$work/server.log"
env -u ODOMETER_POSTGRES -u ODOMETER_CONFIG -u ODOMETER_ADDR -u ODOMETER_DATA \
	"$work/odometer" "${serve_args[@]}" >/dev/null 2>>"$work/server.log" &
pid=$!

addr=""
for _ in $(seq 300); do
	addr=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$work/server.log" | head -n1) || true
	[[ -n $addr ]] && break
	kill -0 "$pid" 2>/dev/null || fail "odometer serve exited at start"
	sleep 0.1
done
[[ -n $addr ]] || fail "odometer serve did not log its listening address within 30s"
url="http://${addr//\"/}"

ready() {
	node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$url/readyz"
}
for _ in $(seq 300); do
	ready && break
	kill -0 "$pid" 2>/dev/null || fail "odometer serve exited before it was ready"
	sleep 0.1
done
ready || fail "$url/readyz did not answer 2xx within 30s"
echo "compat: odometer is ready at $url"

cd "$here"
if [[ ! -d node_modules/@openmeter/sdk ]]; then
	echo "compat: npm ci"
	npm ci --no-audit --no-fund --loglevel=error
fi

if ! ODOMETER_URL=$url node check.js; then
	fail "the OpenMeter SDK check failed"
fi
