#!/usr/bin/env bash
# goheap real-program tests.
#
#   tests/real/run.sh [LIBDIR]      LIBDIR defaults to target/release
#
# Each case runs a real program twice, once plainly and once under
# LD_PRELOAD=$LIBDIR/libgoheap.so, in the same fresh work directory; stdout,
# stderr and the exit status must be identical. Cases: python3 running
# tests/real/alloc_heavy.py (which also checks through ctypes that goheap
# serves malloc), a multi-threaded C++ STL program, git, perl, sort, sqlite3,
# python3 under `ulimit -v` 64 MiB and 128 MiB, and python3 and sqlite3
# again with GOHEAP_DEBUG=1 on the goheap side. And, goheap side only, the
# system python3's own regression tests (cpython-suite).
# Also the launcher, the heap profiler (GOHEAP_PROFILE with python3 and
# scripts/bin/goheap-pprof) and the statistics time series (scripts/bin/plot-stats).
# With GOHEAP_TEST_REFERENCE=glibc both runs use the system allocator (this
# validates that the cases are deterministic).
#
# Output: "PASS name" / "FAIL name" lines, then exactly one
# "N passed, M failed" line; exit status 1 if anything failed.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODE=goheap
if [ "${GOHEAP_TEST_REFERENCE:-}" = glibc ]; then MODE=glibc; fi
TIMEOUT=${GH_TIMEOUT:-180}

LIBARG=${1:-target/release}
if [ "${LIBARG#/}" != "$LIBARG" ]; then
    LIBDIR=$LIBARG
elif [ -d "$LIBARG" ]; then
    LIBDIR=$(cd "$LIBARG" && pwd)
else
    LIBDIR="$ROOT/$LIBARG"
fi
LIB="$LIBDIR/libgoheap.so"

die_setup() {
    echo "tests/real/run.sh: $*" >&2
    echo "FAIL setup"
    echo "0 passed, 1 failed"
    exit 1
}

if [ "$MODE" = goheap ]; then
    [ -f "$LIB" ] || die_setup "missing $LIB (build with: make)"
fi
"$HERE/deps.sh" || die_setup "deps.sh failed"

W=$(mktemp -d /tmp/goheap-real.XXXXXX) || die_setup "mktemp failed"
trap 'rm -rf "$W"' EXIT
passed=0
failed=0

# The real python binary, not a pyenv/venv shim script.
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PY=python3
[ -x "$PY" ] || PY=$(command -v python3)

# ---- the cases: each runs its programs through "${RUN[@]}" (empty or the
# LD_PRELOAD prefix), in the current directory (a fresh $W/work), and
# prints what must match. ----

case_python() {
    if [ "$VARIANT" = goheap ]; then export ALLOC_HEAVY_EXPECT_GOHEAP=1; fi
    "${RUN[@]}" "$PY" "$HERE/alloc_heavy.py"
}

case_stl_threads() {
    "${RUN[@]}" "$W/stl_threads"
}

case_git() {
    export HOME="$PWD/home" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=t@example.invalid \
        GIT_COMMITTER_NAME=Tester GIT_COMMITTER_EMAIL=t@example.invalid TZ=UTC LC_ALL=C
    mkdir -p "$HOME"
    "${RUN[@]}" git init -q -b main repo || return
    cd repo || return
    for c in 1 2 3 4 5 6 7 8; do
        mkdir -p dir0 dir1 dir2 dir3 dir4 dir5
        export GIT_AUTHOR_DATE="2020-01-0${c}T12:00:00Z" GIT_COMMITTER_DATE="2020-01-0${c}T12:00:00Z"
        awk -v c="$c" 'BEGIN {
            s = 7 * c;
            for (f = 0; f < 60; f++) {
                file = sprintf("dir%d/file%03d.txt", f % 6, f);
                if ((f + c) % 4 == 0 && c > 1) continue;   # leave some files unchanged
                printf "" > file;
                for (l = 0; l < 200 + f; l++) { s = (s * 1103515245 + 12345) % 2147483648; printf "line %d of %d in commit %d: %d\n", l, f, c, s % 1000 >> file }
                close(file);
            }
        }'
        if [ "$c" = 5 ]; then rm -rf dir3; fi
        "${RUN[@]}" git add -A || return
        "${RUN[@]}" git commit -q -m "commit $c" -m "generated content, round $c" || return
    done
    "${RUN[@]}" git log --stat --format='%H %an %ad %s' --date=iso
    "${RUN[@]}" git diff --stat HEAD~6 HEAD
    "${RUN[@]}" git diff HEAD~4 HEAD | sha256sum
    "${RUN[@]}" git blame -s dir1/file007.txt | sha256sum
    "${RUN[@]}" git grep -c 'commit 8: 99' | head -5
    "${RUN[@]}" git -c pack.threads=1 gc -q || return
    "${RUN[@]}" git fsck --full --strict --no-progress
    "${RUN[@]}" git count-objects -v | grep -E '^(count|in-pack|packs):'
    "${RUN[@]}" git rev-list --all --objects | sort | sha256sum
}

case_perl() {
    PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 "${RUN[@]}" perl "$HERE/perl_work.pl"
    # and a one-liner over a generated text
    awk 'BEGIN { for (i = 0; i < 100000; i++) printf "%d,%s,%x\n", i, substr("alphabetagammadelta", 1 + i % 13, 5), i * 2654435761 % 4294967296 }' > data.csv
    PERL_HASH_SEED=0 "${RUN[@]}" perl -F, -lane '$h{$F[1]} += $F[0]; $s .= $F[2] if $. % 97 == 0; END { print "$_ $h{$_}" for sort keys %h; print length $s }' data.csv
}

gen_sort_input() {
    awk 'BEGIN { s = 12345; for (i = 0; i < 200000; i++) { s = (s * 1103515245 + 12345) % 2147483648;
         printf "%08d %s key%05d %d\n", s % 100000000, substr("zyxwvutsrqponmlkjihgfedcba", 1 + s % 20, 6), (s / 7) % 50000, i } }' > input.txt
}

case_sort() {
    gen_sort_input
    LC_ALL=C "${RUN[@]}" sort input.txt | sha256sum
    mkdir -p tmp
    LC_ALL=C "${RUN[@]}" sort -S 64K -T tmp input.txt | sha256sum      # tiny buffer: many temp files, merges
    LC_ALL=C "${RUN[@]}" sort -S 1M --parallel=2 -T tmp -k3,3 -k1,1n input.txt | sha256sum
    LC_ALL=C "${RUN[@]}" sort -u -k2,2 input.txt | wc -l
    LC_ALL=C.UTF-8 "${RUN[@]}" sort -r -k2 input.txt | sha256sum
}

case_sqlite3() {
    "${RUN[@]}" sqlite3 test.db < "$HERE/sqlite_work.sql"
    "${RUN[@]}" sqlite3 :memory: < "$HERE/sqlite_work.sql" | sha256sum
}

# The same python3 and sqlite3 runs with GOHEAP_DEBUG=1 on the goheap
# side (headers, canaries, quarantine): output must still match, and a
# goheap-side probe (silent when right) proves debug mode was on.
debug_probe() {
    [ "$VARIANT" = goheap ] || return 0
    "${RUN[@]}" "$PY" -c '
import ctypes
l = ctypes.CDLL(None)
l.malloc.restype = ctypes.c_void_p
l.malloc_usable_size.argtypes = [ctypes.c_void_p]
n = l.malloc_usable_size(l.malloc(13))
if n != 13: print("GOHEAP_DEBUG=1 not active: malloc_usable_size(malloc(13)) =", n)'
}

case_python_debug() {
    if [ "$VARIANT" = goheap ]; then RUN=(env LD_PRELOAD="$LIB" GOHEAP_DEBUG=1); fi
    debug_probe
    "${RUN[@]}" "$PY" "$HERE/alloc_heavy.py"
}

case_sqlite3_debug() {
    if [ "$VARIANT" = goheap ]; then RUN=(env LD_PRELOAD="$LIB" GOHEAP_DEBUG=1); fi
    debug_probe
    "${RUN[@]}" sqlite3 test.db < "$HERE/sqlite_work.sql"
}

# Under small address-space limits (ulimit -v, RLIMIT_AS, which counts
# reserved address space too): python3 starts under 64 MiB, allocates 40 MB
# under 128 MiB, gets a MemoryError for 200 MB and goes on.
case_python_ulimit() {
    (ulimit -v 65536 && "${RUN[@]}" "$PY" -c 'print("started under 64 MiB")')
    (ulimit -v 131072 && "${RUN[@]}" "$PY" -c '
blocks = [bytearray(1 << 20) for _ in range(40)]
words = [str(i) * 3 for i in range(100000)]
print("allocated", sum(map(len, blocks)) >> 20, "MiB and", len(words), "strings under 128 MiB")
try:
    big = bytearray(200 << 20)
    print("200 MB allocated under 128 MiB?")
except MemoryError:
    print("200 MB: MemoryError")
del blocks
more = [bytearray(1 << 20) for _ in range(30)]
print("after freeing 40 MiB:", len(more), "MiB more")')
}

# Does the preloaded library really load into a program? (goheap mode only)
check_loaded() {
    local maps
    maps=$(LD_PRELOAD="$LIB" cat /proc/self/maps 2>&1) || return 1
    grep -q "libgoheap" <<<"$maps"
}

# run_variant CASE VARIANT OUTDIR: run one side in a fresh $W/work.
run_variant() {
    local fn=$1 variant=$2 out=$3
    rm -rf "$W/work"
    mkdir -p "$W/work"
    (
        cd "$W/work" || exit 99
        VARIANT=$variant
        if [ "$variant" = goheap ]; then RUN=(env LD_PRELOAD="$LIB"); else RUN=(env); fi
        "$fn"
    ) >"$out.stdout" 2>"$out.stderr" </dev/null &
    local pid=$!
    ( sleep "$TIMEOUT" && kill -TERM -- -$pid 2>/dev/null; kill -TERM $pid 2>/dev/null ) 2>/dev/null &
    local watchdog=$!
    wait $pid
    local rc=$?
    kill $watchdog 2>/dev/null
    wait $watchdog 2>/dev/null
    echo $rc >"$out.rc"
}

run_case() { # name function
    local name=$1 fn=$2 t0 t1 dt other
    t0=$(date +%s.%N)
    other=goheap
    [ "$MODE" = glibc ] && other=glibc2
    run_variant "$fn" glibc "$W/$name.glibc"
    run_variant "$fn" "$other" "$W/$name.other"
    t1=$(date +%s.%N)
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1fs", b - a }')
    local why=""
    local rc_a rc_b
    rc_a=$(cat "$W/$name.glibc.rc")
    rc_b=$(cat "$W/$name.other.rc")
    if [ "$rc_a" != "$rc_b" ]; then why="exit status $rc_b, without goheap $rc_a"; fi
    if [ -z "$why" ] && [ "$rc_a" != 0 ]; then why="exit status $rc_a in both runs"; fi
    if [ -z "$why" ] && ! cmp -s "$W/$name.glibc.stdout" "$W/$name.other.stdout"; then why="stdout differs"; fi
    if [ -z "$why" ] && ! cmp -s "$W/$name.glibc.stderr" "$W/$name.other.stderr"; then why="stderr differs"; fi
    if [ -z "$why" ] && [ ! -s "$W/$name.glibc.stdout" ]; then why="no output"; fi
    if [ -z "$why" ]; then
        echo "PASS $name ($dt, $(wc -l <"$W/$name.glibc.stdout") lines compared)"
        passed=$((passed + 1))
    else
        echo "FAIL $name ($why, $dt)"
        for s in stdout stderr; do
            if ! cmp -s "$W/$name.glibc.$s" "$W/$name.other.$s"; then
                echo "    --- $s diff (without goheap vs $other) ---"
                diff "$W/$name.glibc.$s" "$W/$name.other.$s" | head -n 30 | sed 's/^/    | /'
            elif [ -s "$W/$name.glibc.$s" ] && [ "$rc_a" != 0 ]; then
                echo "    --- $s ---"
                tail -n 20 "$W/$name.glibc.$s" | sed 's/^/    | /'
            fi
        done
        failed=$((failed + 1))
    fi
}

start_all=$(date +%s.%N)
if [ "$MODE" = goheap ]; then
    if check_loaded; then
        echo "PASS preload-loads-libgoheap"
        passed=$((passed + 1))
    else
        echo "FAIL preload-loads-libgoheap (libgoheap not mapped into a preloaded process)"
        failed=$((failed + 1))
    fi
fi

# The launcher (scripts/bin/goheap): it must preload goheap, pass settings on,
# and report its version as Cargo.toml does.
check_launcher() {
    local launcher="$ROOT/scripts/bin/goheap" out err want
    want=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)
    [ "$("$launcher" --version)" = "goheap $want" ] || { echo "version is not $want"; return 1; }
    out=$("$launcher" --lib "$LIB" --stats --limit 1G -- python3 -c '
import ctypes
l = ctypes.CDLL(None)
l.malloc.restype = ctypes.c_void_p
l.malloc_usable_size.argtypes = [ctypes.c_void_p]
print(l.malloc_usable_size(l.malloc(1)))' 2>"$W/launcher.err") || { echo "program failed"; return 1; }
    [ "$out" = 8 ] || { echo "malloc_usable_size(malloc(1)) = $out, not 8"; return 1; }
    grep -q "goheap statistics" "$W/launcher.err" || { echo "--stats printed no summary"; return 1; }
    if grep -q "ignoring" "$W/launcher.err"; then echo "a setting was rejected"; return 1; fi
    if "$launcher" --bogus true 2>/dev/null; then echo "an unknown option was accepted"; return 1; fi
    # --debug: usable size is the requested size; --on-error warn is accepted.
    out=$("$launcher" --lib "$LIB" --debug --on-error warn -- python3 -c '
import ctypes
l = ctypes.CDLL(None)
l.malloc.restype = ctypes.c_void_p
l.malloc_usable_size.argtypes = [ctypes.c_void_p]
print(l.malloc_usable_size(l.malloc(1)))' 2>"$W/launcher-debug.err") || { echo "program failed under --debug"; return 1; }
    [ "$out" = 1 ] || { echo "--debug: malloc_usable_size(malloc(1)) = $out, not 1"; return 1; }
    if grep -q "ignoring" "$W/launcher-debug.err"; then echo "--debug/--on-error rejected"; return 1; fi
    # Each option's value is accepted by the launcher exactly when the
    # library accepts it in the variable; a rejected one stops the launcher
    # (status 2) with the variable named as the library names it.
    local opt var val lib_ok launch_ok err
    # (GOHEAP_STATS_FILE: the accepted intervals start a writer; not here.)
    while read -r opt var val; do
        err=$(env GOHEAP_STATS_FILE=/dev/null "$var=$val" LD_PRELOAD="$LIB" true 2>&1)
        case "$err" in *"malformed setting $var=$val"*) lib_ok=no ;; "") lib_ok=yes ;; *) echo "library: $err"; return 1 ;; esac
        err=$(GOHEAP_STATS_FILE=/dev/null "$launcher" --lib "$LIB" "$opt" "$val" -- true 2>&1) && launch_ok=yes || launch_ok=no
        if [ "$launch_ok" != "$lib_ok" ]; then
            echo "$opt $val: launcher accepts: $launch_ok, library accepts $var=$val: $lib_ok"; return 1
        fi
        if [ "$launch_ok" = no ] && [ "$err" != "goheap: malformed setting $var=$val (from $opt: ${err##*(from $opt: }" ]; then
            echo "$opt $val: unexpected message: $err"; return 1
        fi
    done <<'VALUES'
--retain GOHEAP_RETAIN_PERCENT 100000
--retain GOHEAP_RETAIN_PERCENT 10001
--retain GOHEAP_RETAIN_PERCENT 10000
--retain GOHEAP_RETAIN_PERCENT 010000
--retain GOHEAP_RETAIN_PERCENT 0
--retain GOHEAP_RETAIN_PERCENT 25%
--limit GOHEAP_MEMORY_LIMIT 0
--limit GOHEAP_MEMORY_LIMIT 512M
--limit GOHEAP_MEMORY_LIMIT 2GiB
--limit GOHEAP_MEMORY_LIMIT 12X
--limit GOHEAP_MEMORY_LIMIT 16777215T
--limit GOHEAP_MEMORY_LIMIT 16777216T
--limit GOHEAP_MEMORY_LIMIT 18446744073709551615
--limit GOHEAP_MEMORY_LIMIT 18446744073709551616
--limit GOHEAP_MEMORY_LIMIT -1
--release-delay GOHEAP_RELEASE_DELAY_MS 500
--release-delay GOHEAP_RELEASE_DELAY_MS 0
--release-delay GOHEAP_RELEASE_DELAY_MS soon
--release-delay GOHEAP_RELEASE_DELAY_MS 123456789012345678
--release-delay GOHEAP_RELEASE_DELAY_MS 1234567890123456789
--on-error GOHEAP_ON_ERROR warn
--on-error GOHEAP_ON_ERROR ignore
--profile-rate GOHEAP_PROFILE_RATE 64K
--profile-rate GOHEAP_PROFILE_RATE 1
--profile-rate GOHEAP_PROFILE_RATE 0
--profile-rate GOHEAP_PROFILE_RATE 0K
--stats-interval GOHEAP_STATS_INTERVAL 100ms
--stats-interval GOHEAP_STATS_INTERVAL 2s
--stats-interval GOHEAP_STATS_INTERVAL 250
--stats-interval GOHEAP_STATS_INTERVAL 0
--stats-interval GOHEAP_STATS_INTERVAL 0s
--stats-interval GOHEAP_STATS_INTERVAL 1h
--stats-interval GOHEAP_STATS_INTERVAL 18446744073709551s
--stats-interval GOHEAP_STATS_INTERVAL 18446744073709552s
VALUES
    return 0
}
# The heap profiler: python3 under `goheap --profile`, a profile written
# mid-run (goheap_profile_dump through ctypes) and at exit, and
# scripts/bin/goheap-pprof's top table with names resolved from the binaries.
check_profile() {
    local launcher="$ROOT/scripts/bin/goheap" top
    PROFILE_DUMP="$W/mid.heap" "$launcher" --lib "$LIB" --profile "$W/exit.heap" --profile-rate 64K -- \
        "$PY" "$HERE/profile_work.py" >"$W/profile.out" 2>&1 || { echo "program failed: $(tail -3 "$W/profile.out")"; return 1; }
    grep -q "^dump 0$" "$W/profile.out" || { echo "goheap_profile_dump failed: $(head -3 "$W/profile.out")"; return 1; }
    for f in mid exit; do
        head -n 1 "$W/$f.heap" | grep -Eq '^heap profile: +[0-9]+: +[0-9]+ \[ *[0-9]+: +[0-9]+\] @ heap_v2/65536$' \
            || { echo "$f.heap: bad header: $(head -c 200 "$W/$f.heap")"; return 1; }
        grep -q "^MAPPED_LIBRARIES:$" "$W/$f.heap" || { echo "$f.heap: no MAPPED_LIBRARIES"; return 1; }
    done
    top=$("$ROOT/scripts/bin/goheap-pprof" -n 15 "$W/mid.heap") || { echo "goheap-pprof failed"; return 1; }
    echo "$top" | sed 's/^/    | /' >&2
    # rows: "<in use> <pct>% <objs> <alloc> <pct>% <objs> <cum> <cum>  <function>"
    local rows named
    rows=$(echo "$top" | grep -Ec '%  *[0-9]+ .*%')
    named=$(echo "$top" | grep -E '%  *[0-9]+ .*%' | grep -Ec '  _?Py[A-Za-z_]+$|  [a-z_]+_[a-z_]+$')
    [ "$rows" -ge 5 ] || { echo "only $rows rows in the top table"; return 1; }
    [ "$named" -ge 3 ] || { echo "only $named rows resolve to python3 function names"; return 1; }
    echo "$top" | grep -q "^in use [1-9]" || { echo "nothing in use in the mid-run profile"; return 1; }
    return 0
}

# Statistics over time: `goheap --stats-interval` (with the background
# scavenger off, so the writer must be a thread of its own), then
# scripts/bin/plot-stats draws the PNG.
check_series() {
    local launcher="$ROOT/scripts/bin/goheap" n
    PROFILE_WORK_SLEEP=0.6 "$launcher" --lib "$LIB" --no-background --stats-interval 50 --stats-file "$W/series.%p.tsv" -- \
        "$PY" "$HERE/profile_work.py" >"$W/series.out" 2>&1 || { echo "program failed: $(tail -3 "$W/series.out")"; return 1; }
    local f
    f=$(ls "$W"/series.*.tsv 2>/dev/null | head -n 1)
    [ -n "$f" ] || { echo "no series.<pid>.tsv written"; return 1; }
    n=$(wc -l <"$f")
    [ "$n" -ge 10 ] || { echo "only $n lines in $f"; return 1; }
    "$ROOT/scripts/bin/plot-stats" "$f" -o "$W/series.png" >/dev/null || { echo "plot-stats failed"; return 1; }
    [ "$(head -c 8 "$W/series.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || { echo "no PNG written"; return 1; }
    return 0
}

# CPython's own regression tests (the system python3's, from Debian's
# libpython3.X-testsuite) with every allocation through malloc
# (PYTHONMALLOC=malloc) and goheap preloaded into the runner and its two
# worker processes: threads, fork with threads running (os.fork,
# multiprocessing), signals arriving during allocation, subprocess, mmap,
# the cyclic GC and tracemalloc, each module checking its own results.
# test_socket is not among them: it waits in accept() until its timeout in
# sandboxes without the networking it expects, with glibc malloc too. A
# module that fails is re-run once (-w); one that passes on the re-run is
# reported here, and still passes.
CPYTHON_TESTS="test_threading test_thread test_fork1 test_threadsignals test_threading_local
 test_signal test_subprocess test_os test_posix test_mmap test_gc test_tracemalloc test_faulthandler
 test_queue test_multiprocessing_fork test_ctypes test_io test_select test_json test_re test_pickle
 test_dict test_list test_set test_deque test_weakref test_array test_memoryview test_bytes
 test_unicode test_heapq test_sort test_itertools test_functools test_collections test_hashlib
 test_zlib test_bz2 test_lzma"
check_cpython_suite() {
    local py=/usr/bin/python3 ver out
    [ -x "$py" ] || { echo "no /usr/bin/python3"; return 1; }
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    local t missing=""
    for t in $CPYTHON_TESTS; do
        [ -e "/usr/lib/python$ver/test/$t.py" ] || [ -d "/usr/lib/python$ver/test/$t" ] || missing="$missing $t"
    done
    [ -z "$missing" ] || { echo "python$ver's regression tests not installed (libpython$ver-testsuite):$missing"; return 1; }
    mkdir -p "$W/cpython" && cd "$W/cpython" || return 1
    # shellcheck disable=SC2086
    env LD_PRELOAD="$LIB" PYTHONMALLOC=malloc timeout 900 "$py" -m test -j2 -w --timeout 300 $CPYTHON_TESTS \
        >"$W/cpython.log" 2>&1
    local rc=$?
    out=$(grep -E '^Tests result:' "$W/cpython.log" | tail -n 1)
    tail -n 25 "$W/cpython.log" >&2
    [ $rc -eq 0 ] || { echo "python3 -m test: exit status $rc, ${out:-no result line}"; return 1; }
    case "$out" in
    "Tests result: SUCCESS" | "Tests result: FAILURE then SUCCESS") return 0 ;;
    *) echo "python3 -m test: ${out:-no result line}"; return 1 ;;
    esac
}

if [ "$MODE" = goheap ]; then
    if msg=$(check_cpython_suite 2>"$W/check_cpython.log"); then
        echo "PASS cpython-suite ($(grep -E 'tests? OK\.$' "$W/cpython.log" | tail -n 1 | sed 's/\.$//'), $(grep -E '^Total duration' "$W/cpython.log" | sed 's/Total duration: //'))"
        if grep -q '^Tests result: FAILURE then SUCCESS' "$W/cpython.log"; then
            echo "    note: passed only when re-run: $(grep -A3 're-run test' "$W/cpython.log" | tail -n +2 | tr -s ' \n' ' ')"
        fi
        passed=$((passed + 1))
    else
        echo "FAIL cpython-suite ($msg)"
        sed 's/^/    | /' "$W/check_cpython.log" | tail -n 25
        failed=$((failed + 1))
    fi
fi

if [ "$MODE" = goheap ]; then
    for check in profile series; do
        if msg=$(check_$check 2>"$W/check_$check.log"); then
            echo "PASS $check"
            sed -n '1,8p' "$W/check_$check.log"
            passed=$((passed + 1))
        else
            echo "FAIL $check ($msg)"
            sed 's/^/    | /' "$W/check_$check.log" | tail -n 20
            failed=$((failed + 1))
        fi
    done
fi

if [ "$MODE" = goheap ]; then
    if msg=$(check_launcher); then
        echo "PASS launcher"
        passed=$((passed + 1))
    else
        echo "FAIL launcher ($msg)"
        failed=$((failed + 1))
    fi
fi

run_case python3-alloc-heavy case_python
if g++ -std=c++17 -O2 -g -pthread -o "$W/stl_threads" "$HERE/stl_threads.cc" 2>"$W/stl_build.log"; then
    run_case cxx-stl-threads case_stl_threads
else
    echo "FAIL cxx-stl-threads (build failed)"
    sed 's/^/    | /' "$W/stl_build.log" | tail -n 20
    failed=$((failed + 1))
fi
run_case git case_git
run_case perl case_perl
run_case sort case_sort
if command -v sqlite3 >/dev/null 2>&1; then
    run_case sqlite3 case_sqlite3
else
    echo "FAIL sqlite3 (not installed and deps.sh could not install it)"
    failed=$((failed + 1))
fi
run_case python3-ulimit case_python_ulimit
run_case python3-debug case_python_debug
if command -v sqlite3 >/dev/null 2>&1; then
    run_case sqlite3-debug case_sqlite3_debug
fi

end_all=$(date +%s.%N)
echo "tests/real: mode $MODE, library $LIBDIR, $(awk -v a="$start_all" -v b="$end_all" 'BEGIN { printf "%.1f", b - a }')s"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
