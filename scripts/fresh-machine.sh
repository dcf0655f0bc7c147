#!/bin/sh
# Runs inside a bare Debian 12 (debootstrap minbase: no compiler, no libraries) as root, in
# a copy of the committed tree: the README's quick start as a new user types it, timed and
# bounded. scripts/docker-test.sh fresh starts it in a fresh container.
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; then
	echo "fresh: a compiler is already installed: this is not a bare machine" >&2
	exit 3
fi
# A new user's only prerequisite: make.
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends make; } >/tmp/apt.log 2>&1; then
	cat /tmp/apt.log
	exit 2
fi

t0=$(date +%s)
if ! out=$(printf '/done Kafka\n/progress\n' | timeout "${FRESH_RUN_TIMEOUT:-900}" make run 2>/tmp/run.err); then
	echo "$out"
	tail -30 /tmp/run.err
	echo "fresh: make run failed" >&2
	exit 4
fi
t1=$(date +%s)
if ! echo "$out" | grep -q "finished Kafka"; then
	echo "$out"
	echo "fresh: make run did not answer /done Kafka" >&2
	exit 5
fi
echo "fresh: make run answered /done Kafka in $((t1 - t0)) s (installing the build packages, building, running)"

if ! timeout "${FRESH_TEST_TIMEOUT:-1800}" make test >/tmp/test.log 2>&1; then
	tail -60 /tmp/test.log
	echo "fresh: make test failed" >&2
	exit 6
fi
t2=$(date +%s)
grep -E "passed" /tmp/test.log | tail -1
echo "fresh: make test passed in $((t2 - t1)) s (installing the test packages, building, every test)"

# --no-install-recommends kept out what the packages merely recommend: codecs and image
# libraries (libcurl's, libwebsockets'), Chromium's sandbox helper, Prometheus's node
# exporter, PostgreSQL's sysstat. (Chromium itself depends on fontconfig and libx11-6.)
extra=""
for p in libx265-199 libgd3 chromium-sandbox prometheus-node-exporter sysstat; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		extra="$extra $p"
	fi
done
if [ -n "$extra" ]; then
	echo "fresh: recommended packages were installed:$extra" >&2
	exit 7
fi
echo "fresh: $(dpkg-query -W -f='${Status}\n' | grep -c 'install ok installed') packages installed in all"
