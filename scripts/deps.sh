#!/bin/sh
# Installs the Debian 12 packages cohort needs, on a machine that may have nothing
# installed, not even a compiler.
#   sh scripts/deps.sh build   what `make` and `make run` need (compiler, libc headers, libraries)
#   sh scripts/deps.sh [test]  that, and what `make test` needs (the default)
# As root it runs apt-get (with --no-install-recommends, only when something is missing, so
# a second run is silent and instant); otherwise it prints the command to run.
set -eu
build="gcc libc6-dev pkg-config libsqlite3-dev libpq-dev libcjson-dev libcurl4-openssl-dev libwebsockets-dev
       libssl-dev
       ca-certificates tzdata"
test="libcmocka-dev python3-pytest python3-aiohttp postgresql-15 python3-cryptography prometheus
      chromium"
case "${1:-test}" in
build) pkgs=$build ;;
test) pkgs="$build $test" ;;
*)
	echo "usage: sh scripts/deps.sh [build|test]" >&2
	exit 2
	;;
esac

missing=""
for p in $pkgs; do
	# dpkg -s also succeeds for a package removed with its configuration kept.
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "cohort needs these Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
