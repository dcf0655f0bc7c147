#!/bin/sh
# Installs the Debian 12 packages cohort builds and tests with. As root it
# runs apt-get (only when something is missing); otherwise it prints the line.
set -eu
pkgs="libsqlite3-dev libcjson-dev libcurl4-openssl-dev libwebsockets-dev pkg-config libcmocka-dev
      python3-pytest python3-aiohttp tzdata ca-certificates"
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "cohort needs these Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q $missing >&2
