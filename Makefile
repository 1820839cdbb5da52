# goheap: `make` builds the libraries, `make demo` runs a real program on
# goheap, `make test` runs every test. See README.md.
SHELL   := /bin/bash
CARGO   ?= cargo
PREFIX  ?= /usr/local
LIBDIR  := target/release
SO      := $(LIBDIR)/libgoheap.so
A       := $(LIBDIR)/libgoheap.a
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all lib setup header check-header check-symbols demo test test-rust test-c test-real test-bench test-fuzz fuzz soak bench clean install

all: lib

setup:
	@scripts/setup build

lib: setup
	$(CARGO) build --release --quiet
	@ls -l $(SO) $(A) | awk '{print "built", $$NF, $$5, "bytes"}'

# The header is generated and committed; `make test` verifies it is current.
header:
	cbindgen --config cbindgen.toml --crate goheap --output include/goheap.h --quiet

check-header:
	cbindgen --config cbindgen.toml --crate goheap --output include/goheap.h --verify --quiet \
	  || { echo "include/goheap.h is stale: run 'make header'"; exit 1; }

# The C++ operators: exported by libgoheap.so, defined in libgoheap.a beside
# malloc, and no dependency on a C++ standard library (scripts/check-symbols).
check-symbols: lib
	scripts/check-symbols $(LIBDIR)

demo: lib
	@echo "== python3 scripts/demo.py, with goheap preloaded"
	LD_PRELOAD=$(CURDIR)/$(SO) python3 scripts/demo.py

test: lib
	@scripts/setup test
	$(MAKE) --no-print-directory check-header check-symbols test-rust test-c test-real test-bench test-fuzz
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --release --no-default-features --quiet

test-c:
	tests-c/run.sh $(LIBDIR)

test-real:
	tests-real/run.sh $(LIBDIR)

test-bench:
	scripts/bench --smoke

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
# content and RSS checks (tests-soak/soak.c). Not part of `make test`.
SOAK_SECONDS ?= 600
soak: lib
	SOAK_SECONDS=$(SOAK_SECONDS) tests-soak/run.sh $(LIBDIR)

bench: lib
	scripts/bench

install: lib
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 755 scripts/goheap scripts/goheap-pprof scripts/plot-stats $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(SO) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(A) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/goheap.h $(DESTDIR)$(PREFIX)/include/

clean:
	$(CARGO) clean
	rm -rf tests-c/build bench/build tests-soak/build fuzz/target fuzz/work
