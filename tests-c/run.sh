#!/usr/bin/env bash
# goheap user-level C/C++ tests.
#
#   tests-c/run.sh [LIBDIR]        LIBDIR defaults to target/release (relative
#                                  paths: to the current directory if it exists
#                                  there, else to the repository root)
#
# Each tests-c/*.c / *.cc is a standalone program (exit 0 = pass). In goheap
# mode (the default) every test is built twice into tests-c/build/:
#   preload  compiled normally and run with LD_PRELOAD=$LIBDIR/libgoheap.so
#            (tests that call goheap_* names are also linked with -lgoheap)
#   static   linked against $LIBDIR/libgoheap.a -lpthread -ldl -lm
# With GOHEAP_TEST_REFERENCE=glibc the tests are built once ("glibc" variant)
# with -DGH_REFERENCE and run on the system allocator, skipping the
# goheap-only assertions; that mode validates the tests themselves.
#
# Environment: GH_TESTS="name1 name2" runs a subset; GH_TIMEOUT (default 60)
# is the per-test timeout in seconds; GH_STRESS_SECONDS sets mt_stress length.
# Output: one "PASS name [variant]" / "FAIL name [variant]" line per run, then
# exactly one "N passed, M failed" line; exit status 1 if anything failed.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD="$HERE/build"
TIMEOUT=${GH_TIMEOUT:-60}
MODE=goheap
if [ "${GOHEAP_TEST_REFERENCE:-}" = glibc ]; then MODE=glibc; fi

LIBARG=${1:-target/release}
if [ "${LIBARG#/}" != "$LIBARG" ]; then
    LIBDIR=$LIBARG
elif [ -d "$LIBARG" ]; then
    LIBDIR=$(cd "$LIBARG" && pwd)
else
    LIBDIR="$ROOT/$LIBARG"
fi

CC=${CC:-gcc}
CXX=${CXX:-g++}
CFLAGS="-O1 -g -pthread -Wall -Wextra -Wno-unused-function -Wno-use-after-free"
CXXFLAGS="-std=c++17 $CFLAGS"

die_setup() {
    echo "run.sh: $*" >&2
    echo "FAIL setup [$MODE]"
    echo "0 passed, 1 failed"
    exit 1
}

if [ "$MODE" = goheap ]; then
    [ -f "$LIBDIR/libgoheap.so" ] || die_setup "missing $LIBDIR/libgoheap.so (build with: make)"
    [ -f "$LIBDIR/libgoheap.a" ] || die_setup "missing $LIBDIR/libgoheap.a (build with: make)"
    VARIANTS="preload static"
else
    VARIANTS="glibc"
fi
command -v "$CC" >/dev/null || die_setup "no C compiler ($CC)"
command -v timeout >/dev/null || die_setup "no timeout(1)"

mkdir -p "$BUILD" || die_setup "cannot create $BUILD"

SOURCES=$(cd "$HERE" && ls *.c *.cc 2>/dev/null | sort)
[ -n "$SOURCES" ] || die_setup "no tests found in $HERE"

passed=0
failed=0
start_all=$(date +%s.%N)

report_fail() { # name variant logfile reason
    echo "FAIL $1 [$2] $4"
    sed -e 's/^/    | /' "$3" | tail -n 40
    failed=$((failed + 1))
}

for src in $SOURCES; do
    name=${src%.*}
    if [ -n "${GH_TESTS:-}" ] && ! [[ " $GH_TESTS " == *" $name "* ]]; then continue; fi
    case "$src" in
        *.cc) compiler=$CXX; flags=$CXXFLAGS; command -v "$CXX" >/dev/null || die_setup "no C++ compiler" ;;
        *) compiler=$CC; flags=$CFLAGS ;;
    esac
    # Link libgoheap into the preload build only if the test (or a local
    # header it includes, other than goheap_test.h which declares them all)
    # calls goheap_* functions or aliases glibc does not export (cfree,
    # __posix_memalign).
    uses_goheap_names=0
    scan=("$HERE/$src")
    for h in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$HERE/$src"); do
        [ "$h" != goheap_test.h ] && [ -f "$HERE/$h" ] && scan+=("$HERE/$h")
    done
    if grep -hv '^#include' "${scan[@]}" | grep -Eq '\b(goheap_[a-z_]+|cfree|__posix_memalign)[[:space:]]*\('; then
        uses_goheap_names=1
    fi
    # A test may ask for extra flags on its static link with a line
    # "gh-static-ldflags: FLAGS" (cpp_replaced_new: a program that defines
    # operator new itself, linked with libgoheap.a, which defines it too).
    static_ldflags=$(sed -n 's/.*gh-static-ldflags: *//p' "$HERE/$src" | head -n 1)
    for variant in $VARIANTS; do
        bin="$BUILD/$name.$variant"
        log="$BUILD/$name.$variant.log"
        rm -f "$bin"
        case "$variant" in
            preload)
                extra=""
                if [ $uses_goheap_names = 1 ]; then
                    extra="-DGH_LINKED -L$LIBDIR -Wl,--no-as-needed -lgoheap -Wl,--as-needed -Wl,-rpath,$LIBDIR"
                fi
                # shellcheck disable=SC2086
                "$compiler" $flags -I"$HERE" -o "$bin" "$HERE/$src" $extra >"$log" 2>&1
                ;;
            static)
                # shellcheck disable=SC2086
                "$compiler" $flags -DGH_LINKED -I"$HERE" -o "$bin" "$HERE/$src" "$LIBDIR/libgoheap.a" \
                    -lpthread -ldl -lm $static_ldflags >"$log" 2>&1
                ;;
            glibc)
                # shellcheck disable=SC2086
                "$compiler" $flags -DGH_REFERENCE -I"$HERE" -o "$bin" "$HERE/$src" >"$log" 2>&1
                ;;
        esac
        if [ $? -ne 0 ] || [ ! -x "$bin" ]; then
            report_fail "$name" "$variant" "$log" "(build failed)"
            continue
        fi
        t0=$(date +%s.%N)
        (
            cd "$BUILD" || exit 99
            if [ "$variant" = preload ]; then
                exec timeout -k 5 "$TIMEOUT" env LD_PRELOAD="$LIBDIR/libgoheap.so" "$bin"
            else
                exec timeout -k 5 "$TIMEOUT" "$bin"
            fi
        ) >>"$log" 2>&1 </dev/null
        rc=$?
        t1=$(date +%s.%N)
        dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2fs", b - a }')
        if [ $rc -eq 0 ]; then
            echo "PASS $name [$variant] ($dt)"
            passed=$((passed + 1))
        elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            report_fail "$name" "$variant" "$log" "(timed out after ${TIMEOUT}s)"
        elif [ $rc -gt 128 ]; then
            report_fail "$name" "$variant" "$log" "(killed by signal $((rc - 128)), $dt)"
        else
            report_fail "$name" "$variant" "$log" "(exit code $rc, $dt)"
        fi
    done
done

end_all=$(date +%s.%N)
echo "tests-c: mode $MODE, library ${LIBDIR}, $(awk -v a="$start_all" -v b="$end_all" 'BEGIN { printf "%.1f", b - a }')s"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
