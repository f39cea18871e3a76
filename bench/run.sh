#!/usr/bin/env bash
# bench/run.sh — end-to-end benchmarks of Odometer over real HTTP on
# loopback, and of the simple baseline (bench/baseline) in the same run.
#
# Reproduces every figure in bench/README.md:
#   (a) batch ingestion: 1,000-event batches, 8 clients, $EVENTS events over
#       10,000 subjects and 3 event types (one meter each), 1% resends
#   (b) single-event requests from 64 clients ($SINGLE_EVENTS events)
#   (c) usage queries (one subject, one month by DAY, grouped by model) at
#       each stored size in $QUERY_SIZES
#   (d) (a) and (b) against the baseline on a PostgreSQL server
#   (e) with ODOMETER_PG_NODES, (a) and (b) against Odometer on that same
#       PostgreSQL server, with each number of nodes listed, every run
#       alternating with the baseline's
# and prints a Markdown table of the medians of $RUNS runs.
#
# Every run starts on an empty store (a fresh data directory; an emptied
# table for the baseline). Everything listens on 127.0.0.1 only, every load
# is bounded in time, and all processes and temporary directories are
# removed on exit.
#
# Knobs (environment variables):
#   EVENTS=1000000          events per batch-ingestion run (10000000 for the full run)
#   SINGLE_EVENTS=200000    events per single-event run
#   RUNS=3                  runs per figure; the table shows medians
#   QUERY_SIZES=$EVENTS     stored sizes to run the query benchmark at, e.g. "1000000 10000000";
#                           empty (QUERY_SIZES=) skips the query benchmark
#   QUERY_DURATION=20s      length of one query run;  QUERY_CLIENTS=4
#   QUERY_SETTLE=330        seconds to wait after loading before the query runs: the
#                           loaded month is a backfill of late events, and the usage
#                           cache trusts a subject's hours 5 minutes after its last
#                           late event (docs/meters.md); 0 measures without that wait
#   BASELINE=1              set to 0 to skip the baseline (no PostgreSQL needed)
#   EMBEDDED=1              set to 0 to skip (a), (b) and (c) on the embedded store
#   ODOMETER_PG_NODES=      e.g. "1 2": also run Odometer on the baseline's PostgreSQL with
#                           1 node, then 2 nodes (the load generator's clients take the
#                           nodes in turn), each run on a fresh database; needs BASELINE=1
#   ODOMETER_FLAGS=         extra flags for every Odometer server, e.g. "--usage-rollups=false"
#   ODOMETER_BIN=           run this odometer binary instead of building the checkout's,
#                           e.g. to compare two commits run after run (bench/README.md)
#   POSTGRES_URL=           an existing PostgreSQL for the baseline; default: a throwaway one
#   RUN_TIMEOUT=1200        seconds one loadgen invocation may take before it is killed
#   PROFILE_DIR=            if set, save a CPU profile of Odometer during the first batch
#                           run there (when the server exposes /debug/pprof)
#   OUT_DIR=                if set, an empty directory to keep results.md and every raw
#                           loadgen JSON report in (written as the runs finish)
set -euo pipefail

EVENTS=${EVENTS:-1000000}
SINGLE_EVENTS=${SINGLE_EVENTS:-200000}
RUNS=${RUNS:-3}
QUERY_SIZES=${QUERY_SIZES-$EVENTS}
QUERY_DURATION=${QUERY_DURATION:-20s}
QUERY_CLIENTS=${QUERY_CLIENTS:-4}
QUERY_SETTLE=${QUERY_SETTLE:-330}
BASELINE=${BASELINE:-1}
ODOMETER_PG_NODES=${ODOMETER_PG_NODES:-}
read -ra ODOMETER_FLAGS <<<"${ODOMETER_FLAGS:-}"
EMBEDDED=${EMBEDDED:-1}
POSTGRES_URL=${POSTGRES_URL:-}
RUN_TIMEOUT=${RUN_TIMEOUT:-1200}
PROFILE_DIR=${PROFILE_DIR:-}
OUT_DIR=${OUT_DIR:-}
BATCH=1000
BATCH_CLIENTS=8
SINGLE_CLIENTS=64
SUBJECTS=10000
DUP_RATE=0.01

cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORK=$(mktemp -d "${TMPDIR:-/tmp}/odometer-bench.XXXXXX")
PIDS=()
PGDATA_DIR=

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		stop_pid "$pid"
	done
	if [[ -n $PGDATA_DIR ]]; then
		scripts/postgres.sh stop "$PGDATA_DIR" >/dev/null 2>&1 || true
		rm -rf "$PGDATA_DIR"
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID: SIGTERM, then SIGKILL after 20s.
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# start_server LOGFILE NAME CMD...: starts CMD in the background, waits for its
# "msg=listening addr=HOST:PORT" log line and for /readyz, and sets
# SERVER_PID and SERVER_URL.
start_server() {
	local logfile=$1 name=$2 addr="" i
	shift 2
	: >"$logfile" # exists before the server opens it, for the sed below
	"$@" 2>>"$logfile" >/dev/null &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	for ((i = 0; i < 300; i++)); do
		addr=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$logfile" | head -n1) || true
		[[ -n $addr ]] && break
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logfile" >&2; die "$name exited at start"; }
		sleep 0.1
	done
	[[ -n $addr ]] || { cat "$logfile" >&2; die "$name did not log its listening address within 30s"; }
	SERVER_URL="http://${addr//\"/}"
	for ((i = 0; i < 300; i++)); do
		curl -fsS -o /dev/null --max-time 2 "$SERVER_URL/readyz" && return 0
		sleep 0.1
	done
	cat "$logfile" >&2
	die "$name at $SERVER_URL is not ready after 30s"
}

stop_server() {
	stop_pid "$SERVER_PID"
}

# start_odometer NAME: a fresh Odometer on an empty data directory, with
# the embedded store whatever the environment says.
start_odometer() {
	SERVER_DATA=$(mktemp -d "$WORK/data.XXXXXX")
	start_server "$WORK/$1.log" odometer env -u ODOMETER_POSTGRES -u ODOMETER_CONFIG -u ODOMETER_ADDR -u ODOMETER_DATA \
		"$WORK/bin/odometer" serve --data "$SERVER_DATA" --addr 127.0.0.1:0 "${ODOMETER_FLAGS[@]}"
}

# stop_odometer PID DATA: stops a server and removes its data directory.
stop_odometer() {
	stop_pid "$1"
	rm -rf "$2"
}

# start_odometer_pg NAME N: N Odometer nodes on a fresh database of the
# baseline's PostgreSQL; sets PG_URLS (comma-separated) and PG_NODE_PIDS.
start_odometer_pg() {
	local name=$1 n=$2 i
	PG_DB="odometer_$(date +%s%N)"
	psql "$POSTGRES_URL" -qAtc "CREATE DATABASE $PG_DB" >/dev/null
	PG_DB_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$POSTGRES_URL" "$PG_DB")
	PG_URLS="" PG_NODE_PIDS=()
	for ((i = 1; i <= n; i++)); do
		start_server "$WORK/$name-node$i.log" odometer env -u ODOMETER_CONFIG -u ODOMETER_ADDR -u ODOMETER_DATA \
			"$WORK/bin/odometer" serve --postgres "$PG_DB_URL" --data "$(mktemp -d "$WORK/data.XXXXXX")" --addr 127.0.0.1:0 "${ODOMETER_FLAGS[@]}"
		PG_URLS+="${PG_URLS:+,}$SERVER_URL"
		PG_NODE_PIDS+=("$SERVER_PID")
	done
}

stop_odometer_pg() {
	local pid
	for pid in "${PG_NODE_PIDS[@]}"; do stop_pid "$pid"; done
	psql "$POSTGRES_URL" -qAtc "DROP DATABASE $PG_DB" >/dev/null
}

# pg_runs KIND R ARGS...: run R of KIND (batch or single) against Odometer
# on PostgreSQL, once per number of nodes in ODOMETER_PG_NODES.
pg_runs() {
	local kind=$1 r=$2 n
	shift 2
	for n in $ODOMETER_PG_NODES; do
		log "Odometer on PostgreSQL (e), $n node(s), $kind ingestion, run $r/$RUNS"
		start_odometer_pg "pg$n-$kind-$r" "$n"
		loadgen "$RES/pg$n-$kind-$r.json" --url "$PG_URLS" --setup-meters --seed "$r" "$@"
		stop_odometer_pg
	done
}

start_baseline() {
	start_server "$WORK/$1.log" baseline "$WORK/bin/baseline" --addr 127.0.0.1:0 --postgres "$POSTGRES_URL" --reset
}

# loadgen OUTFILE ARGS...: one bounded loadgen run; its JSON report goes to
# OUTFILE and a one-line summary to stderr.
loadgen() {
	local out=$1
	shift
	timeout --kill-after=10 "$RUN_TIMEOUT" "$WORK/bin/loadgen" --json --duration "$((RUN_TIMEOUT - 30))s" "$@" >"$out" ||
		die "loadgen $* failed (report: $(cat "$out"))"
	local what=""
	if [[ $(sfield "$out" mode) != query ]]; then
		what="$(field "$out" events) events acknowledged (dedup check $(sfield "$out" dedup_check)), $(num "$(field "$out" events_per_sec)") events/s, "
	fi
	log "  $what$(num "$(field "$out" requests_per_sec)") req/s, p50 $(field "$out" p50_ms) ms," \
		"p99 $(field "$out" p99_ms) ms, errors $(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' "$out")"
}

# field FILE KEY: a numeric field of a loadgen JSON report.
field() { sed -n "s/.*\"$2\":\\([-0-9.e+]*\\).*/\\1/p" "$1"; }
sfield() { sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" "$1"; }
# num V: V rounded for the table; ratio A B: A/B.
num() { awk -v v="$1" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else if (v >= 100) printf "%.0f", v; else printf "%.2f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "—"; else printf "%.2f×", a / b }'; }

# median KEY FILES...: the median of KEY over the reports.
median() {
	local key=$1 f
	shift
	for f in "$@"; do field "$f" "$key"; done | sort -g |
		awk '{v[NR] = $1} END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ensure_postgres: sets POSTGRES_URL, starting a throwaway server if none
# was given.
ensure_postgres() {
	if [[ -n $POSTGRES_URL ]]; then
		log "baseline uses the PostgreSQL at POSTGRES_URL"
		return
	fi
	PGDATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/odometer-bench-pg.XXXXXX")
	# The buffers and WAL size are what an operator of a 24 GB machine would
	# set; fsync stays on (scripts/postgres.sh): the baseline must be durable
	# like Odometer.
	POSTGRES_URL=$(POSTGRES_OPTIONS="-c max_connections=200 -c shared_buffers=1GB -c max_wal_size=8GB" \
		scripts/postgres.sh start "$PGDATA_DIR")
	log "started a throwaway $(psql "$POSTGRES_URL" -Atc 'show server_version') on ${POSTGRES_URL#*@}"
}

# ---------------------------------------------------------------- build
command -v curl >/dev/null || die "curl is required"
log "building odometer, loadgen and baseline"
RES=${OUT_DIR:-$WORK/res}
mkdir -p "$WORK/bin" "$RES"
if compgen -G "$RES/*.json" >/dev/null; then
	die "OUT_DIR $OUT_DIR already holds reports (*.json): choose an empty directory"
fi
if [[ -n ${ODOMETER_BIN:-} ]]; then
	[[ -x $ODOMETER_BIN ]] || die "ODOMETER_BIN $ODOMETER_BIN is not an executable"
	cp "$ODOMETER_BIN" "$WORK/bin/odometer"
else
	go build -o "$WORK/bin/odometer" ./cmd/odometer
fi
go build -o "$WORK/bin/loadgen" ./bench/loadgen
go build -o "$WORK/bin/baseline" ./bench/baseline
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before the run: $LOAD_BEFORE"

COMMON=(--subjects "$SUBJECTS" --types 3)
BATCH_ARGS=(--mode batch --batch "$BATCH" --clients "$BATCH_CLIENTS" --events "$EVENTS" --dup-rate "$DUP_RATE" "${COMMON[@]}")
SINGLE_ARGS=(--mode single --clients "$SINGLE_CLIENTS" --events "$SINGLE_EVENTS" --dup-rate "$DUP_RATE" "${COMMON[@]}")

# ---------------------------------------------------------------- Odometer
KEEP_URL="" KEEP_SIZE=""
if [[ $EMBEDDED == 0 ]]; then RUNS_EMBEDDED=0 QUERY_SIZES=""; else RUNS_EMBEDDED=$RUNS; fi
for ((r = 1; r <= RUNS_EMBEDDED; r++)); do
	log "Odometer (a) batch ingestion, run $r/$RUNS: $EVENTS events"
	start_odometer "odometer-batch-$r"
	if [[ -n $PROFILE_DIR && $r -eq 1 ]]; then
		mkdir -p "$PROFILE_DIR"
		curl -fsS -o "$PROFILE_DIR/odometer-batch.cpu.pprof" --max-time 60 \
			"$SERVER_URL/debug/pprof/profile?seconds=15" 2>/dev/null &
		PROFILE_PID=$!
	fi
	loadgen "$RES/odo-batch-$r.json" --url "$SERVER_URL" --setup-meters --seed "$r" "${BATCH_ARGS[@]}"
	if [[ -n $PROFILE_DIR && $r -eq 1 ]]; then
		wait "$PROFILE_PID" || log "no CPU profile: the server has no /debug/pprof or the run was shorter than 15s"
	fi
	log "  data directory: $(du -sh "$SERVER_DATA" | cut -f1)"
	if ((r == RUNS_EMBEDDED)); then
		KEEP_PID=$SERVER_PID KEEP_URL=$SERVER_URL KEEP_DATA=$SERVER_DATA KEEP_SIZE=$EVENTS # (c) queries this store
	else
		stop_odometer "$SERVER_PID" "$SERVER_DATA"
	fi
done

for ((r = 1; r <= RUNS_EMBEDDED; r++)); do
	log "Odometer (b) single-event requests, run $r/$RUNS: $SINGLE_EVENTS events"
	start_odometer "odometer-single-$r"
	loadgen "$RES/odo-single-$r.json" --url "$SERVER_URL" --setup-meters --seed "$r" "${SINGLE_ARGS[@]}"
	stop_odometer "$SERVER_PID" "$SERVER_DATA"
done

# The size the last (a) run left goes first, on that run's store; the
# others are loaded into fresh stores.
sizes=()
for size in $QUERY_SIZES; do
	if [[ $size == "$EVENTS" ]]; then sizes=("$size" "${sizes[@]}"); else sizes+=("$size"); fi
done
for size in "${sizes[@]}"; do
	if [[ $size == "$EVENTS" && -n $KEEP_URL && $KEEP_SIZE == "$EVENTS" ]]; then
		url=$KEEP_URL
		log "Odometer (c) queries at $size stored events (the last batch run's store)"
	else
		[[ -z $KEEP_URL ]] || stop_odometer "$KEEP_PID" "$KEEP_DATA"
		log "Odometer (c) loading $size events for the query benchmark"
		start_odometer "odometer-query-$size"
		KEEP_PID=$SERVER_PID KEEP_URL=$SERVER_URL KEEP_DATA=$SERVER_DATA KEEP_SIZE=$size url=$SERVER_URL
		loadgen "$RES/load-$size.json" --url "$url" --setup-meters --seed 99 --mode batch --batch "$BATCH" \
			--clients "$BATCH_CLIENTS" --events "$size" --dup-rate 0 "${COMMON[@]}"
	fi
	if ((QUERY_SETTLE > 0)); then
		log "Odometer (c) waiting ${QUERY_SETTLE}s for the usage cache to trust the loaded backfill"
		sleep "$QUERY_SETTLE"
	fi
	for ((r = 1; r <= RUNS; r++)); do
		log "Odometer (c) queries at $size stored events, run $r/$RUNS: $QUERY_DURATION, $QUERY_CLIENTS clients"
		loadgen "$RES/odo-query-$size-$r.json" --url "$url" --mode query --clients "$QUERY_CLIENTS" \
			--duration "$QUERY_DURATION" --seed "$r" --subjects "$SUBJECTS" --meter tokens
	done
done
[[ -z $KEEP_URL ]] || stop_odometer "$KEEP_PID" "$KEEP_DATA"

# ---------------------------------------------------------------- baseline
if [[ $BASELINE == 1 ]]; then
	ensure_postgres
	for ((r = 1; r <= RUNS; r++)); do
		log "baseline (d) batch ingestion, run $r/$RUNS: $EVENTS events"
		start_baseline "baseline-batch-$r"
		loadgen "$RES/base-batch-$r.json" --url "$SERVER_URL" --seed "$r" "${BATCH_ARGS[@]}"
		stop_server
		pg_runs batch "$r" "${BATCH_ARGS[@]}"
	done
	for ((r = 1; r <= RUNS; r++)); do
		log "baseline (d) single-event requests, run $r/$RUNS: $SINGLE_EVENTS events"
		start_baseline "baseline-single-$r"
		loadgen "$RES/base-single-$r.json" --url "$SERVER_URL" --seed "$r" "${SINGLE_ARGS[@]}"
		stop_server
		pg_runs single "$r" "${SINGLE_ARGS[@]}"
	done
fi

# ---------------------------------------------------------------- report
# med NAME KEY: median of KEY over the runs of NAME ("odo-batch", ...).
med() {
	local files=("$RES/$1"-[0-9]*.json)
	[[ -e ${files[0]} ]] || { echo "n/a"; return; }
	median "$2" "${files[@]}"
}

table() {
	local ob bb os bs
	echo "Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(go version | awk '{print $3, $4}')"
	echo "Medians of $RUNS runs, $(date -u +%Y-%m-%d). Load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	echo "| benchmark | Odometer | baseline | Odometer/baseline |"
	echo "|---|---:|---:|---:|"
	ob=$(med odo-batch events_per_sec) bb=$(med base-batch events_per_sec)
	echo "| (a) batch ingestion, $EVENTS events in $BATCH-event batches, $BATCH_CLIENTS clients: events/s | $(num "$ob") | $(num "$bb") | $(ratio "$ob" "$bb") |"
	ob=$(med odo-batch p50_ms) bb=$(med base-batch p50_ms)
	echo "| (a) request latency p50, ms | $(num "$ob") | $(num "$bb") | $(ratio "$ob" "$bb") |"
	ob=$(med odo-batch p99_ms) bb=$(med base-batch p99_ms)
	echo "| (a) request latency p99, ms | $(num "$ob") | $(num "$bb") | $(ratio "$ob" "$bb") |"
	os=$(med odo-single events_per_sec) bs=$(med base-single events_per_sec)
	echo "| (b) single-event requests, $SINGLE_EVENTS events, $SINGLE_CLIENTS clients: events/s | $(num "$os") | $(num "$bs") | $(ratio "$os" "$bs") |"
	os=$(med odo-single p50_ms) bs=$(med base-single p50_ms)
	echo "| (b) request latency p50, ms | $(num "$os") | $(num "$bs") | $(ratio "$os" "$bs") |"
	os=$(med odo-single p99_ms) bs=$(med base-single p99_ms)
	echo "| (b) request latency p99, ms | $(num "$os") | $(num "$bs") | $(ratio "$os" "$bs") |"
	for n in $ODOMETER_PG_NODES; do
		ob=$(med "pg$n-batch" events_per_sec) bb=$(med base-batch events_per_sec)
		echo "| (e) Odometer on PostgreSQL, $n node(s): (a) batch ingestion, events/s | $(num "$ob") | $(num "$bb") | $(ratio "$ob" "$bb") |"
		os=$(med "pg$n-single" events_per_sec) bs=$(med base-single events_per_sec)
		echo "| (e) Odometer on PostgreSQL, $n node(s): (b) single-event requests, events/s | $(num "$os") | $(num "$bs") | $(ratio "$os" "$bs") |"
	done
	for size in $QUERY_SIZES; do
		echo "| (c) usage query at $size stored events, $QUERY_CLIENTS clients: queries/s | $(num "$(med "odo-query-$size" requests_per_sec)") | — | — |"
		echo "| (c) query latency p50 / p99, ms | $(num "$(med "odo-query-$size" p50_ms)") / $(num "$(med "odo-query-$size" p99_ms)") | — | — |"
		echo "| (c) p50 of a subject's first query in a run (read from events) / of later ones, ms | $(num "$(med "odo-query-$size" first_p50_ms)") / $(num "$(med "odo-query-$size" repeat_p50_ms)") | — | — |"
	done
}

table >"$RES/results.md"
echo
cat "$RES/results.md"
[[ -z $OUT_DIR ]] || log "results.md and the raw loadgen reports are in $OUT_DIR"
