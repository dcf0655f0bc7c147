#!/bin/sh
# A private PostgreSQL for `make bench`, with fsync ON (unlike scripts/pg-test.sh, whose
# -F makes commits cheap and would flatter the numbers).
#   sh bench/pg-bench.sh start      prints the directory (data, log, Unix socket in it)
#   sh bench/pg-bench.sh stop DIR   stops that server and removes DIR
# initdb refuses to run as root, so as root the server runs as the postgres user.
set -eu
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
case "${1:-}" in
start)
	[ -x "$bin/initdb" ] || {
		echo "pg-bench.sh: no PostgreSQL server in $bin (run 'make deps' as root)" >&2
		exit 1
	}
	d=$(mktemp -d /tmp/cohort-pgbench-XXXXXX)
	[ "$(id -u)" -eq 0 ] && chown postgres "$d"
	if ! as_owner "$bin/initdb" -D "$d/data" -A trust -U cohort >"$d/initdb.log" 2>&1; then
		cat "$d/initdb.log" >&2
		rm -rf "$d"
		exit 1
	fi
	if ! as_owner "$bin/pg_ctl" -D "$d/data" -l "$d/log" -w \
		-o "-k $d -c listen_addresses='' -c fsync=on -c max_connections=50" start >/dev/null; then
		cat "$d/log" >&2
		rm -rf "$d"
		exit 1
	fi
	echo "$d"
	;;
stop)
	d=${2:?usage: pg-bench.sh stop DIR}
	case "$d" in /tmp/cohort-pgbench-*) ;; *) echo "pg-bench.sh: not a bench server: $d" >&2; exit 2 ;; esac
	as_owner "$bin/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$d"
	;;
*)
	echo "usage: sh bench/pg-bench.sh start | stop DIR" >&2
	exit 2
	;;
esac
