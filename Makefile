# cohort — see README.md. `make` builds build/cohort; `make test` runs every test;
# `make run` starts the bot (the console chat when no platform is configured).

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
SHAREDIR = $(PREFIX)/share/cohort
# Where the installed example configuration keeps the store (the systemd unit's StateDirectory).
STATEDIR ?= /var/lib/cohort
UNITDIR = $(PREFIX)/lib/systemd/system
CC ?= cc
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3

# SANITIZE=address,undefined builds into its own tree so objects never mix.
ifneq ($(SANITIZE),)
BUILD ?= build/sanitize
SAN_FLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
endif

# V=1 shows full command lines.
ifeq ($(V),1)
Q =
else
Q = @
endif

PKGS = sqlite3 libpq libcjson libcurl libwebsockets openssl
DEPS_OK := $(shell $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null && echo yes)
PKG_CFLAGS = $(if $(DEPS_OK),$(shell $(PKG_CONFIG) --cflags $(PKGS)))
PKG_LIBS = $(if $(DEPS_OK),$(shell $(PKG_CONFIG) --libs $(PKGS)))

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
       -Wno-format-nonliteral -Werror
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(SAN_FLAGS) $(PKG_CFLAGS) \
             -I. -MMD -MP $(CFLAGS)
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)
LIBS = $(PKG_LIBS) -lpthread

# The product core (bot/), the store, and the console adapter; main.c is the CLI.
CORE_SRC = lib/err.c lib/util.c lib/log.c lib/text.c lib/clock.c lib/toml.c lib/metrics.c bot/config.c \
           bot/roadmap.c bot/rmset.c bot/rmcmd.c bot/reply.c bot/bot.c bot/commands.c bot/leaderboard.c bot/digest.c \
           bot/scheduler.c bot/outbox.c bot/page.c bot/export.c bot/cmdline.c bot/goal.c bot/fix.c bot/remind.c bot/link.c lib/mailbox.c bot/dispatch.c store/store.c store/sqlite.c store/postgres.c \
           adapters/console.c adapters/http.c adapters/idset.c adapters/discord/gateway.c \
           adapters/discord/render.c adapters/discord/discord.c adapters/discord/interactions.c \
           adapters/matrix/matrix.c adapters/attempts.c adapters/web/web.c adapters/web/pages.c
CORE_OBJ = $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/default_roadmap.o
MAIN_OBJ = $(BUILD)/cli/main.o $(BUILD)/cli/keeper.o

UNIT_TESTS = test_text test_toml test_config test_roadmap test_store test_commands test_clock \
             test_leaderboard test_digest test_log test_discord test_adapters test_mailbox test_dispatch \
             test_feeds test_interactions test_metrics
UNIT_TESTS += test_goal
UNIT_TESTS += test_page
UNIT_TESTS += test_link
UNIT_BINS = $(UNIT_TESTS:%=$(BUILD)/tests/%)

.PHONY: all run test unit integration deps deps-build install uninstall clean format fuzz bench bench-gateway bench-page bench-pg docker-test soak
all: $(BUILD)/cohort

$(BUILD)/cohort: $(CORE_OBJ) $(MAIN_OBJ) | check-deps
	@echo "  LINK    $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/%.o: %.c | check-deps
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The default roadmap is compiled in, so the binary works wherever it is copied.
$(BUILD)/gen/default_roadmap.c: roadmaps/backend.md scripts/embed.sh
	@mkdir -p $(dir $@)
	$(Q)sh scripts/embed.sh cohort_default_roadmap $< > $@

$(BUILD)/gen/default_roadmap.o: $(BUILD)/gen/default_roadmap.c
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(shell $(PKG_CONFIG) --cflags cmocka) $(ALL_LDFLAGS) -o $@ $(filter %.c %.o,$^) \
		$(LIBS) $(shell $(PKG_CONFIG) --libs cmocka)

.PHONY: check-deps
check-deps:
	@command -v $(firstword $(CC)) >/dev/null 2>&1 || { echo "no C compiler ($(CC)): run 'make deps' (as root) first" >&2; exit 1; }
	@$(PKG_CONFIG) --exists $(PKGS) 2>/dev/null || { echo "missing libraries: run 'make deps' (as root) first" >&2; exit 1; }

# Installs the Debian packages cohort and its tests need (as root), or prints the command;
# deps-build only what building and running need (the compiler included).
deps:
	@sh scripts/deps.sh test

deps-build:
	@sh scripts/deps.sh build

run: deps-build
	@$(MAKE) --no-print-directory $(BUILD)/cohort
	$(BUILD)/cohort run $(if $(CONFIG),-c $(CONFIG))

unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do $$t || fail=1; done; exit $$fail

integration: $(BUILD)/cohort
	COHORT_BIN=$(abspath $(BUILD)/cohort) $(PYTHON) -m pytest -q tests/integration

# A throwaway PostgreSQL (scripts/pg-test.sh) for the store's contract suite on PostgreSQL and
# the multi-process tests; stopped at the end, whatever the result.
test: deps
	@d=$$(sh scripts/pg-test.sh start) || exit 1; \
	trap 'sh scripts/pg-test.sh stop "$$d"' EXIT; trap 'exit 130' INT TERM; \
	export COHORT_TEST_PG_URL="$$(sh scripts/pg-test.sh url "$$d")"; \
	$(MAKE) --no-print-directory unit && $(MAKE) --no-print-directory integration

# Fuzzing (clang libFuzzer): each target runs FUZZ_SECONDS from its checked-in corpus
# (tests/fuzz/corpus/NAME); new inputs go to build/fuzz/corpus, crashes to build/fuzz/.
FUZZ_TARGETS = toml roadmap args gateway sync
FUZZ_SECONDS ?= 30
FUZZ_SRC = lib/err.c lib/util.c lib/log.c lib/text.c lib/toml.c bot/roadmap.c bot/cmdline.c
FUZZ_FLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -I. -g -O1 -Wall -Werror \
             -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_SRC) $(BUILD)/gen/default_roadmap.c
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang $(FUZZ_FLAGS) -o $@ $^

# The adapters' fuzzers run the whole program below the sockets: every module, the libraries.
ADAPTER_FUZZ_SRC = $(CORE_SRC) $(BUILD)/gen/default_roadmap.c
build/fuzz/fuzz_gateway build/fuzz/fuzz_sync: build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c \
		tests/fuzz/fuzz_host.h $(ADAPTER_FUZZ_SRC)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	$(Q)clang $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $< $(ADAPTER_FUZZ_SRC) $(PKG_LIBS) -lpthread

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus/$$t; \
		echo "== fuzz_$$t for $(FUZZ_SECONDS)s"; \
		if ! build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
			-print_final_stats=1 -artifact_prefix=build/fuzz/$$t- \
			build/fuzz/corpus/$$t tests/fuzz/corpus/$$t > build/fuzz/$$t.log 2>&1; then \
			tail -n 40 build/fuzz/$$t.log; exit 1; \
		fi; \
		grep -E "^stat::(number_of_executed_units|peak_rss_mb)" build/fuzz/$$t.log; \
	done

# Soak: SOAK_SECONDS of chaos against the fake Discord with the plain build (memory must
# stay flat), then again with AddressSanitizer + UBSan (a clean exit: no leaks).
SOAK_SECONDS ?= 60
# Then SOAK_KILL_SECONDS of kill -9 every 0.7-2.5 s during a burst on Discord and Matrix at
# once: 0 lost and 0 doubled answers (tests/integration/soak_crash.py).
SOAK_KILL_SECONDS ?= 30
soak: deps
	@$(MAKE) --no-print-directory build/cohort
	@$(MAKE) --no-print-directory SANITIZE=address,undefined build/sanitize/cohort
	SOAK_SECONDS=$(SOAK_SECONDS) COHORT_BIN=$(abspath build/cohort) \
		$(PYTHON) -m pytest -q -s tests/integration/soak_discord.py
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_SANITIZED=1 COHORT_BIN=$(abspath build/sanitize/cohort) \
		ASAN_OPTIONS=detect_leaks=1 $(PYTHON) -m pytest -q -s tests/integration/soak_discord.py
	SOAK_KILL_SECONDS=$(SOAK_KILL_SECONDS) COHORT_BIN=$(abspath build/cohort) \
		$(PYTHON) -m pytest -q -s tests/integration/soak_crash.py

# Benchmarks against the budgets of DESIGN section 9 (a measurement, not a test).
$(BUILD)/bench/%: bench/%.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@echo "  BENCH   $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LIBS)

# The gateway benchmark (build/cohort through the fake Discord at BENCH_RATE/s), then the
# store's (about 7 minutes), the group page's, then PostgreSQL's (about 13 minutes).
# make bench-gateway, bench-page or bench-pg runs only one.
bench: bench-gateway $(BUILD)/bench/bench_store bench-page
	$(BUILD)/bench/bench_store $(BUILD)/bench
	@$(MAKE) --no-print-directory bench-pg

# The PostgreSQL rows of DESIGN §9 on a private cluster with fsync on (scripts/pg-test.sh start --fsync; the
# test cluster runs with -F): the settings that matter are read back from the server.
# BENCH_PG_ARGS="--scores 2000": only the derivation and the leaderboards, on 2,000 x 100.
bench-pg: deps $(BUILD)/bench/bench_pg
	@d=$$(sh scripts/pg-test.sh start --fsync) || exit 1; \
	trap 'sh scripts/pg-test.sh stop "$$d"' EXIT; trap 'exit 130' INT TERM; \
	url=$$(sh scripts/pg-test.sh url "$$d"); \
	echo "PostgreSQL $$(psql -XAtq "$$url" -c 'SHOW server_version'): fsync" \
		"$$(psql -XAtq "$$url" -c 'SHOW fsync'), synchronous_commit" \
		"$$(psql -XAtq "$$url" -c 'SHOW synchronous_commit'), a Unix socket, this machine's disk"; \
	$(BUILD)/bench/bench_pg "$$url" $(BENCH_PG_ARGS)

# The group's page (DESIGN §9): a 10,000-member group read from the store and rendered.
bench-page: $(BUILD)/bench/bench_page
	$(BUILD)/bench/bench_page $(BUILD)/bench $(BUILD)/bench/page-10000.html

bench-gateway: deps
	@$(MAKE) --no-print-directory $(BUILD)/cohort
	COHORT_BIN=$(abspath $(BUILD)/cohort) $(PYTHON) bench/gateway_bench.py

# The binary, the man page, the default roadmap as a file to copy and edit, the example
# configuration, and an example systemd unit (PREFIX=/usr puts it where systemd looks).
install: $(BUILD)/cohort
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SHAREDIR)
	install -m 755 $(BUILD)/cohort $(DESTDIR)$(BINDIR)/cohort
	install -m 644 dist/cohort.1 $(DESTDIR)$(MANDIR)/man1/cohort.1
	install -m 644 roadmaps/backend.md $(DESTDIR)$(SHAREDIR)/backend.md
	sed 's|^path = "cohort.db"|path = "$(STATEDIR)/cohort.db"|' config.example.toml \
		> $(DESTDIR)$(SHAREDIR)/cohort.toml.example
	chmod 644 $(DESTDIR)$(SHAREDIR)/cohort.toml.example
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/bin/cohort|$(BINDIR)/cohort|' dist/cohort.service > $(DESTDIR)$(UNITDIR)/cohort.service
	chmod 644 $(DESTDIR)$(UNITDIR)/cohort.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cohort $(DESTDIR)$(MANDIR)/man1/cohort.1
	rm -f $(DESTDIR)$(SHAREDIR)/backend.md $(DESTDIR)$(SHAREDIR)/cohort.toml.example
	rm -f $(DESTDIR)$(UNITDIR)/cohort.service
	-rmdir $(DESTDIR)$(SHAREDIR)

# Builds the image and runs it (needs root and Debian's docker.io + debootstrap), or
# lints the Dockerfile and runs its steps here when no Docker engine can start.
docker-test:
	sh scripts/docker-test.sh

format:
	clang-format -i $(shell find lib store bot adapters cli tests/unit tests/fuzz bench -name '*.[ch]')

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
