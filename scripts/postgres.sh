#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks, on 127.0.0.1 only.
#
#   scripts/postgres.sh start DIR   initdb DIR (if new), start the server and print its URL
#   scripts/postgres.sh stop DIR    stop the server (the directory stays)
#   scripts/postgres.sh url DIR     print the URL of a server started with DIR
#
# It uses initdb/pg_ctl from PATH or /usr/lib/postgresql/*/bin, and installs
# Debian's postgresql package when there are none and it runs as root. As
# root the server runs as the postgres user. fsync stays on: tests and
# benchmarks must see what a production server does. POSTGRES_OPTIONS adds
# server settings, e.g. "-c shared_buffers=1GB".
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

pgbin() {
	if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
		dirname "$(command -v initdb)"
		return
	fi
	local bin
	bin=$(find /usr/lib/postgresql -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n1 || true)
	if [[ -z $bin || ! -x $bin/initdb ]]; then
		[[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed: apt-get install postgresql"
		echo "postgres.sh: installing Debian's postgresql package" >&2
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
		bin=$(find /usr/lib/postgresql -maxdepth 2 -type d -name bin | sort -V | tail -n1)
	fi
	echo "$bin"
}

free_port() {
	python3 - <<'EOF' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}

as_owner() {
	if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || die "usage: postgres.sh start|stop|url DIR"

case $cmd in
start)
	bin=$(pgbin)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
	if [[ ! -f $dir/PG_VERSION ]]; then
		as_owner "$bin/initdb" -D "$dir" -U postgres -A trust --no-sync >/dev/null
		echo "$(free_port)" >"$dir/odometer-port"
	fi
	port=$(cat "$dir/odometer-port")
	as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
		-o "-p $port -c unix_socket_directories= -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300 -c shared_buffers=256MB ${POSTGRES_OPTIONS:-}" \
		start >/dev/null || { tail -n 20 "$dir/server.log" >&2; die "the server did not start"; }
	echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	;;
stop)
	bin=$(pgbin)
	as_owner "$bin/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null
	;;
url)
	echo "postgres://postgres@127.0.0.1:$(cat "$dir/odometer-port")/postgres?sslmode=disable"
	;;
*)
	die "unknown command $cmd"
	;;
esac
