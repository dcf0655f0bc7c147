#!/bin/sh
# A throwaway PostgreSQL for the tests: nothing depends on a system service.
#   sh scripts/pg-test.sh start        prints the directory (data, log, Unix socket in it)
#   sh scripts/pg-test.sh start --fsync   the same with fsync on, for benchmarks (make bench-pg)
#   sh scripts/pg-test.sh stop DIR     stops that server and removes DIR
#   sh scripts/pg-test.sh url DIR      the URL of its "postgres" database
# The server listens only on a Unix socket in DIR and runs with -F (no fsync: tests only),
# unless started with --fsync (benchmarks: -F makes commits cheap and flatters the numbers).
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
	durability=-F
	[ "${2:-}" = --fsync ] && durability="-c fsync=on"
	[ -x "$bin/initdb" ] || {
		echo "pg-test.sh: no PostgreSQL server in $bin (run 'make deps' as root)" >&2
		exit 1
	}
	d=$(mktemp -d /tmp/cohort-pg-XXXXXX)
	[ "$(id -u)" -eq 0 ] && chown postgres "$d"
	if ! as_owner "$bin/initdb" -D "$d/data" -A trust -U cohort >"$d/initdb.log" 2>&1; then
		cat "$d/initdb.log" >&2
		rm -rf "$d"
		exit 1
	fi
	if ! as_owner "$bin/pg_ctl" -D "$d/data" -l "$d/log" -w \
		-o "-k $d -c listen_addresses='' $durability -c max_connections=200" start >/dev/null; then
		cat "$d/log" >&2
		rm -rf "$d"
		exit 1
	fi
	echo "$d"
	;;
stop)
	d=${2:?usage: pg-test.sh stop DIR}
	case "$d" in /tmp/cohort-pg-*) ;; *) echo "pg-test.sh: not a test server: $d" >&2; exit 2 ;; esac
	as_owner "$bin/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$d"
	;;
url)
	d=${2:?usage: pg-test.sh url DIR}
	echo "postgresql://cohort@/postgres?host=$d"
	;;
*)
	echo "usage: sh scripts/pg-test.sh start [--fsync] | stop DIR | url DIR" >&2
	exit 2
	;;
esac
