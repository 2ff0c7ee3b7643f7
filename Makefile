# mod_bw_counter: every set-up step, from a fresh Debian 12 machine.
#
#   make demo      install what is missing, build, run a private MariaDB and a
#                  lighttpd with the module on 127.0.0.1:8080, make traffic,
#                  print the table, clean up
#   make test      install what is missing, check formatting and lints, run
#                  all unit and integration tests (real lighttpd, real MariaDB)
#                  against the installed lighttpd and each of RELEASES
#   make test-releases
#                  only the integration tests against each of RELEASES
#   make build     the module: target/release/libmod_bw_counter.so, and the
#                  report tool: target/release/bw-report
#   make install   install the module as mod_bw_counter.so next to lighttpd's
#                  modules (MODULES_DIR=... to choose the directory), and
#                  bw-report as $(DESTDIR)/usr/bin/bw-report
#   make deb       the Debian package lighttpd-mod-bw-counter, into
#                  target/debian/ (prints its path)
#   make automake-proof
#                  build lighttpd's own source tree with Makefile.am.snippet
#                  applied, and load the module it built into that lighttpd
#   make fuzz      run the fuzz targets (FUZZ_SECONDS=180 each)
#   make bench     benchmarks (by hand, not in CI): figures and ratios, see
#                  bench/RESULTS.md
#
# LIGHTTPD_SRC=/path/to/lighttpd-1.4.x builds against that tree instead of
# the headers fetched for the installed lighttpd.

SHELL := /bin/bash
CARGO ?= cargo
SO := target/release/libmod_bw_counter.so
REPORT := target/release/bw-report

# What building the module needs from Debian: the lighttpd it is built for
# (fetch.sh reads its version), bindgen's libclang, a C compiler for the
# shim, and what fetch.sh needs to unpack Debian's source package.
APT_PACKAGES := lighttpd libclang-dev clang gcc libc6-dev dpkg-dev xz-utils ca-certificates
# What the demo needs on top: a MariaDB to start privately, a client, the
# font bw-report draws PNG charts' text with, and Chromium to show what
# bw-report's html page looks like (the tests render it too).
APT_PACKAGES_DEMO := mariadb-server mariadb-client curl fonts-dejavu-core chromium
# What the tests need on top: MariaDB, the clients they drive lighttpd
# with, openssl for test certificates, libfaketime for the midnight test,
# Python's Prometheus parser for the status URL, Galera and the rsync its
# state transfers use for the cluster rig (Debian 12's mariadb-server
# pulls both in, but the rig uses them itself).
APT_PACKAGES_TEST := $(APT_PACKAGES_DEMO) faketime openssl nghttp2-client python3-h2 \
	python3-prometheus-client galera-4 rsync
# What the benchmarks need on top (load generator; mod_rrdtool's backend;
# callgrind, to count instructions per request).
APT_PACKAGES_BENCH := wrk rrdtool valgrind
# What the automake proof needs on top (lighttpd's own build).
APT_PACKAGES_AUTOMAKE := autoconf automake libtool pkg-config make gcc \
	libpcre2-dev zlib1g-dev
# What building other lighttpd releases needs on top (their TLS module).
APT_PACKAGES_RELEASES := $(APT_PACKAGES_AUTOMAKE) libssl-dev

# The other lighttpd releases make test runs the integration suite against,
# as Debian version:suite of the source package (Debian 13's, and sid's,
# the newest upstream release); the installed one (Debian 12's 1.4.69)
# is tested first.
RELEASES ?= 1.4.79-2:trixie 1.4.85-1:sid

# Where the installed lighttpd keeps its modules.
MODULES_DIR ?= $(shell for d in /usr/lib/lighttpd /usr/lib64/lighttpd /usr/local/lib/lighttpd; do \
	[ -f $$d/mod_accesslog.so ] && { echo $$d; break; }; done)

.PHONY: deb all deps deps-demo deps-test deps-automake deps-releases deps-bench headers build install test test-releases lint demo automake-proof fuzz bench clean

all: build

# Installs missing Debian packages (needs root; prints the command otherwise).
deps:
	@$(call apt_install,$(APT_PACKAGES))

deps-demo:
	@$(call apt_install,$(APT_PACKAGES_DEMO))

deps-test:
	@$(call apt_install,$(APT_PACKAGES_TEST))

deps-automake:
	@$(call apt_install,$(APT_PACKAGES_AUTOMAKE))

deps-releases:
	@$(call apt_install,$(APT_PACKAGES_RELEASES))

deps-bench:
	@$(call apt_install,$(APT_PACKAGES_BENCH))

define apt_install
missing=""; for p in $(1); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  if [ "$$(id -u)" != 0 ]; then echo "missing packages:$$missing; run: sudo apt-get install$$missing" >&2; exit 1; fi; \
  echo "installing:$$missing"; \
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
fi
endef

# The lighttpd headers bindgen reads: LIGHTTPD_SRC, or fetched for the
# installed lighttpd's version into lighttpd-headers/upstream/ (ignored).
headers:
	@if [ -n "$(LIGHTTPD_SRC)" ]; then echo "using LIGHTTPD_SRC=$(LIGHTTPD_SRC)"; \
	else lighttpd-headers/fetch.sh; fi

# Two invocations, not --workspace: the module is built alone, exactly as
# before there was a workspace (no feature of bw-report's dependencies
# unified into it).
build: deps headers
	$(CARGO) build --release
	$(CARGO) build --release -p bw-report

install: build
	@[ -n "$(MODULES_DIR)" ] || { echo "cannot find lighttpd's module directory; set MODULES_DIR=" >&2; exit 1; }
	install -D -m 0644 $(SO) $(DESTDIR)$(MODULES_DIR)/mod_bw_counter.so
	install -D -m 0755 $(REPORT) $(DESTDIR)/usr/bin/bw-report
	@echo "installed $(DESTDIR)$(MODULES_DIR)/mod_bw_counter.so; add \"mod_bw_counter\" to server.modules (see examples/lighttpd.conf)"
	@echo "installed $(DESTDIR)/usr/bin/bw-report (see README, Reports)"

lint: deps headers
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy --release --all-targets --features panic-test -- -D warnings

# cargo test does not rebuild the cdylib the integration tests load, so
# build it first (the tests refuse a stale one). The panic-test build (a
# hook that panics on purpose) has a target directory of its own, so the
# two builds never overwrite each other.
PANIC_TEST_TARGET := target/panic-test
test: deps deps-test headers lint
	$(CARGO) build --release --features panic-test --target-dir $(PANIC_TEST_TARGET)
	$(CARGO) build --release
	$(CARGO) build --release -p bw-report
	$(CARGO) test --release
	$(CARGO) test --release -p bw-report
	$(MAKE) automake-proof
	$(MAKE) test-releases

# The integration suite against each of RELEASES, built from Debian's source
# package under lighttpd-headers/upstream/release-*/ (cached there), with
# the module built against each tree (lighttpd-headers/test-release.sh).
test-releases: deps deps-test deps-releases
	@for r in $(RELEASES); do \
	  CARGO="$(CARGO)" lighttpd-headers/test-release.sh "$${r%%:*}" "$${r##*:}" || exit 1; \
	done

# A package like Debian's own lighttpd-mod-* (conf-available snippet for
# lighty-enable-mod, spool directory, Depends on the lighttpd release the
# module was built for): packaging/debian/build-deb.sh.
deb: build
	@packaging/debian/build-deb.sh $(SO) $(REPORT)

demo: build deps-demo
	examples/demo.sh $(SO)

automake-proof: deps deps-automake headers
	lighttpd-headers/automake-proof.sh

# Benchmarks print figures and ratios (A/B interleaved, medians); they are
# not tests and assert nothing about time. The lighttpd ones need the
# built module, like the tests.
bench: deps deps-test deps-bench headers
	$(CARGO) build --release
	$(CARGO) bench --bench hot_path
	$(CARGO) bench --bench flush
	$(CARGO) bench --bench lighttpd
	$(CARGO) bench --bench instructions
	$(CARGO) bench --bench status
	$(CARGO) bench --bench galera
	$(CARGO) bench --bench report_walk
	$(CARGO) bench -p bw-report --bench exporter

# Fuzz the parsers of outside input (option values, Host headers, spool
# files) with cargo-fuzz/libFuzzer, FUZZ_SECONDS each. cargo-fuzz wants a
# nightly compiler; RUSTC_BOOTSTRAP=1 lets the stable one stand in.
FUZZ_SECONDS ?= 180
FUZZ_TARGETS := config_values host_key spool_parse
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf .work
