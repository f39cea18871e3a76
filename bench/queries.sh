#!/usr/bin/env bash
# bench/queries.sh — how usage queries scale with the events stored: for
# each size in $SIZES, a fresh `odometer serve` on a fresh store ($STORE) is
# loaded with that many events by bench/loadgen (10,000 subjects, three
# event types and meters, times spread over 30 days, 1,000-event batches
# from 8 clients), then 4 clients ask, for $DURATION each, three shapes of
# query of the `tokens` meter (SUM, grouped by model) over the month:
#
#   subject      one random customer's month by DAY and model
#   all          every customer's month by DAY and model
#   per-subject  every customer's total over the month (groupBy=subject)
#
# It prints a Markdown table of the medians of $RUNS runs per shape and
# size (p50 and p99 latency, queries/s), and each shape's p50 ratio from
# the smallest size to the largest. Runs of one size alternate between
# shapes; with ODOMETER_BASE set, they alternate between that binary and
# this checkout's on stores loaded the same way.
#
# Knobs (environment variables):
#   SIZES="200000 2000000 20000000"   stored events
#   STORE=embedded     embedded (Pebble and SQLite), sqlite (--event-log sqlite)
#                      or postgres: a fresh database per server on POSTGRES_URL, or
#                      on a throwaway server (scripts/postgres.sh) when it is unset
#   ODOMETER_FLAGS=    more flags for every odometer serve
#   DURATION=20s  CLIENTS=4  RUNS=3    per query run
#   SHAPES="subject all per-subject"
#   ODOMETER_BIN=      run this odometer binary instead of building the checkout's
#   ODOMETER_BASE=     also run this odometer binary (e.g. an older commit's build), alternating
#   SETTLE=0           seconds to wait after loading (an older binary's in-memory cache
#                      trusts a backfill only after 5 minutes: 330 measures it warm)
#   OUT_DIR=           keep the table, loadgen's reports and the server logs there
#
# Everything listens on 127.0.0.1; servers and data directories are removed
# on exit. A 20M-event store takes about 8 GB of disk.
set -euo pipefail

SIZES=${SIZES:-200000 2000000 20000000}
DURATION=${DURATION:-20s}
CLIENTS=${CLIENTS:-4}
RUNS=${RUNS:-3}
SHAPES=${SHAPES:-subject all per-subject}
ODOMETER_BIN=${ODOMETER_BIN:-}
ODOMETER_BASE=${ODOMETER_BASE:-}
SETTLE=${SETTLE:-0}
OUT_DIR=${OUT_DIR:-}
STORE=${STORE:-embedded}
POSTGRES_URL=${POSTGRES_URL:-}
read -r -a ODOMETER_FLAGS <<<"${ODOMETER_FLAGS:-}"
case $STORE in
embedded) ;;
sqlite) ODOMETER_FLAGS+=(--event-log sqlite) ;;
postgres) ;;
*) echo "STORE must be embedded, sqlite or postgres; got $STORE" >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORK=$(mktemp -d "${TMPDIR:-/tmp}/odometer-queries.XXXXXX")
PIDS=()
log() { printf '[queries %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

stop() {
	local pid=$1 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
PGDATA_DIR="" DBS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do stop "$pid"; done
	[[ -n $PGDATA_DIR ]] && scripts/postgres.sh stop "$PGDATA_DIR" >/dev/null 2>&1
	rm -rf "$WORK" ${PGDATA_DIR:+"$PGDATA_DIR"}
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v curl >/dev/null || die "curl is required"

RES=${OUT_DIR:-$WORK/res}
mkdir -p "$WORK/bin" "$RES"
go build -o "$WORK/bin/loadgen" ./bench/loadgen
if [[ -z $ODOMETER_BIN ]]; then
	go build -o "$WORK/bin/odometer" ./cmd/odometer
	ODOMETER_BIN=$WORK/bin/odometer
fi
BINS=(new)
declare -A BIN=([new]=$ODOMETER_BIN)
if [[ -n $ODOMETER_BASE ]]; then
	BINS=(base new)
	BIN[base]=$ODOMETER_BASE
fi

if [[ $STORE == postgres && -z $POSTGRES_URL ]]; then
	PGDATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/odometer-queries-pg.XXXXXX")
	# The settings bench/run.sh uses; fsync stays on.
	POSTGRES_URL=$(POSTGRES_OPTIONS="-c max_connections=200 -c shared_buffers=1GB -c max_wal_size=8GB" \
		scripts/postgres.sh start "$PGDATA_DIR")
	log "started a throwaway $(psql "$POSTGRES_URL" -Atc 'show server_version') on ${POSTGRES_URL#*@}"
fi

# start NAME BIN: a fresh server on an empty data directory (and, on
# PostgreSQL, a new database); sets URL, PID, DATA.
start() {
	local logfile=$RES/$1.log addr="" i db pg=()
	DATA=$(mktemp -d "$WORK/data.XXXXXX")
	: >"$logfile"
	if [[ $STORE == postgres ]]; then
		db="odometer_queries_$(date +%s%N)"
		psql "$POSTGRES_URL" -qAtc "CREATE DATABASE $db" >/dev/null
		DBS+=("$db")
		pg=(--postgres "$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$POSTGRES_URL" "$db")")
	fi
	env -u ODOMETER_POSTGRES -u ODOMETER_CONFIG -u ODOMETER_ADDR -u ODOMETER_DATA \
		"$2" serve --data "$DATA" --addr 127.0.0.1:0 "${pg[@]}" "${ODOMETER_FLAGS[@]}" 2>>"$logfile" >/dev/null &
	PID=$!
	PIDS+=("$PID")
	for ((i = 0; i < 300; i++)); do
		addr=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' "$logfile" | head -n1) || true
		[[ -n $addr ]] && break
		kill -0 "$PID" 2>/dev/null || { cat "$logfile" >&2; die "odometer exited at start"; }
		sleep 0.1
	done
	[[ -n $addr ]] || die "odometer did not log its address within 30 s"
	URL="http://${addr//\"/}"
	for ((i = 0; i < 300; i++)); do
		curl -fsS -o /dev/null --max-time 2 "$URL/readyz" && return 0
		sleep 0.1
	done
	die "odometer at $URL is not ready after 30 s"
}

field() { sed -n "s/.*\"$2\":\\([-0-9.e+]*\\).*/\\1/p" "$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for size in $SIZES; do
	declare -A URLS=() SPIDS=()
	for b in "${BINS[@]}"; do
		log "$b: loading $size events"
		start "$b-$size" "${BIN[$b]}"
		URLS[$b]=$URL SPIDS[$b]=$PID
		"$WORK/bin/loadgen" --json --url "$URL" --setup-meters --seed 99 --mode batch --batch 1000 --clients 8 \
			--events "$size" --dup-rate 0 --subjects 10000 --types 3 >"$RES/load-$b-$size.json"
		log "  $(field "$RES/load-$b-$size.json" events_per_sec) events/s; data directory $(du -sh "$DATA" | cut -f1)"
		# Wait for the rollups' backfills, where the binary has them.
		for ((i = 0; i < 3600; i++)); do
			state=$(curl -fsS "$URL/api/v1/meters/tokens" | sed -n 's/.*"usageRollup":{"state":"\([a-z]*\)".*/\1/p')
			[[ -z $state || $state == ready ]] && break
			sleep 1
		done
	done
	((SETTLE > 0)) && { log "waiting ${SETTLE}s"; sleep "$SETTLE"; }
	for ((r = 1; r <= RUNS; r++)); do
		for shape in $SHAPES; do
			for b in "${BINS[@]}"; do
				out=$RES/q-$b-$size-$shape-$r.json
				"$WORK/bin/loadgen" --json --url "${URLS[$b]}" --mode query --shape "$shape" --clients "$CLIENTS" \
					--duration "$DURATION" --seed "$r" --subjects 10000 --meter tokens >"$out" 2>"$RES/q-$b-$size-$shape-$r.err" ||
					die "query run failed: $(cat "$out" "$RES/q-$b-$size-$shape-$r.err")"
				log "$b $size $shape run $r: p50 $(field "$out" p50_ms) ms, p99 $(field "$out" p99_ms) ms, $(field "$out" requests_per_sec) q/s"
			done
		done
	done
	for b in "${BINS[@]}"; do
		stop "${SPIDS[$b]}"
	done
	rm -rf "$WORK"/data.*
	for db in "${DBS[@]}"; do psql "$POSTGRES_URL" -qAtc "DROP DATABASE $db" >/dev/null; done
	DBS=()
done

{
	echo "| build | shape | stored events | p50 ms | p99 ms | queries/s |"
	echo "|---|---|---:|---:|---:|---:|"
	for b in "${BINS[@]}"; do
		for shape in $SHAPES; do
			for size in $SIZES; do
				p50=$(for f in "$RES"/q-"$b-$size-$shape"-*.json; do field "$f" p50_ms; done | median)
				p99=$(for f in "$RES"/q-"$b-$size-$shape"-*.json; do field "$f" p99_ms; done | median)
				qps=$(for f in "$RES"/q-"$b-$size-$shape"-*.json; do field "$f" requests_per_sec; done | median)
				echo "| $b | $shape | $size | $p50 | $p99 | $qps |"
			done
		done
	done
	first=${SIZES%% *} last=${SIZES##* }
	echo
	for b in "${BINS[@]}"; do
		for shape in $SHAPES; do
			a=$(for f in "$RES"/q-"$b-$first-$shape"-*.json; do field "$f" p50_ms; done | median)
			z=$(for f in "$RES"/q-"$b-$last-$shape"-*.json; do field "$f" p50_ms; done | median)
			awk -v b="$b" -v s="$shape" -v a="$a" -v z="$z" -v f="$first" -v l="$last" \
				'BEGIN { if (a > 0) printf "%s %s: p50 %.2f× from %s to %s events\n", b, s, z / a, f, l }'
		done
	done
} | tee "$RES/results.md"
