# goheap: `make` builds the libraries, `make demo` runs a real program on
# goheap, `make test` runs every test. See README.md.
SHELL   := /bin/bash
CARGO   ?= cargo
PREFIX  ?= /usr/local
LIBDIR  := target/release
SO      := $(LIBDIR)/libgoheap.so
A       := $(LIBDIR)/libgoheap.a
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all lib setup header check-header check-symbols check-apple lint demo test test-rust test-c test-real test-install test-bench test-fuzz fuzz soak bench clean install

all: lib

setup:
	@scripts/setup build

# The shipped libraries are built without the rlib that `cargo test` needs
# (Cargo.toml): with an rlib among the crate types no symbol can be made
# local to the shared library, so every access to one of goheap's statics
# (the arena window, the size-class table) went through the GOT, a load more
# on malloc's and free's critical paths (2-4% on small-object workloads).
lib: setup
	$(CARGO) rustc --release --quiet --lib --crate-type cdylib,staticlib
	@ls -l $(SO) $(A) | awk '{print "built", $$NF, $$5, "bytes"}'

# The header is generated and committed; `make test` verifies it is current.
header:
	cbindgen --config cbindgen.toml --crate goheap --output include/goheap.h --quiet

check-header:
	cbindgen --config cbindgen.toml --crate goheap --output include/goheap.h --verify --quiet \
	  || { echo "include/goheap.h is stale: run 'make header'"; exit 1; }

# Formatting, lints, and the layering of src/ (each module imports only
# the layers below it: scripts/check-layers).
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --quiet --all-targets --no-default-features -- -D warnings
	$(CARGO) clippy --release --quiet -- -D warnings
	scripts/check-layers

# The C++ operators: exported by libgoheap.so, defined in libgoheap.a beside
# malloc, and no dependency on a C++ standard library (scripts/check-symbols).
check-symbols: lib
	scripts/check-symbols $(LIBDIR)

# macOS, checked without a Mac: type-check, clippy and the static library
# for aarch64- and x86_64-apple-darwin, and the zone, constructor and
# __interpose tuples read back with llvm-nm/llvm-objdump (scripts/check-apple;
# README, "macOS").
check-apple:
	scripts/check-apple

demo: lib
	@echo "== python3 scripts/demo.py, with goheap preloaded"
	LD_PRELOAD=$(CURDIR)/$(SO) python3 scripts/demo.py

test: lib
	@scripts/setup test
	$(MAKE) --no-print-directory check-header check-symbols check-apple lint test-rust test-c test-real test-install test-bench test-fuzz
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --release --no-default-features --quiet

test-c:
	tests-c/run.sh $(LIBDIR)

test-real:
	tests/real/run.sh $(LIBDIR)

# make install into a temporary prefix; C and C++ programs built through
# pkg-config against the shared and the static library.
test-install:
	scripts/test-install

# The harness's parsers first (unit checks), then every workload once.
test-bench:
	bench/smoke-test

# Fuzzing (fuzz/run.sh, stable toolchain): `make test` runs each target a
# fixed number of times from a fixed seed; `make fuzz` runs each for
# FUZZ_SECONDS (default 300).
FUZZ_RUNS ?= 1000
FUZZ_SECONDS ?= 300
test-fuzz:
	FUZZ_RUNS=$(FUZZ_RUNS) fuzz/run.sh smoke

fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh long

# Soak: SOAK_SECONDS (default 600) of a mixed multi-threaded workload with
# content and RSS checks (tests/soak/soak.c). Not part of `make test`.
SOAK_SECONDS ?= 600
soak: lib
	SOAK_SECONDS=$(SOAK_SECONDS) tests/soak/run.sh $(LIBDIR)

bench: lib
	scripts/bench

# pkg-config: goheap.pc (shared library) and goheap-static.pc (libgoheap.a),
# from pkgconfig/*.pc.in with PREFIX and the crate's version filled in.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

install: lib
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 scripts/bin/goheap scripts/bin/goheap-pprof scripts/bin/plot-stats $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(SO) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(A) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/goheap.h $(DESTDIR)$(PREFIX)/include/
	for pc in goheap goheap-static; do \
	  sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' pkgconfig/$$pc.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc && chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf tests-c/build bench/build tests/soak/build fuzz/target fuzz/work
