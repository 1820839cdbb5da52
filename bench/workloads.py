"""The workloads of the goheap benchmark suite.

Each workload is a `Workload`: a name (what it stresses), a short description,
and a function that, given the run context and an allocator, says how to run
it (`Command`), or runs it itself (redis, pair-instr).  Inputs that real
programs read (SQL script, text to sort, C file to compile) are generated once
per size into the build directory by `prepare`.

Sizes: "smoke" (a fraction of a second, just proves the workload runs),
"quick" (about half a second under glibc) and "full" (2-20 s on 2 cores).
"""
import csv
import io
import os
import random
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import figures as F

# A run that worked but whose figures mean nothing (see harness.settle).
SHORT = "too short to measure"

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
SRC_DIR = os.path.join(BENCH_DIR, "src")
# The allocation-heavy python script is shared with tests/real.
REAL_DIR = os.path.join(os.path.dirname(BENCH_DIR), "tests", "real")


@dataclass
class Command:
    """One program invocation: argv, extra environment, optional stdin file."""
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    stdin: Optional[str] = None


@dataclass
class Workload:
    name: str
    description: str
    kind: str                      # "c" (our own C program), "real", "instr"
    command: Optional[Callable] = None   # (ctx, alloc) -> Command
    runner: Optional[Callable] = None    # (ctx, alloc) -> result dict (custom run)
    prepare: Optional[Callable] = None   # (ctx) -> None, generate inputs
    packages: List[str] = field(default_factory=list)  # Debian packages needed
    programs: List[str] = field(default_factory=list)  # executables needed
    deterministic: bool = False    # one run is enough (instruction counts)
    preload_shim_for_glibc: bool = False  # program links another allocator
    check: Optional[Callable] = None     # (ctx, result) -> None, or what is wrong with the output


# --------------------------------------------------------------------------
# Our own C workloads: bench/src/*.c, built by the harness (see build_c).

C_PROGRAMS = {
    # workload name: (binary name, source file, extra gcc flags)
    "larson": ("larson", "larson.c", []),
    "xmalloc": ("xmalloc", "xmalloc.c", []),
    "cache-scratch": ("cache_scratch", "cache_false_sharing.c", ["-DSCRATCH"]),
    "cache-thrash": ("cache_thrash", "cache_false_sharing.c", []),
    "mstress": ("mstress", "mstress.c", []),
    "glibc-simple": ("glibc_simple", "glibc_simple.c", []),
    "realloc-grow": ("realloc_grow", "realloc_grow.c", []),
    "malloc-large": ("malloc_large", "malloc_large.c", []),
    "fragmentation": ("fragmentation", "fragmentation.c", []),
    "realloc-churn": ("realloc_churn", "realloc_churn.c", []),
    "pair-instr": ("pair_instr", "pair_instr.c", []),
    # The patterns of issue 13, so that a mean cannot hide them:
    "thread-churn": ("thread_churn", "thread_churn.c", []),
    "live-set-lifo": ("live_set_lifo", "live_set.c", ["-DORDER=0"]),
    "live-set-fifo": ("live_set_fifo", "live_set.c", ["-DORDER=1"]),
    "live-set-random": ("live_set_random", "live_set.c", ["-DORDER=2"]),
    "cfrac-like": ("cfrac_like", "cfrac_like.c", []),
    "free-sized": ("free_sized", "free_sized.c", ["-rdynamic"]),   # dlsym finds a static free_sized
    "sized-delete": ("sized_delete", "sized_delete.cc", []),        # .cc: built with g++
    "midsize": ("midsize", "midsize.c", []),
    "small-heap": ("small_heap", "small_heap.c", []),
}

C_DESCRIPTIONS = {
    "larson": "server churn: random slot replacement, slot arrays handed to new threads",
    "xmalloc": "producer/consumer: one thread allocates, another frees",
    "cache-scratch": "passive false sharing: objects from main, freed and reused by workers",
    "cache-thrash": "active false sharing: each thread allocates and writes small objects",
    "mstress": "many threads, short-lived objects of mixed sizes, thread churn",
    "glibc-simple": "single thread, fixed and random sizes, LIFO/FIFO/random free order",
    "realloc-grow": "string builders growing by doubling and by exact realloc",
    "malloc-large": "64 KiB-32 MiB blocks: allocate, touch every page, free",
    "fragmentation": "allocate many, free a random 90%, allocate at other sizes",
    "realloc-churn": "5-25 MiB blocks freed and reallocated in a loop (kernel time)",
    "thread-churn": "short-lived threads doing a few allocations each; per-thread cost "
                    "(create + first malloc + exit, ns)",
    "live-set-lifo": "one thread, 10k and 100k live blocks of 8-512 B, freed newest first",
    "live-set-fifo": "one thread, 10k and 100k live blocks of 8-512 B, freed oldest first",
    "live-set-random": "one thread, 10k and 100k live blocks of 8-512 B, freed in random order",
    "cfrac-like": "one thread, bignum arithmetic: short-lived 8-200 B objects, small live set",
    "free-sized": "churn of 8 B-1 KiB blocks freed with C23 free_sized (free if the allocator lacks it)",
    "sized-delete": "the same churn through C++ operator new / sized operator delete (g++)",
    "midsize": "64 KiB-2 MiB blocks, 1-3 at a time freed and replaced in a window of 6",
    "small-heap": "5 threads with 64 KiB live each: peak RSS is the allocator's own overhead",
}


# What the programs must report they did, per size (the same numbers as the
# PICK(...) in their source: change both together).  The checks below fail a
# run whose RESULT lines say it did other work, or found a block whose stamp
# changed (common.h: stamp; errors=), so a wrong result cannot pass as a
# fast one.
C_WORK = {
    "thread-churn": {"smoke": (1000, 400), "quick": (10000, 2000), "full": (100000, 10000)},
    "live-set": {"smoke": 400000, "quick": 3000000, "full": 30000000},
    "cfrac-like": {"smoke": 300000, "quick": 4000000, "full": 30000000},
    "sized-churn": {"smoke": 1000000, "quick": 10000000, "full": 100000000},
    "midsize": {"smoke": 1000, "quick": 100000, "full": 300000},
    "small-heap": {"smoke": 30000, "quick": 2000000, "full": 10000000},
}


def _expect(extra, **want):
    """What is wrong with the RESULT figures, or None: each key must equal its
    value, or for a (low, high) tuple lie within it."""
    for key, value in want.items():
        got = extra.get(key)
        if isinstance(value, tuple):
            if not isinstance(got, (int, float)) or isinstance(got, bool) \
                    or not value[0] <= got <= value[1]:
                return f"{key}={got!r}, want {value[0]}..{value[1]}"
        elif got != value or isinstance(got, bool):
            return f"{key}={got!r}, want {value!r}"
    return None


def check_thread_churn(ctx, res):
    churn, cost = C_WORK["thread-churn"][ctx.size]
    return _expect(res["extra"], errors=0, churn_threads=churn, cost_threads=cost,
                   allocations=(churn, 16 * churn), ns_per_thread=(1, 1e9),
                   ns_per_thread_bare=(1, 1e9))


def check_live_set(order):
    def check(ctx, res):
        return _expect(res["extra"], errors=0, order=order, blocks=C_WORK["live-set"][ctx.size])
    return check


def check_cfrac_like(ctx, res):
    steps = C_WORK["cfrac-like"][ctx.size]
    return _expect(res["extra"], errors=0, steps=steps, allocations=(steps, 3 * steps))


def sized_steps(ctx):
    total = C_WORK["sized-churn"][ctx.size]
    return total // ctx.threads * ctx.threads


def check_free_sized(ctx, res):
    x = res["extra"]
    why = _expect(x, errors=0, threads=ctx.threads, steps=sized_steps(ctx))
    if why:
        return why
    if x.get("via") not in ("free_sized", "free"):
        return f"via={x.get('via')!r}, want free_sized or free"
    if x["via"] == "free_sized" and x.get("free_sized_from") != x.get("malloc_from"):
        return (f"free_sized from {x.get('free_sized_from')}, malloc from "
                f"{x.get('malloc_from')}: another allocator's free_sized")
    return None


def check_sized_delete(ctx, res):
    x = res["extra"]
    why = _expect(x, errors=0, threads=ctx.threads, steps=sized_steps(ctx), via="sized-delete")
    if why:
        return why
    if not isinstance(x.get("delete_from"), str) or x["delete_from"] == "not-found":
        return f"delete_from={x.get('delete_from')!r}: operator delete not found"
    return None


def check_midsize(ctx, res):
    total = C_WORK["midsize"][ctx.size]
    return _expect(res["extra"], errors=0, allocations=(total, total + 2))


def check_small_heap(ctx, res):
    steps = C_WORK["small-heap"][ctx.size]
    return _expect(res["extra"], errors=0, threads=5, steps=5 * steps, live_kb=(5 * 64, 5 * 200),
                   rss_all_kb=(1, 1 << 30))


C_CHECKS = {
    "thread-churn": check_thread_churn,
    "live-set-lifo": check_live_set("lifo"),
    "live-set-fifo": check_live_set("fifo"),
    "live-set-random": check_live_set("random"),
    "cfrac-like": check_cfrac_like,
    "free-sized": check_free_sized,
    "sized-delete": check_sized_delete,
    "midsize": check_midsize,
    "small-heap": check_small_heap,
}


# Workloads that run another workload's program (in another mode).
PROGRAM_OF = {"churn-instr": "pair-instr"}


def c_binary(ctx, workload_name, alloc):
    """Path of the workload's binary for this allocator (static or dynamic)."""
    binary = C_PROGRAMS[PROGRAM_OF.get(workload_name, workload_name)][0]
    if alloc.static:
        binary += "-" + alloc.name
    return os.path.join(ctx.build_dir, binary)


def c_command(workload_name):
    def command(ctx, alloc):
        return Command([c_binary(ctx, workload_name, alloc), ctx.size, str(ctx.threads)])
    return command


# --------------------------------------------------------------------------
# Real programs.

def has_checksum(ctx, res):
    if not isinstance(res["extra"].get("checksum"), int):
        return "no RESULT checksum line"
    return None


def python_command(ctx, alloc):
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
    return Command([py, os.path.join(REAL_DIR, "alloc_heavy.py"), ctx.size],
                   env={"PYTHONMALLOC": "malloc"})


SQLITE_ROWS = {"smoke": 5000, "quick": 40000, "full": 200000}


def sqlite_prepare(ctx):
    """An insert/index/query/update script over an in-memory database."""
    rows = SQLITE_ROWS[ctx.size]
    path = os.path.join(ctx.build_dir, f"sqlite-{ctx.size}.sql")
    script = f"""
PRAGMA cache_size = -262144;
CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, payload TEXT);
CREATE TABLE tag(item_id INTEGER, tag TEXT);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
INSERT INTO item
  SELECT x, printf('item-%08d-%s', (x * 7919) % {rows}, substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26)),
         (x * 104729) % 1000, ((x * 15485863) % 100000) / 1000.0,
         substr(hex(zeroblob(200)), 1, 10 + (x * 31) % 380)
  FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows * 2})
INSERT INTO tag SELECT (x * 48271) % {rows} + 1, 'tag' || (x % 97) FROM c;
COMMIT;
CREATE INDEX item_grp ON item(grp, val);
CREATE INDEX item_name ON item(name);
CREATE INDEX tag_item ON tag(item_id);
SELECT grp, count(*), round(avg(val), 3) FROM item GROUP BY grp ORDER BY 3 DESC LIMIT 3;
SELECT t.tag, count(*), max(length(i.payload)) FROM tag t JOIN item i ON i.id = t.item_id
  GROUP BY t.tag ORDER BY 2 DESC LIMIT 3;
SELECT count(DISTINCT name || grp) FROM item;
SELECT name FROM item ORDER BY payload, name LIMIT 2;
UPDATE item SET payload = payload || name WHERE grp % 7 = 0;
DELETE FROM item WHERE grp % 3 = 0;
SELECT count(*), sum(length(payload)) FROM item;
"""
    with open(path, "w") as f:
        f.write(script)


def sqlite_check(ctx, res):
    """The script's SELECTs print 10 rows, the last `count|sum`."""
    lines = res["stdout"].strip().splitlines()
    if len(lines) != 10 or not re.fullmatch(r"\d+\|\d+", lines[-1]):
        return f"{len(lines)} lines, ending {lines[-1:]}; want 10 ending count|sum"
    return None


def sqlite_command(ctx, alloc):
    return Command(["sqlite3", ":memory:"], stdin=os.path.join(ctx.build_dir, f"sqlite-{ctx.size}.sql"))


SORT_LINES = {"smoke": 20000, "quick": 400000, "full": 4000000}


def sort_prepare(ctx):
    """Lines of random words, deterministic for a given size."""
    path = os.path.join(ctx.build_dir, f"sort-{ctx.size}.txt")
    if os.path.exists(path):
        return
    rng = random.Random(17)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(2, 12)))
             for _ in range(5000)]
    with open(path + ".tmp", "w") as f:
        for _ in range(SORT_LINES[ctx.size]):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randrange(1, 8))))
            f.write("\n")
    os.replace(path + ".tmp", path)


def sort_command(ctx, alloc):
    return Command(["sort", "--parallel=2", "-o", "/dev/null",
                    os.path.join(ctx.build_dir, f"sort-{ctx.size}.txt")],
                   env={"LC_ALL": "C"})


GCC_FUNCTIONS = {"smoke": 4, "quick": 20, "full": 100}


def gcc_prepare(ctx):
    """A generated C file: many functions with loops, switches and calls."""
    rng = random.Random(1)
    out = ["struct rec { int a; long b; double c; char name[16]; struct rec *next; };"]
    for f in range(GCC_FUNCTIONS[ctx.size]):
        ncase = rng.randrange(4, 12)
        out.append(f"long fn{f}(struct rec *r, int n, const long *v) {{")
        out.append("  long acc = 0; double d = 0.5; int i;")
        out.append("  for (i = 0; i < n; i++) {")
        out.append(f"    switch ((v[i] ^ i) % {ncase}) {{")
        for c in range(ncase):
            k1, k2 = rng.randrange(1, 1000), rng.randrange(1, 50)
            out.append(f"    case {c}: acc += v[i] * {k1} - (acc >> {k2 % 13}); "
                       f"d = d * {k2}.0 + r->c; r->a ^= {k1}; break;")
        out.append("    default: acc--; }")
        out.append("  }")
        if f > 0:
            out.append(f"  acc += fn{rng.randrange(f)}(r, n / 2, v + 1);")
        out.append("  return acc + (long)d; }")
    with open(os.path.join(ctx.build_dir, f"gen-{ctx.size}.c"), "w") as f:
        f.write("\n".join(out) + "\n")


def gcc_object(ctx):
    return os.path.join(ctx.build_dir, f"gen-{ctx.size}.o")


def gcc_check(ctx, res):
    if not os.path.exists(gcc_object(ctx)) or os.path.getsize(gcc_object(ctx)) == 0:
        return "no object file written"
    return None


def gcc_command(ctx, alloc):
    # LD_PRELOAD is set on the gcc driver; cc1 and as inherit it. The object
    # of the previous run goes first, so gcc_check sees this run's.
    try:
        os.unlink(gcc_object(ctx))
    except FileNotFoundError:
        pass
    return Command(["gcc", "-O2", "-c", os.path.join(ctx.build_dir, f"gen-{ctx.size}.c"),
                    "-o", gcc_object(ctx)])


# --------------------------------------------------------------------------
# redis: server under the allocator, redis-benchmark (not preloaded) as client.

REDIS_REQUESTS = {"smoke": 1000, "quick": 10000, "full": 50000}
REDIS_TESTS = ["set", "get", "incr", "lpush", "lpop", "sadd", "hset", "zadd", "lrange_100", "mset"]


def parse_redis_csv(text, tests):
    """redis-benchmark --csv output -> {"rps": {test: rps}, "sum_rps",
    "unmeasured": {test: reason}, "missing": [tests with no row]}.

    Rows look like `"SET","125999.99","0.838",...` after a header row
    (redis 6 and later; redis 5 prints only `"SET","125999.99"`). A test's
    name is the first word of its row's first field ("LRANGE_100 (first 100
    elements)"); `-t lrange_100` also prints an "LPUSH (needed to benchmark
    LRANGE)" row, which is ignored. The rate may be anything a tool prints
    (figures.parse_figure): `inf` when the test ended within a millisecond."""
    wanted = {t.upper(): t for t in tests}
    rps, unmeasured, seen = {}, {}, set()
    try:
        rows = list(csv.reader(io.StringIO(text.replace("\0", ""))))
    except csv.Error:
        rows = []   # not CSV at all: every test is missing
    for row in rows:
        if not row or not row[0].strip() or row[0].strip().lower() == "test":
            continue
        name = row[0].strip()
        key = name.split()[0].upper()
        if key not in wanted or "(needed" in name or wanted[key] in seen:
            continue
        seen.add(wanted[key])
        value, why = F.parse_figure(row[1] if len(row) > 1 else None)
        if value is None or value <= 0:
            unmeasured[key] = why or "rate 0"
        else:
            rps[key] = round(value, 2)
    missing = [t for t in tests if t not in seen]
    sum_rps = round(sum(rps.values())) if rps and not unmeasured else None
    return {"rps": rps, "sum_rps": sum_rps, "unmeasured": unmeasured, "missing": missing}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def redis_runner(ctx, alloc):
    """Start redis-server on a free loopback port under the allocator, run a
    bounded redis-benchmark against it, always stop the server.  Time is the
    benchmark's wall time; peak RSS, user and sys are the server's."""
    import harness  # the measuring helpers live there
    port = free_port()
    env = ctx.child_env(alloc, shim_for_glibc=True)
    log = os.path.join(ctx.tmp_dir, f"redis-{port}.log")
    server_argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--daemonize", "no",
                   "--protected-mode", "yes", "--logfile", log]
    server = harness.Child(server_argv, env)
    try:
        if not wait_for_port(port, server.proc):
            server.kill()
            usage = server.wait()
            return {"ok": False, "error": "redis-server did not start: " + harness.tail(log)}
        n = REDIS_REQUESTS[ctx.size]
        bench_argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", str(n),
                      "-r", "100000", "-d", "200", "-P", "16", "-c", "20", "--csv",
                      "-t", ",".join(REDIS_TESTS)]
        client = harness.run_command(dict(harness.clean_env(), LC_ALL="C"), bench_argv,
                                     timeout=ctx.timeout)
        server.terminate()
        usage = server.wait(timeout=10)
        if not client["ok"]:
            return {"ok": False, "error": "redis-benchmark: " + client.get("error", "")}
        if usage["status"] != 0:
            return {"ok": False, "error": f"redis-server exited with {usage['status']}: " + harness.tail(log)}
        parsed = parse_redis_csv(client.get("stdout", ""), REDIS_TESTS)
        if parsed["missing"]:
            return {"ok": False, "error": "redis-benchmark printed no result for "
                                          + ", ".join(parsed["missing"])}
        res = {"ok": True, "wall_s": client["wall_s"], "user_s": usage["user_s"],
               "sys_s": usage["sys_s"], "maxrss_kb": usage["maxrss_kb"],
               "extra": {"sum_rps": parsed["sum_rps"], "rps": parsed["rps"]}}
        if parsed["unmeasured"]:
            # A test that ends within redis-benchmark's 1 ms clock has an
            # infinite (or no) rate: the run worked, but it was too short.
            res["state"] = SHORT
            res["note"] = ("redis-benchmark could not time " + ", ".join(
                f"{name} ({why})" for name, why in parsed["unmeasured"].items())
                + f" with {REDIS_REQUESTS[ctx.size]} requests")
        return res
    finally:
        server.kill()


# --------------------------------------------------------------------------
# pair-instr and churn-instr: instructions per malloc+free pair, counted by
# callgrind (bench/src/pair_instr.c).

PAIR_ITERATIONS = {"smoke": 20000, "quick": 100000, "full": 200000}


def callgrind_count(ctx, alloc, mode, n):
    import harness
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            c_binary(ctx, "pair-instr", alloc), mode, str(n), "32"]
    res = harness.run_command(ctx.child_env(alloc), argv, timeout=ctx.timeout)
    if not res["ok"]:
        return None, res.get("error", "failed")
    for line in res["stderr"].splitlines():
        if "Collected :" in line:
            text = line.split("Collected :", 1)[1]
            count = F.integer(text)
            if count is None or count <= 0:
                return None, f"callgrind's instruction count is {text.strip()!r}"
            return count, res
    return None, "no 'Collected' line in callgrind output"


def instr_runner(mode, empty):
    """A runner counting the instructions of one iteration of `mode` beyond
    those of `empty` (pair_instr.c): (I(2N) - I(N)) / N for each, so that
    start-up and allocator initialisation cancel out, and the loop itself
    with the empty mode's count."""
    def run(ctx, alloc):
        n = PAIR_ITERATIONS[ctx.size]
        counts = {}
        last = None
        for m in (mode, empty):
            for k in (1, 2):
                c, res = callgrind_count(ctx, alloc, m, k * n)
                if c is None:
                    return {"ok": False, "error": f"callgrind {m} {k}N: {res}"}
                counts[(m, k)] = c
                last = res
        per_iter = (counts[(mode, 2)] - counts[(mode, 1)]) / n
        per_loop = (counts[(empty, 2)] - counts[(empty, 1)]) / n
        instr = per_iter - per_loop
        if not instr > 0:
            # 2N iterations must cost more than N and than the empty loop: a
            # count that does not grow means the program did not do its work.
            return {"ok": False, "error": f"callgrind counts do not grow with the iterations "
                                          f"({instr:.1f} instructions per pair): {counts}"}
        extra = dict(last.get("extra", {}))
        extra.update({"instr_per_pair": round(instr, 1), "loop_instr": round(per_loop, 1)})
        return {"ok": True, "instr": instr, "wall_s": None, "maxrss_kb": None,
                "user_s": None, "sys_s": None, "extra": extra}
    return run


# --------------------------------------------------------------------------

def all_workloads():
    ws = []
    for name in C_DESCRIPTIONS:   # every C program but pair-instr, in this order
        ws.append(Workload(name, C_DESCRIPTIONS[name], "c", command=c_command(name),
                           check=C_CHECKS.get(name)))
    ws += [
        Workload("python", "python3 allocation-heavy script (PYTHONMALLOC=malloc)", "real",
                 command=python_command, programs=["python3"], check=has_checksum),
        Workload("sqlite", "sqlite3 in-memory: insert, index, join, update, delete", "real",
                 command=sqlite_command, prepare=sqlite_prepare,
                 packages=["sqlite3"], programs=["sqlite3"], check=sqlite_check),
        Workload("redis", "redis-server under the allocator, redis-benchmark -P16 on loopback",
                 "real", runner=redis_runner, packages=["redis-server", "redis-tools"],
                 programs=["redis-server", "redis-benchmark"], preload_shim_for_glibc=True),
        Workload("sort", "GNU sort of a generated text file", "real",
                 command=sort_command, prepare=sort_prepare, programs=["sort"]),
        Workload("gcc", "gcc -O2 compiling a generated C file (cc1 inherits the preload)", "real",
                 command=gcc_command, prepare=gcc_prepare, programs=["gcc"], check=gcc_check),
        Workload("pair-instr", "instructions per malloc(32)+free pair, callgrind", "instr",
                 runner=instr_runner("pair", "empty"), packages=["valgrind"],
                 programs=["valgrind"], deterministic=True),
        Workload("churn-instr", "instructions per free+malloc replacing a random one of 1000 "
                 "live blocks of 8-512 B, callgrind", "instr",
                 runner=instr_runner("churn", "churn-empty"), packages=["valgrind"],
                 programs=["valgrind"], deterministic=True),
    ]
    return ws
