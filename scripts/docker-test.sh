#!/bin/sh
# Shows that cohort works where a new user or a container puts it. Where a Docker engine can
# run (as root, with docker.io and debootstrap from Debian), it makes a bare Debian 12 base
# image (debootstrap minbase: no compiler, no libraries) and then:
#   image  builds the Dockerfile's image and runs its console job with piped input;
#   fresh  is a new user: the committed tree in a bare container with only make added,
#          then the README's quick start, `make run` (must answer a /done) and `make test`,
#          each timed and bounded.
# Where no engine can run, `image` lints the Dockerfile and runs its build and install steps
# in this same Debian, then the installed binary as an unprivileged user, as the image
# would; `fresh` cannot be shown without an engine and fails.
# Usage: sh scripts/docker-test.sh [--engine-only | --no-engine] [image] [fresh]
#        (no check named: image only)
set -eu
cd "$(dirname "$0")/.."
mode=auto
checks=""
for a in "$@"; do
	case "$a" in
	--engine-only | --no-engine) mode=$a ;;
	image | fresh) checks="$checks $a" ;;
	*) echo "usage: sh scripts/docker-test.sh [--engine-only | --no-engine] [image] [fresh]" >&2; exit 2 ;;
	esac
done
[ -n "$checks" ] || checks=image
work=$(mktemp -d /tmp/cohort-docker.XXXXXX)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && sleep 1
	[ -d "$work/exec" ] && umount -R "$work/exec" 2>/dev/null || true
	rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

fail() { echo "docker-test: $*" >&2; exit 1; }

# The checks a linter would make, for what this Dockerfile promises.
lint() {
	f=Dockerfile
	grep -q '^FROM debian:bookworm-slim AS build$' $f || fail "$f: the build stage is not debian:bookworm-slim"
	[ "$(grep -c '^FROM debian:bookworm-slim' $f)" -eq 2 ] || fail "$f: expected two bookworm-slim stages"
	grep -q '^USER cohort$' $f || fail "$f: the image must not run as root"
	grep -A1 '^HEALTHCHECK ' $f | grep -q '127.0.0.1:8080/healthz"' || fail "$f: no HEALTHCHECK on /healthz"
	grep -q '^STOPSIGNAL SIGTERM$' $f || fail "$f: no STOPSIGNAL"
	grep -q '^VOLUME \["/data"\]$' $f || fail "$f: the store is not on a volume"
	grep -q 'ca-certificates tzdata' $f || fail "$f: ca-certificates and tzdata must be in the image"
	if grep -n 'apt-get install' $f | grep -v -- '--no-install-recommends' >/dev/null; then
		fail "$f: apt-get install without --no-install-recommends"
	fi
	[ "$(grep -c 'rm -rf /var/lib/apt/lists' $f)" -eq 2 ] || fail "$f: apt lists left in a layer"
	if grep -n '^ADD \|:latest' $f >/dev/null; then fail "$f: ADD or a :latest tag"; fi
	echo "docker-test: Dockerfile lint OK"
}

# Starts a private dockerd and makes debian:bookworm-slim locally (no registry here).
engine() {
	command -v dockerd >/dev/null 2>&1 || return 1
	command -v debootstrap >/dev/null 2>&1 || return 1
	[ "$(id -u)" -eq 0 ] || return 1
	dockerd --data-root "$work/data" --exec-root "$work/exec" -H "unix://$work/docker.sock" \
		--pidfile "$work/pid" >"$work/dockerd.log" 2>&1 &
	pid=$!
	export DOCKER_HOST="unix://$work/docker.sock"
	i=0
	until docker info >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 30 ] && { tail -5 "$work/dockerd.log" >&2; return 1; }
		kill -0 "$pid" 2>/dev/null || { tail -5 "$work/dockerd.log" >&2; return 1; }
		sleep 1
	done
	if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
		mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
		debootstrap --variant=minbase bookworm "$work/rootfs" "${mirror:-http://deb.debian.org/debian}" \
			>"$work/debootstrap.log" 2>&1 || { tail -5 "$work/debootstrap.log" >&2; return 1; }
		tar -C "$work/rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
	fi
	return 0
}

with_engine() {
	docker build -t cohort:test . >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; fail "docker build failed"; }
	out=$(printf '/done Kafka\n/progress\n' | docker run --rm -i -e COHORT_CONFIG= cohort:test console --as ana)
	echo "$out" | grep -q "ana finished Kafka" || fail "the image's console did not answer: $out"
	[ "$(docker run --rm --entrypoint id cohort:test -u)" != 0 ] || fail "the image runs as root"
	docker run --rm cohort:test status --help | grep -q "usage: cohort status" || fail "no --help"
	# The HEALTHCHECK: cohort run with nothing but the image's HTTP server becomes healthy.
	cid=$(docker run -d --health-interval=1s -e COHORT_CONFIG= cohort:test run)
	i=0
	until [ "$(docker inspect -f '{{.State.Health.Status}}' "$cid")" = healthy ]; do
		i=$((i + 1))
		if [ $i -gt 60 ]; then
			docker logs "$cid" >&2
			docker rm -f "$cid" >/dev/null
			fail "the container never became healthy (HEALTHCHECK on /healthz)"
		fi
		sleep 1
	done
	docker rm -f "$cid" >/dev/null
	size=$(docker images cohort:test --format '{{.Size}}')
	base=$(docker images debian:bookworm-slim --format '{{.Size}}')
	echo "docker-test: image built and answered (image $size on a base of $base)"
}

without_engine() {
	# The build stage's steps.
	make -j2 BUILD="$work/build" CFLAGS="-O2 -g0" >/dev/null
	make install BUILD="$work/build" PREFIX=/usr DESTDIR="$work/out" >/dev/null
	strip "$work/out/usr/bin/cohort"
	for f in usr/bin/cohort usr/share/cohort/backend.md usr/share/cohort/cohort.toml.example \
		usr/share/man/man1/cohort.1 usr/lib/systemd/system/cohort.service; do
		[ -f "$work/out/$f" ] || fail "make install did not install $f"
	done
	# The runtime stage's user, volume and configuration, then the console job.
	mkdir -p "$work/data"
	run_as=""
	if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
		chown nobody "$work/data"
		chmod 755 "$work" "$work/out" "$work/out/usr" "$work/out/usr/bin"
		run_as="setpriv --reuid=nobody --regid=nogroup --clear-groups"
	fi
	out=$(cd "$work/data" && printf '/done Kafka\n/progress\n' |
		env -i PATH=/usr/bin:/bin COHORT_CONFIG= $run_as "$work/out/usr/bin/cohort" console --as ana)
	echo "$out" | grep -q "ana finished Kafka" || fail "the installed binary did not answer: $out"
	echo "docker-test: no Docker engine here; the Dockerfile's steps ran in this Debian and answered"
}

# A new user on a fresh Debian 12: the committed tree, make, and the README's two commands.
# FRESH_RUN_TIMEOUT and FRESH_TEST_TIMEOUT bound them (seconds).
fresh() {
	git rev-parse --verify -q HEAD >/dev/null || fail "fresh: not a git checkout (it tests the committed tree)"
	git archive --format=tar HEAD >"$work/tree.tar"
	docker rm -f cohort-fresh >/dev/null 2>&1 || true
	start=$(date +%s)
	docker run --rm -i --name cohort-fresh -e FRESH_RUN_TIMEOUT -e FRESH_TEST_TIMEOUT \
		debian:bookworm-slim sh -c 'mkdir /src && tar -x -C /src && exec sh /src/scripts/fresh-machine.sh' \
		<"$work/tree.tar" ||
		fail "fresh: the quick start failed on a bare Debian 12 (exit $?)"
	echo "docker-test: fresh Debian 12: both commands worked ($(($(date +%s) - start)) s in all)"
}

lint
have_engine=no
if [ "$mode" != "--no-engine" ] && engine; then
	have_engine=yes
elif [ "$mode" = "--engine-only" ]; then
	fail "no Docker engine could be started"
fi
for c in $checks; do
	t=$(date +%s)
	case "$c" in
	image) if [ $have_engine = yes ]; then with_engine; else without_engine; fi ;;
	fresh) [ $have_engine = yes ] || fail "fresh: needs a Docker engine (docker.io, debootstrap, root)"
	       fresh ;;
	esac
	echo "docker-test: $c took $(($(date +%s) - t)) s"
done
