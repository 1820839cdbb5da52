# goheap: `make` builds the libraries, `make demo` runs a real program on
# goheap, `make test` runs every test. See README.md.
SHELL   := /bin/bash
CARGO   ?= cargo
PREFIX  ?= /usr/local
LIBDIR  := target/release
SO      := $(LIBDIR)/libgoheap.so
A       := $(LIBDIR)/libgoheap.a
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all lib setup header check-header demo test test-rust test-c test-real test-bench bench clean install

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

demo: lib
	@echo "== python3 scripts/demo.py, with goheap preloaded"
	LD_PRELOAD=$(CURDIR)/$(SO) python3 scripts/demo.py

test: lib
	@scripts/setup test
	$(MAKE) --no-print-directory check-header test-rust test-c test-real test-bench
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --release --no-default-features --quiet

test-c:
	tests-c/run.sh $(LIBDIR)

test-real:
	tests-real/run.sh $(LIBDIR)

test-bench:
	scripts/bench --smoke

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
	rm -rf tests-c/build bench/build
