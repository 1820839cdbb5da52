"""goheap benchmark harness: every workload under every allocator, in one run.

Usage: scripts/bench [--quick | --smoke] [--runs N] [--only w1,w2]
                     [--allocators a,b] [--allow-missing] [--goheap-dir DIR]
                     [--threads N] [--no-latest] [--list]

Method
------
* Allocators.  glibc is the baseline and runs with no preload.  jemalloc,
  tcmalloc and mimalloc come from Debian packages (installed if missing) and
  run with LD_PRELOAD.  goheap runs with LD_PRELOAD=target/release/libgoheap.so
  and, for our own C workloads, also statically linked against
  target/release/libgoheap.a ("goheap-static").  Our C workloads print which
  object provides `malloc` (dladdr), and a run whose preload did not take
  effect is counted as failed.  redis-server is linked with jemalloc by
  Debian, so its "glibc" column preloads a shim that forwards to glibc.
* Interleaving.  For each workload, the allocators run in turn, round after
  round (A B C D E F, A B C D E F, ...), so slow drift of the machine (thermal,
  noisy neighbours, page cache) hits all allocators alike.
* Figures.  Each program is started through bench/build/measure (src/measure.c),
  a small launcher that times the child from fork to exit and reaps it with
  wait4.  Peak RSS, user and system time are the kernel's accounting of the
  child, from wait4()'s rusage (ru_maxrss: the largest resident set the process
  reached, including its waited-for children, e.g. cc1 under gcc), not of the
  harness (spawning from Python directly would leak the harness's own RSS
  into the child's ru_maxrss through vfork+exec).  RSS counts every resident
  page of the process: the heap, but also code, stacks and the allocator's
  metadata.  fragmentation additionally
  prints its own RSS at the end (from /proc/self/statm), and realloc-churn's
  user and system time are reported separately.  pair-instr and churn-instr
  are instruction counts from callgrind, deterministic, so they run once per
  allocator.
* Statistics.  Each cell is the median over the runs, with min-max as the
  spread, and a ratio to the reference allocator (mimalloc when it is
  measured, else glibc).  Per allocator, the geometric mean of those ratios
  over the workloads both completed (the instruction counts excluded).
* Best anchor.  The summary opens with goheap against the best of the four
  anchors (glibc, jemalloc, tcmalloc, mimalloc) per workload: the anchor
  with the lowest median, for wall time and for peak RSS separately, and
  each goheap variant's median divided by it, with their geometric means.
  A ratio above issue 13's targets (1.1 for time, 1.3 for peak RSS) is in
  bold; the chart (plot.png) shows the same ratios, one row per workload.  A run that fails
  (non-zero exit, signal, timeout, wrong output) is shown as failed, never
  dropped; a run that worked but could not be timed (a figure of 0, `inf` or
  none) is shown as "too short to measure" and left out of the ratios.
* Parsing.  Every figure read from a tool's output goes through
  figures.py, which accepts whatever a tool prints (inf, nan, empty,
  localized) and never raises; bench/test_parse.py checks it.

Output goes to bench/results/<timestamp>/ (results.json with every run,
summary.md, plot.png, and plot-all.png: every allocator's ratio to
mimalloc as grouped bars); summary and plot are also copied to
bench/results/latest.md and latest.png (not in --smoke mode).
"""
import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import figures as F
import workloads as W

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
BUILD_DIR = os.path.join(BENCH_DIR, "build")
GOHEAP_DIR = os.path.join(ROOT, "target", "release")   # libgoheap.so and libgoheap.a
MEASURE = os.path.join(BUILD_DIR, "measure")

ALL_ALLOCATORS = ["glibc", "jemalloc", "tcmalloc", "mimalloc", "goheap", "goheap-static", "goheap-nobg"]
REFERENCE_ORDER = ["mimalloc", "glibc"]
DEFAULT_RUNS = {"smoke": 1, "quick": 3, "full": 5}
TIMEOUT = {"smoke": 60, "quick": 120, "full": 300}


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------
# Installing what we need (idempotent, quiet when everything is present).

def package_installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def package_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def ensure_packages(pkgs):
    """apt-get install the missing ones; apt-get update once if that fails."""
    missing = [p for p in dict.fromkeys(pkgs) if not package_installed(p)]
    if not missing:
        return True
    if shutil.which("apt-get") is None:
        log(f"warning: cannot install {' '.join(missing)}: no apt-get")
        return False
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"] + missing
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        log(f"warning: apt-get install {' '.join(missing)} failed:\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
        return False
    return True


def ensure_matplotlib():
    """matplotlib for this interpreter, installed by `scripts/setup
    matplotlib` (Debian's package for Debian's python3, else pip); False,
    with one line saying how to get it, when that did not work."""
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    log(f"installing matplotlib for {sys.executable} (scripts/setup matplotlib), for the plot")
    r = subprocess.run([os.path.join(ROOT, "scripts", "setup"), "matplotlib"],
                       env=dict(os.environ, GOHEAP_PYTHON=sys.executable),
                       capture_output=True, text=True)
    import importlib
    importlib.invalidate_caches()
    try:
        import matplotlib  # noqa: F401,F811
        return True
    except ImportError:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        log(f"warning: no plot: matplotlib is not installed for {sys.executable} "
            f"({missing_module_hint('matplotlib')}); setup said: {last}")
        return False


def missing_module_hint(module):
    """How to install a module for the running interpreter, in a few words."""
    if sys.prefix == sys.base_prefix == "/usr" and os.path.exists("/etc/debian_version"):
        return f"Debian's python3: apt-get install python3-{module}"
    return f"{sys.executable} -m pip install {module}"


# --------------------------------------------------------------------------
# Allocators.

class Allocator:
    def __init__(self, name, preload=None, static=None, package=None, version=None,
                 expect_malloc_from=None, missing=None, env=None):
        self.name = name
        self.env = env or {}             # extra environment (goheap settings)
        self.preload = preload           # path for LD_PRELOAD, or None
        self.static = static             # path of a .a to link our C workloads with
        self.package = package
        self.version = version
        self.expect_malloc_from = expect_malloc_from  # basename dladdr should report
        self.missing = missing           # reason it cannot be measured, or None

    def supports(self, workload):
        return not self.static or workload.kind in ("c", "instr")


COMPARISON_PACKAGES = {
    # name: (Debian package, shared object name)
    "jemalloc": ("libjemalloc2", "libjemalloc.so.2"),
    "tcmalloc": ("libtcmalloc-minimal4", "libtcmalloc_minimal.so.4"),
    "mimalloc": ("libmimalloc2.0", "libmimalloc.so.2"),
}


def find_shared_object(package, soname):
    """Ask dpkg where the package put the library; fall back to a glob."""
    r = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    candidates = [l for l in r.stdout.splitlines() if os.path.basename(l) == soname]
    candidates += sorted(glob.glob(f"/usr/lib/*/{soname}") + glob.glob(f"/usr/lib/{soname}")
                         + glob.glob(f"/lib/*/{soname}"))
    for c in candidates:
        if os.path.exists(c):
            return c
    return None


def shown(path):
    """A path as the user would type it: relative to the repository if inside."""
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def snapshot(path):
    """Copy goheap's library into the build directory and measure the copy, so
    that a rebuild of target/release during a long run cannot mix two builds.
    The copy keeps its name (the preload check looks for libgoheap.so) and
    its modification time (static workloads are relinked when it changes)."""
    dest_dir = os.path.join(BUILD_DIR, "goheap-lib")
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, os.path.basename(path))
    tmp = dest + ".tmp"
    shutil.copy2(path, tmp)
    os.replace(tmp, dest)
    return dest


def goheap_version(lib):
    import hashlib
    version = "?"
    try:
        with open(os.path.join(ROOT, "Cargo.toml")) as f:
            for line in f:
                if line.startswith("version"):
                    version = line.split("=", 1)[1].strip().strip('"')
                    break
    except OSError:
        pass
    built = datetime.datetime.fromtimestamp(os.path.getmtime(lib))
    with open(lib, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return version + f" (built {built:%Y-%m-%d %H:%M:%S}, sha256 {digest})"


def resolve_allocator(name, goheap_dir):
    if name == "glibc":
        return Allocator("glibc", package="libc6", version=package_version("libc6"),
                         expect_malloc_from="libc.so.6")
    if name in COMPARISON_PACKAGES:
        pkg, soname = COMPARISON_PACKAGES[name]
        ensure_packages([pkg])
        path = find_shared_object(pkg, soname)
        if not path:
            return Allocator(name, package=pkg, missing=f"{soname} not found (package {pkg})")
        return Allocator(name, preload=path, package=pkg, version=package_version(pkg),
                         expect_malloc_from=os.path.basename(path))
    if name == "goheap":
        so = os.path.join(goheap_dir, "libgoheap.so")
        if not os.path.exists(so):
            return Allocator(name, missing=f"{shown(so)} does not exist "
                                           "(build it with `make`)")
        lib = snapshot(so)
        return Allocator(name, preload=lib, version=goheap_version(lib),
                         expect_malloc_from="libgoheap.so")
    if name == "goheap-nobg":
        # goheap without its background scavenger thread: the difference to
        # the "goheap" column is what the thread costs (or saves).
        g = resolve_allocator("goheap", goheap_dir)
        return Allocator(name, preload=g.preload, version=g.version, missing=g.missing,
                         expect_malloc_from=g.expect_malloc_from, env={"GOHEAP_BACKGROUND": "0"})
    if name == "goheap-static":
        a = os.path.join(goheap_dir, "libgoheap.a")
        if not os.path.exists(a):
            return Allocator(name, missing=f"{shown(a)} does not exist "
                                           "(build it with `make`)")
        lib = snapshot(a)
        return Allocator(name, static=lib, version=goheap_version(lib))
    raise SystemExit(f"unknown allocator {name!r}; known: {', '.join(ALL_ALLOCATORS)}")


# --------------------------------------------------------------------------
# Building our C workloads (dynamic, and once per static allocator).

def build_c(build_dir, allocators):
    """gcc -O2 each workload (g++ -O2 for a .cc); returns {binary path: error}
    for failed builds.  A binary is rebuilt when its source, a header in
    src/ or the static library it links is newer."""
    os.makedirs(build_dir, exist_ok=True)
    errors = {}
    headers = sorted(glob.glob(os.path.join(W.SRC_DIR, "*.h")))
    jobs = []
    for wname, (binary, source, flags) in W.C_PROGRAMS.items():
        src = os.path.join(W.SRC_DIR, source)
        jobs.append((os.path.join(build_dir, binary), src, flags, []))
        for a in allocators:
            if a.static and not a.missing:
                jobs.append((os.path.join(build_dir, binary + "-" + a.name), src, flags,
                             [a.static, "-lrt"]))
    shim = os.path.join(W.SRC_DIR, "glibc_shim.c")
    jobs.append((os.path.join(build_dir, "libglibc-shim.so"), shim, ["-shared", "-fPIC"], []))
    jobs.append((MEASURE, os.path.join(W.SRC_DIR, "measure.c"), [], []))
    for out, src, flags, libs in jobs:
        deps = [src] + headers + [l for l in libs if os.path.exists(l)]
        if os.path.exists(out) and all(os.path.getmtime(d) <= os.path.getmtime(out) for d in deps):
            continue
        compiler = "g++" if src.endswith(".cc") else "gcc"
        cmd = [compiler, "-O2", "-Wall", "-pthread"] + flags + ["-o", out, src] + libs + ["-ldl", "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            errors[out] = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"{compiler} failed"
            log(f"build failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return errors


# --------------------------------------------------------------------------
# Running one child and measuring it.

def clean_env():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


def tail(path, n=300):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:].strip()
    except OSError:
        return ""


class Child:
    """A child process, started through bench/build/measure in its own process
    group.  measure reaps it with wait4 and reports the kernel's rusage of that
    child (not of the harness, whose RSS would otherwise leak into ru_maxrss
    through vfork+exec: see src/measure.c)."""

    def __init__(self, argv, env, stdin_path=None, stdout=None, stderr=None):
        env = dict(env)
        env["BENCH_CHILD_PRELOAD"] = env.pop("LD_PRELOAD", "")
        fd, self.result_file = tempfile.mkstemp(prefix="measure-", suffix=".txt")
        os.close(fd)
        os.unlink(self.result_file)
        self.stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        self.start = time.monotonic()
        try:
            self.proc = subprocess.Popen([MEASURE, self.result_file] + list(argv), env=env,
                                         stdin=self.stdin,
                                         stdout=stdout or subprocess.DEVNULL,
                                         stderr=stderr or subprocess.DEVNULL,
                                         start_new_session=True)
        except OSError:
            if self.stdin is not subprocess.DEVNULL:
                self.stdin.close()
            raise
        self.usage = None

    def signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self):
        """Ask the program to stop (SIGTERM to the group; measure ignores it)."""
        if self.usage is None:
            self.signal_group(signal.SIGTERM)

    def kill(self):
        if self.usage is None:
            self.signal_group(signal.SIGKILL)
            self.wait()

    def wait(self, timeout=None):
        """Reap the child; on timeout kill its group.  Returns a usage dict."""
        if self.usage is not None:
            return self.usage
        timer = None
        timed_out = threading.Event()
        if timeout:
            def expire():
                timed_out.set()
                self.signal_group(signal.SIGKILL)
            timer = threading.Timer(timeout, expire)
            timer.start()
        try:
            _, status, _ = os.wait4(self.proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        wall = time.monotonic() - self.start
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        if self.stdin is not subprocess.DEVNULL:
            self.stdin.close()
        self.usage = {"status": self.proc.returncode, "timed_out": timed_out.is_set(),
                      "wall_s": wall, "user_s": None, "sys_s": None, "maxrss_kb": None}
        try:
            with open(self.result_file) as f:
                line = f.read()
            os.unlink(self.result_file)
        except OSError:
            return self.usage  # killed before measure could write: keep the harness's wall time
        self.usage.update(parse_measure(line))
        return self.usage


def parse_measure(line):
    """measure's line "status wall_s user_s sys_s maxrss_kb" -> the figures
    in it that are there and finite (a field that is missing, empty, inf or
    nan is left out, so the caller keeps what it had: None, or for wall_s
    the harness's own clock)."""
    fields = line.split()
    out = {}
    status = F.integer(fields[0]) if fields else None
    if status is not None:
        out["status"] = status
    for i, key in ((1, "wall_s"), (2, "user_s"), (3, "sys_s")):
        v = F.figure(fields[i]) if len(fields) > i else None
        if v is not None and v >= 0:
            out[key] = v
    maxrss = F.integer(fields[4]) if len(fields) > 4 else None
    if maxrss is not None and maxrss >= 0:
        out["maxrss_kb"] = maxrss
    return out


def parse_results(stdout):
    """RESULT key=value lines printed by our programs: numbers become int or
    float (figures.result_value: also `inf`, `nan`, localized), a number
    with no finite value None, anything else stays text."""
    extra = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            for item in line[7:].split():
                if "=" in item:
                    k, v = item.split("=", 1)
                    extra[k] = F.result_value(v)
    return extra


def run_command(env, argv, stdin_path=None, timeout=None):
    """Run argv to completion; returns wall/user/sys/maxrss and the output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            child = Child(argv, env, stdin_path, out, err)
        except OSError as e:
            return {"ok": False, "error": f"cannot start {argv[0]}: {e}"}
        usage = child.wait(timeout)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    res = dict(usage, stdout=stdout, stderr=stderr, extra=parse_results(stdout))
    if usage["timed_out"]:
        res.update(ok=False, error=f"timed out after {timeout} s")
    elif usage["status"] != 0:
        last = stderr.strip().splitlines()[-1:] or [""]
        how = (f"killed by signal {-usage['status']}" if usage["status"] < 0
               else f"exit status {usage['status']}")
        res.update(ok=False, error=f"{how}: {last[0][:200]}")
    else:
        res["ok"] = True
    return res


class Context:
    """What a workload needs to know to run: size, threads, paths, timeout."""

    def __init__(self, size, threads, build_dir, tmp_dir, timeout):
        self.size = size
        self.threads = threads
        self.build_dir = build_dir
        self.tmp_dir = tmp_dir
        self.timeout = timeout

    def child_env(self, alloc, shim_for_glibc=False):
        env = clean_env()
        env.update(alloc.env)
        if alloc.preload:
            env["LD_PRELOAD"] = alloc.preload
        elif shim_for_glibc and alloc.name == "glibc":
            env["LD_PRELOAD"] = os.path.join(self.build_dir, "libglibc-shim.so")
        return env


def run_one(ctx, workload, alloc):
    """One run of one workload under one allocator -> result dict."""
    if workload.runner:
        try:
            res = workload.runner(ctx, alloc)
        except Exception as e:  # a broken workload must not stop the suite
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    else:
        cmd = workload.command(ctx, alloc)
        env = ctx.child_env(alloc, workload.preload_shim_for_glibc)
        env.update(cmd.env)
        res = run_command(env, cmd.argv, cmd.stdin, ctx.timeout)
        if res["ok"] and workload.kind == "c":
            check_malloc_from(res, alloc)
        if res["ok"] and workload.check:
            why = workload.check(ctx, res)
            if why:
                res.update(ok=False, error=f"wrong output: {why}")
    stdout = res.pop("stdout", "")
    stderr = res.pop("stderr", "")
    settle(res, workload)
    if not res.get("ok"):
        if stderr:
            res["stderr_tail"] = stderr[-500:]
        if stdout:
            res["stdout_tail"] = stdout[-500:]
    return res


def settle(res, workload):
    """Give the run its state: "measured", SHORT ("too short to measure":
    it ran and its output was right, but a figure the report needs is
    zero, infinite or missing, so it is shown as such and kept out of the
    ratios), or "failed". A figure that is not a finite number is dropped
    (None), so nothing downstream sees inf or nan."""
    for key in ("wall_s", "user_s", "sys_s", "maxrss_kb", "instr"):
        if key in res and res[key] is not None and F.finite(res[key]) is None:
            res[key] = None
    if not res.get("ok"):
        res["state"] = "failed"
        return
    if workload.kind == "instr":
        if not (res.get("instr") or 0) > 0:
            res.update(ok=False, state="failed", error="no instruction count")
            return
    else:
        if res.get("maxrss_kb") is None:
            res.update(ok=False, state="failed",
                       error="no figures from measure (peak RSS missing)")
            return
        if not (res.get("wall_s") or 0) > 0:
            res["state"] = W.SHORT
            res.setdefault("note", "wall time not measurable (0 or missing)")
    res.setdefault("state", "measured")


def finite_json(value):
    """value with every non-finite float replaced by None, so results.json
    is standard JSON (json.dump would write NaN and Infinity)."""
    if isinstance(value, float):
        return value if F.finite(value) is not None else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def check_malloc_from(res, alloc):
    """Fail the run if the program's malloc did not come from the allocator,
    or if it did not print its results (it did not finish its work)."""
    got = res["extra"].get("malloc_from")
    want = alloc.expect_malloc_from
    if alloc.static:
        want = None  # the executable itself; its name varies
        if got in ("libc.so.6",):
            res.update(ok=False, error="static link did not replace glibc's malloc")
            return
    if want and got != want:
        res.update(ok=False, error=f"malloc came from {got}, not {want} (preload not in effect)")
        return
    if not any(k != "malloc_from" for k in res["extra"]):
        res.update(ok=False, error="wrong output: no RESULT line besides malloc_from "
                                   "(the program did not finish its work)")


# --------------------------------------------------------------------------
# The machine, for the table header.

def machine_info():
    def read(path, default="?"):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return default
    cpu = "?"
    for line in read("/proc/cpuinfo", "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in read("/proc/meminfo", "").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "thp_enabled": read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "thp_defrag": read("/sys/kernel/mm/transparent_hugepage/defrag"),
        "hostname": platform.node(),
    }


def program_versions():
    versions = {}
    for name, pkg in [("python3", "python3.11"), ("sqlite3", "sqlite3"),
                      ("redis-server", "redis-server"), ("sort", "coreutils"),
                      ("gcc", "gcc"), ("valgrind", "valgrind")]:
        v = package_version(pkg)
        if v:
            versions[name] = f"{pkg} {v}"
    return versions


# --------------------------------------------------------------------------
# The suite.

def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="quick sizes (< 5 minutes)")
    mode.add_argument("--smoke", action="store_true",
                      help="smallest size once, glibc and goheap only; assert every workload ran")
    p.add_argument("--runs", type=int, help="runs per workload and allocator")
    p.add_argument("--only", help="comma-separated workloads")
    p.add_argument("--allocators", help=f"comma-separated, from {','.join(ALL_ALLOCATORS)}")
    p.add_argument("--allow-missing", action="store_true",
                   help="skip allocators whose library is missing instead of failing")
    p.add_argument("--threads", type=int, help="threads for multi-threaded workloads "
                                               "(default: max(2, nproc))")
    p.add_argument("--goheap-dir", default=GOHEAP_DIR,
                   help="where libgoheap.so and libgoheap.a are (default: target/release)")
    p.add_argument("--no-latest", action="store_true",
                   help="do not update bench/results/latest.{md,png}")
    p.add_argument("--list", action="store_true", help="list workloads and exit")
    p.add_argument("--report-from", metavar="DIR",
                   help="measure nothing: write DIR's summary and plots again from its "
                        "results.json (and bench/results/latest.*, unless --no-latest)")
    return p.parse_args(argv)


def select_workloads(args):
    ws = W.all_workloads()
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        known = {w.name for w in ws}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise SystemExit(f"unknown workload(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        ws = [w for w in ws if w.name in wanted]
    return ws


def select_allocators(args):
    if args.allocators:
        names = [a.strip() for a in args.allocators.split(",") if a.strip()]
    elif args.smoke:
        names = ["glibc", "goheap", "goheap-static"]
    else:
        names = list(ALL_ALLOCATORS)
    allocs = [resolve_allocator(n, os.path.abspath(args.goheap_dir)) for n in names]
    missing = [a for a in allocs if a.missing]
    for a in missing:
        log(f"{a.name}: {a.missing}" + ("; skipping it (--allow-missing)" if args.allow_missing else ""))
    if missing and not args.allow_missing:
        if args.smoke:  # still close with the line the test runner reads
            log(f"0 passed, {len(missing)} failed")
        raise SystemExit("error: allocator library missing (use --allow-missing to skip it)")
    return [a for a in allocs if not a.missing], missing


def prepare_workloads(ctx, workloads):
    """Install packages and generate inputs; returns {workload: reason} for
    workloads that cannot run at all (they are reported as failed)."""
    broken = {}
    ensure_packages([p for w in workloads for p in w.packages])
    for w in workloads:
        absent = [p for p in w.programs if shutil.which(p) is None]
        if absent:
            broken[w.name] = f"program not found: {', '.join(absent)}"
            continue
        if w.prepare:
            try:
                w.prepare(ctx)
            except Exception as e:
                broken[w.name] = f"preparing inputs failed: {e}"
    return broken


def run_suite(ctx, workloads, allocators, runs, broken, build_errors, raw_path, meta):
    """Workload by workload, round after round, allocators interleaved."""
    results = []
    plan = []
    for w in workloads:
        w_runs = 1 if w.deterministic else runs
        for r in range(w_runs):
            for a in allocators:
                if a.supports(w):
                    plan.append((w, r, a))
    width = max(len(w.name) for w in workloads)
    for i, (w, r, a) in enumerate(plan, 1):
        binary_error = None
        if w.kind in ("c", "instr"):
            binary_error = build_errors.get(W.c_binary(ctx, w.name, a))
        if w.name in broken:
            res = {"ok": False, "error": broken[w.name]}
        elif binary_error:
            res = {"ok": False, "error": f"build failed: {binary_error}"}
        else:
            res = run_one(ctx, w, a)
        res.update(workload=w.name, allocator=a.name, round=r)
        results.append(res)
        log(f"[{i:3d}/{len(plan)}] {w.name:<{width}} {a.name:<13} run {r + 1}  " + describe(res))
        with open(raw_path, "w") as f:
            json.dump(finite_json(dict(meta, runs=results)), f, indent=1)
    return results


def describe(res):
    if not res.get("ok"):
        return "FAILED: " + res.get("error", "?")
    if res.get("instr") is not None:
        return f"{res['instr']:.1f} instructions/pair"

    def num(key, fmt, scale=1.0):
        v = res.get(key)
        return "?" if v is None else format(v / scale, fmt)
    s = f"{num('wall_s', '.3f')} s  {num('maxrss_kb', '.1f', 1024)} MiB"
    if res.get("user_s") is not None or res.get("sys_s") is not None:
        s += f"  (user {num('user_s', '.2f')} s, sys {num('sys_s', '.2f')} s)"
    if res.get("state") == W.SHORT:
        s += f"  {W.SHORT}: {res.get('note', '')}".rstrip(": ")
    return s


def smoke_verdict(workloads, allocators, results):
    """Every workload must have run under every allocator, to the end and
    with the right output: a figure, or "too short to measure" (which the
    smoke size may well be on a fast machine; said, not failed)."""
    passed = failed = 0
    for w in workloads:
        for a in allocators:
            if not a.supports(w):
                continue
            rs = [r for r in results if r["workload"] == w.name and r["allocator"] == a.name]
            good = [r for r in rs if r.get("ok") and (
                r.get("state") == W.SHORT or
                (r.get("instr") or 0) > 0 or
                ((r.get("wall_s") or 0) > 0 and (r.get("maxrss_kb") or 0) > 0))]
            if good:
                passed += 1
                short = [r for r in good if r.get("state") == W.SHORT]
                if short and len(short) == len(good):
                    log(f"NOTE {w.name} under {a.name}: ran, {W.SHORT}: {short[0].get('note', '')}")
            else:
                failed += 1
                why = rs[0].get("error", "no figure") if rs else "not run"
                log(f"FAIL {w.name} under {a.name}: {why}")
    return passed, failed


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.report_from:
        return report_from(args)
    if args.list:
        ws = W.all_workloads()
        width = max(len(w.name) for w in ws) + 1
        for w in ws:
            print(f"{w.name:<{width}} {w.description}")
        return 0
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    runs = args.runs or DEFAULT_RUNS[size]
    started = time.monotonic()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-smoke" if args.smoke else "")
    workloads = select_workloads(args)
    allocators, missing = select_allocators(args)
    if not allocators:
        raise SystemExit("error: no allocator left to measure")
    out_dir = os.path.join(RESULTS_DIR, stamp)
    os.makedirs(out_dir, exist_ok=True)
    threads = args.threads or max(2, len(os.sched_getaffinity(0)))
    tmp_dir = tempfile.mkdtemp(prefix="goheap-bench-")
    ctx = Context(size, threads, BUILD_DIR, tmp_dir, TIMEOUT[size])
    build_errors = build_c(BUILD_DIR, allocators)
    if MEASURE in build_errors:
        raise SystemExit("error: cannot build bench/src/measure.c, which every run needs")
    broken = prepare_workloads(ctx, workloads)

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "size": size, "runs_per_cell": runs, "threads": threads,
        "machine": machine_info(),
        "allocators": {a.name: {"version": a.version, "package": a.package,
                                "preload": a.preload, "static": a.static} for a in allocators},
        "missing_allocators": {a.name: a.missing for a in missing},
        "programs": program_versions(),
        "goheap_env": {k: v for k, v in os.environ.items() if k.startswith("GOHEAP_")},
        "workloads": {w.name: w.description for w in workloads},
    }
    raw_path = os.path.join(out_dir, "results.json")
    log(f"goheap bench: size={size}, runs={runs}, threads={threads}, "
        f"allocators={','.join(a.name for a in allocators)}, results in {os.path.relpath(out_dir, ROOT)}/")
    try:
        results = run_suite(ctx, workloads, allocators, runs, broken, build_errors, raw_path, meta)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    with open(raw_path, "w") as f:
        json.dump(finite_json(dict(meta, runs=results)), f, indent=1)
    summary = write_report(args, out_dir, meta, workloads, allocators, results)
    log("")
    log(summary)
    log(f"results: {os.path.relpath(out_dir, ROOT)}/ (elapsed {meta['elapsed_s']} s)")

    if args.smoke:
        passed, failed = smoke_verdict(workloads, allocators, results)
        log(f"{passed} passed, {failed} failed")
        return 1 if failed else 0
    return 0


def report_from(args):
    """--report-from: the report of a finished (or interrupted) run, from
    its results.json, with the workloads and allocators it recorded."""
    out_dir = args.report_from
    with open(os.path.join(out_dir, "results.json")) as f:
        data = json.load(f)
    results = data.pop("runs")
    meta = data
    ran = {r["workload"] for r in results}
    workloads = [w for w in W.all_workloads() if w.name in ran]
    allocators = [Allocator(name, preload=info.get("preload"), static=info.get("static"),
                            package=info.get("package"), version=info.get("version"))
                  for name, info in meta["allocators"].items()]
    log(write_report(args, out_dir, meta, workloads, allocators, results))
    return 0


def write_report(args, out_dir, meta, workloads, allocators, results):
    """summary.md and the plots in out_dir (and latest.*): returns the summary."""
    import report
    summary = report.summary_markdown(meta, workloads, allocators, results)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(summary)
    plot_path = None
    if not args.smoke and ensure_matplotlib():
        plot_path = os.path.join(out_dir, "plot.png")
        try:
            report.plot(meta, workloads, allocators, results, plot_path)
        except Exception as e:
            log(f"warning: plot failed: {e}")
            plot_path = None
        try:   # every allocator's ratio to mimalloc, for the record (not copied to latest)
            report.plot_all(meta, workloads, allocators, results, os.path.join(out_dir, "plot-all.png"))
        except Exception as e:
            log(f"warning: plot-all failed: {e}")
    if not args.smoke and not args.no_latest:
        shutil.copyfile(os.path.join(out_dir, "summary.md"), os.path.join(RESULTS_DIR, "latest.md"))
        if plot_path:
            shutil.copyfile(plot_path, os.path.join(RESULTS_DIR, "latest.png"))
    return summary


if __name__ == "__main__":
    sys.exit(main())
