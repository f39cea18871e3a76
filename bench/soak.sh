#!/usr/bin/env bash
# bench/soak.sh — memory under sustained ingestion: runs `odometer serve` on
# its embedded default store (a fresh data directory), drives it with
# bench/loadgen for $DURATION (100-event batches from 16 clients, 1% resends,
# each body built as it is sent, so the run can be as long as wanted), samples
# the server's resident memory (VmRSS) every $INTERVAL seconds and prints a
# Markdown table: time, events acknowledged, events/s, RSS and the parts the
# server reports (docs/storage.md, "Memory").
#
# PASS when, after $WARMUP seconds, RSS never rose more than $TOLERANCE_MB
# above its value at the end of the warm-up and never exceeded $BOUND_MB,
# loadgen's dedup check passed and no request failed; FAIL otherwise (exit 1).
#
# Knobs (environment variables):
#   DURATION=600          seconds of load
#   INTERVAL=30           seconds between samples
#   WARMUP=300            seconds before the flatness check starts
#   TOLERANCE_MB=64       most RSS may rise after the warm-up
#   BOUND_MB=512          most RSS may reach at any time (the bound in docs/storage.md)
#   CLIENTS=16  BATCH=100 load shape
#   SERVER_FLAGS=         extra flags for odometer serve, e.g. "--identity-filter-bytes 16MiB"
#   ODOMETER_BIN=         run this odometer binary instead of building the checkout's
#   PROFILE_DIR=          save heap profiles there at the end of the warm-up and at the end
#                         (go tool pprof -sample_index=inuse_space -base warmup.pb.gz end.pb.gz)
#   OUT_DIR=              keep the table, the samples, loadgen's report and the server log there
#
# Linux only (it reads /proc/PID/status). Everything listens on 127.0.0.1;
# the server and the data directory are removed on exit.
set -euo pipefail

DURATION=${DURATION:-600}
INTERVAL=${INTERVAL:-30}
WARMUP=${WARMUP:-300}
TOLERANCE_MB=${TOLERANCE_MB:-64}
BOUND_MB=${BOUND_MB:-512}
CLIENTS=${CLIENTS:-16}
BATCH=${BATCH:-100}
SERVER_FLAGS=${SERVER_FLAGS:-}
ODOMETER_BIN=${ODOMETER_BIN:-}
PROFILE_DIR=${PROFILE_DIR:-}
OUT_DIR=${OUT_DIR:-}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORK=$(mktemp -d "${TMPDIR:-/tmp}/odometer-soak.XXXXXX")
SERVER_PID=
LOADGEN_PID=

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# stop PID: SIGTERM, then SIGKILL after 20 s.
stop() {
	local pid=$1 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	stop "$LOADGEN_PID"
	stop "$SERVER_PID"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -r /proc/self/status ]] || die "needs Linux (/proc/PID/status)"
command -v curl >/dev/null || die "curl is required"
(( WARMUP < DURATION )) || die "WARMUP ($WARMUP) must be shorter than DURATION ($DURATION)"

if [[ -n $ODOMETER_BIN ]]; then log "building loadgen (odometer: $ODOMETER_BIN)"; else log "building loadgen and odometer"; fi
mkdir -p "$WORK/bin"
go build -o "$WORK/bin/loadgen" ./bench/loadgen
if [[ -z $ODOMETER_BIN ]]; then
	go build -o "$WORK/bin/odometer" ./cmd/odometer
	ODOMETER_BIN=$WORK/bin/odometer
fi

# ---------------------------------------------------------------- server
DEBUG_FLAGS=()
if [[ -n $PROFILE_DIR ]]; then
	mkdir -p "$PROFILE_DIR"
	DEBUG_FLAGS=(--debug-addr 127.0.0.1:0)
fi
: >"$WORK/server.log"
# shellcheck disable=SC2086 # SERVER_FLAGS is a list of flags
env -u ODOMETER_POSTGRES -u ODOMETER_CONFIG -u ODOMETER_ADDR -u ODOMETER_DATA -u ODOMETER_DEBUG_ADDR \
	"$ODOMETER_BIN" serve --data "$WORK/data" --addr 127.0.0.1:0 "${DEBUG_FLAGS[@]}" $SERVER_FLAGS \
	2>>"$WORK/server.log" >/dev/null &
SERVER_PID=$!
addr=
for ((i = 0; i < 300; i++)); do
	addr=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$WORK/server.log" | head -n1) || true
	[[ -n $addr ]] && break
	kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "odometer exited at start"; }
	sleep 0.1
done
[[ -n $addr ]] || { cat "$WORK/server.log" >&2; die "odometer did not log its address within 30 s"; }
URL="http://${addr//\"/}"
DEBUG_URL=
if [[ -n $PROFILE_DIR ]]; then
	for ((i = 0; i < 100; i++)); do
		d=$(sed -n 's/.*msg="profiler listening" addr=\([^ ]*\).*/\1/p' "$WORK/server.log" | head -n1) || true
		[[ -n $d ]] && break
		sleep 0.1
	done
	[[ -n $d ]] || die "odometer did not log its profiler's address"
	DEBUG_URL="http://${d//\"/}"
fi
for ((i = 0; i < 300; i++)); do
	curl -fsS -o /dev/null --max-time 2 "$URL/readyz" && break
	sleep 0.1
done
log "$("$ODOMETER_BIN" version 2>/dev/null | head -n1) at $URL (pid $SERVER_PID), data in a fresh directory"

# ---------------------------------------------------------------- load
# --events is only an upper bound: the run ends after --duration.
"$WORK/bin/loadgen" --url "$URL" --setup-meters --stream --mode batch --batch "$BATCH" --clients "$CLIENTS" \
	--events 4000000000 --duration "${DURATION}s" --json >"$WORK/loadgen.json" 2>"$WORK/loadgen.err" &
LOADGEN_PID=$!
log "loadgen: $CLIENTS clients, $BATCH-event batches, for ${DURATION}s; a sample every ${INTERVAL}s"

rss_mb() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }
# sample T: one line of the table's data: t events rss cache memtables filter go
sample() {
	local t=$1 rss metrics
	rss=$(rss_mb)
	metrics=$(curl -fsS --max-time 10 "$URL/metrics" || true)
	awk -v t="$t" -v rss="$rss" '
		BEGIN { cache = mem = filter = -1 }
		/^odometer_ingest_events_total\{outcome="(accepted|duplicate)"\}/ { ev += $2 }
		/^odometer_eventlog_block_cache_bytes / { cache = $2 / 1048576 }
		/^odometer_eventlog_memtable_bytes / { mem = $2 / 1048576 }
		/^odometer_eventlog_identity_filter_bytes / { filter = $2 / 1048576 }
		/^go_memstats_sys_bytes / { gosys = $2 }
		/^go_memstats_heap_released_bytes / { released = $2 }
		END { printf "%d %.0f %d %.0f %.0f %.0f %.0f\n", t, ev, rss, cache, mem, filter, (gosys - released) / 1048576 }
	' <<<"$metrics"
}
profile() {
	[[ -n $DEBUG_URL ]] || return 0
	curl -fsS --max-time 30 -o "$PROFILE_DIR/$1.pb.gz" "$DEBUG_URL/debug/pprof/heap" || log "heap profile $1 failed"
	curl -fsS --max-time 30 "$DEBUG_URL/debug/pprof/heap?debug=1" | grep -E '^# (Sys|HeapSys|HeapInuse|HeapIdle|HeapReleased|NextGC) ' \
		>"$PROFILE_DIR/$1.memstats.txt" || true
}

start=$(date +%s)
: >"$WORK/samples"
next=0
profiled=
while kill -0 "$LOADGEN_PID" 2>/dev/null; do
	now=$(($(date +%s) - start))
	if ((now >= next)); then
		sample "$now" >>"$WORK/samples"
		next=$((next + INTERVAL))
		if [[ -z $profiled ]] && ((now >= WARMUP)); then
			profile warmup
			profiled=1
		fi
	fi
	sleep 1
done
wait "$LOADGEN_PID" && lg=0 || lg=$?
LOADGEN_PID=
sample "$(($(date +%s) - start))" >>"$WORK/samples"
profile end

# ---------------------------------------------------------------- report
field() { sed -n "s/.*\"$1\":\\([-0-9.e+]*\\).*/\\1/p" "$WORK/loadgen.json"; }
sfield() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$WORK/loadgen.json"; }
dedup=$(sfield dedup_check)
{
	echo "| time (s) | events acknowledged | events/s | RSS (MB) | block cache (MiB) | memtables (MiB) | identity filter (MiB) | Go runtime (MiB) |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
	# -1: the server does not report that part (an older build).
	awk 'function part(v) { return v < 0 ? "—" : v }
		{ rate = ($1 > pt) ? ($2 - pe) / ($1 - pt) : 0
		  printf "| %d | %d | %d | %d | %s | %s | %s | %s |\n", $1, $2, rate, $3, part($4), part($5), part($6), $7
		  pt = $1; pe = $2 }' "$WORK/samples"
} >"$WORK/table.md"
verdict=$(awk -v warm="$WARMUP" -v tol="$TOLERANCE_MB" -v bound="$BOUND_MB" '
	{ if ($3 > max) max = $3
	  if ($1 >= warm && base == "") base = $3
	  if (base != "" && $3 > after) after = $3 }
	END {
		ok = 1
		if (base == "") { printf "no sample after the warm-up"; exit }
		if (after - base > tol) { ok = 0; printf "RSS rose %d MB after the warm-up (from %d to %d; tolerance %d MB); ", after - base, base, after, tol }
		if (max > bound) { ok = 0; printf "RSS reached %d MB (bound %d MB); ", max, bound }
		if (ok) printf "PASS: after the warm-up (%d s) RSS stayed within %d-%d MB (tolerance %d MB above %d); at most %d MB (bound %d MB)", warm, base, after, tol, base, max, bound
	}' "$WORK/samples")
if [[ $lg != 0 || $dedup != ok ]]; then
	verdict="loadgen: exit $lg, dedup check ${dedup:-missing} ($(tail -n3 "$WORK/loadgen.err" | tr '\n' ' ')); $verdict"
fi
[[ $verdict == PASS* ]] || verdict="FAIL: $verdict"

cat "$WORK/table.md"
echo
echo "loadgen: $(field events) events acknowledged in $(field seconds | cut -d. -f1) s ($(field events_per_sec | cut -d. -f1) events/s), dedup check $dedup, p99 $(field p99_ms) ms"
echo "$verdict"
if [[ -n $OUT_DIR ]]; then
	mkdir -p "$OUT_DIR"
	cp "$WORK/table.md" "$WORK/samples" "$WORK/loadgen.json" "$WORK/server.log" "$OUT_DIR/"
	echo "$verdict" >"$OUT_DIR/verdict.txt"
	log "table, samples, loadgen report and server log are in $OUT_DIR"
fi
[[ $verdict == PASS* ]]
