#!/usr/bin/env python3
"""Unit checks of how the benchmark harness reads what tools print
(bench/figures.py, harness.parse_measure/parse_results, the redis and
callgrind parsers in workloads.py) and of what it makes of a run (settle,
the smoke verdict, the report). Standard library only; `make test` runs it
before the bench smoke:

    python3 bench/test_parse.py
"""
import json
import os
import sys
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import figures as F  # noqa: E402
import harness as H  # noqa: E402
import report as R  # noqa: E402
import workloads as W  # noqa: E402


class Figures(unittest.TestCase):
    def test_plain(self):
        for text, want in [("12", 12.0), ("1.5", 1.5), (" 0.000123 ", 0.000123), ("+3", 3.0),
                           ("-2.5e3", -2500.0), ('"125999.99"', 125999.99), ("0", 0.0)]:
            self.assertEqual(F.parse_figure(text), (want, None), text)

    def test_no_value(self):
        for text, why in [("inf", F.INFINITE), ("-inf", F.INFINITE), ("+Inf", F.INFINITE),
                          ("infinity", F.INFINITE), ("1e999", F.INFINITE),
                          ("nan", F.NOT_A_NUMBER), ("-nan", F.NOT_A_NUMBER), ("NaN", F.NOT_A_NUMBER),
                          ("nan(0x8000)", F.NOT_A_NUMBER),
                          ("", F.EMPTY), ("   ", F.EMPTY), ('""', F.EMPTY), ("-", F.EMPTY),
                          ("n/a", F.EMPTY), (None, F.EMPTY),
                          ("abc", F.UNPARSABLE), ("1.2.3", F.UNPARSABLE), ("0x10", F.UNPARSABLE),
                          ("1,23,4", F.UNPARSABLE), ("12 ms", F.UNPARSABLE)]:
            self.assertEqual(F.parse_figure(text), (None, why), text)

    def test_localized(self):
        for text, want in [("1,234.5", 1234.5), ("1.234,5", 1234.5), ("1 234,5", 1234.5),
                           ("1\u202f234,5", 1234.5), ("1\u00a0234", 1234.0), ("1'234.5", 1234.5),
                           ("12,5", 12.5), ("1,234", 1234.0), ("1,234,567", 1234567.0),
                           ("1.234.567", 1234567.0), ("-1,234.5", -1234.5), ("1.234", 1.234)]:
            self.assertEqual(F.parse_figure(text), (want, None), text)

    def test_integer(self):
        self.assertEqual(F.integer("42"), 42)
        self.assertEqual(F.integer("1,024"), 1024)
        self.assertIsNone(F.integer("4.5"))
        self.assertIsNone(F.integer("inf"))
        self.assertIsNone(F.integer(""))

    def test_result_value(self):
        self.assertEqual(F.result_value("123"), 123)
        self.assertIsInstance(F.result_value("123"), int)
        self.assertEqual(F.result_value("0.25"), 0.25)
        self.assertEqual(F.result_value("1,234"), 1234)
        self.assertEqual(F.result_value("libgoheap.so"), "libgoheap.so")
        for text in ("inf", "-nan", "nan", ""):
            self.assertIsNone(F.result_value(text), text)


class Harness(unittest.TestCase):
    def test_parse_measure(self):
        self.assertEqual(H.parse_measure("0 1.500000 1.000000 0.250000 20480\n"),
                         {"status": 0, "wall_s": 1.5, "user_s": 1.0, "sys_s": 0.25, "maxrss_kb": 20480})
        self.assertEqual(H.parse_measure("0 inf nan -nan 100"), {"status": 0, "maxrss_kb": 100})
        self.assertEqual(H.parse_measure("-9 0.5"), {"status": -9, "wall_s": 0.5})
        self.assertEqual(H.parse_measure(""), {})
        self.assertEqual(H.parse_measure("garbage here"), {})

    def test_parse_results(self):
        out = ("noise\nRESULT malloc_from=libgoheap.so threads=2 rate=inf ratio=-nan\n"
               "RESULT final_rss_kb=1,234 empty= x=0.5\nRESULT\n")
        self.assertEqual(H.parse_results(out), {"malloc_from": "libgoheap.so", "threads": 2, "rate": None,
                                                "ratio": None, "final_rss_kb": 1234, "empty": None, "x": 0.5})

    def test_finite_json(self):
        doc = H.finite_json({"a": float("inf"), "b": [float("nan"), 1.5, {"c": -float("inf")}], "d": "x"})
        self.assertEqual(doc, {"a": None, "b": [None, 1.5, {"c": None}], "d": "x"})
        json.dumps(doc, allow_nan=False)


REDIS_HEADER = '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",' \
               '"p99_latency_ms","max_latency_ms"\n'
REDIS_NAMES = ["SET", "GET", "INCR", "LPUSH", "LPOP", "SADD", "HSET", "ZADD",
               "LPUSH (needed to benchmark LRANGE)", "LRANGE_100 (first 100 elements)", "MSET (10 keys)"]


def redis_csv(rates, header=True):
    rows = [f'"{name}","{rate}","0.8","0.1","0.5","5.5","5.6","5.6"\n' for name, rate in zip(REDIS_NAMES, rates)]
    return (REDIS_HEADER if header else "") + "".join(rows)


class Redis(unittest.TestCase):
    def test_all_measured(self):
        p = W.parse_redis_csv(redis_csv(["100000.00"] * 11), W.REDIS_TESTS)
        self.assertEqual(p["missing"], [])
        self.assertEqual(p["unmeasured"], {})
        self.assertEqual(p["sum_rps"], 1000000)   # 10 tests: the LPUSH helper row is not one

    def test_inf_rate(self):
        # the crash of issue 11: round(inf) raised OverflowError
        rates = ["inf", "126000.00", "-nan", "", "1,008,000.00", "nan", "201600.00", "336000.00",
                 "inf", "27162.16", "142857.14"]
        p = W.parse_redis_csv(redis_csv(rates), W.REDIS_TESTS)
        self.assertEqual(p["missing"], [])
        self.assertEqual(p["unmeasured"], {"SET": F.INFINITE, "INCR": F.NOT_A_NUMBER,
                                           "LPUSH": F.EMPTY, "SADD": F.NOT_A_NUMBER})
        self.assertIsNone(p["sum_rps"])
        self.assertEqual(p["rps"]["GET"], 126000.0)
        self.assertEqual(p["rps"]["LPOP"], 1008000.0)

    def test_missing_rows_and_columns(self):
        p = W.parse_redis_csv(redis_csv(["5000"] * 5, header=False), W.REDIS_TESTS)
        self.assertEqual(p["missing"], ["sadd", "hset", "zadd", "lrange_100", "mset"])
        p = W.parse_redis_csv('"SET"\n"GET",\n', ["set", "get"])
        self.assertEqual(p["missing"], [])
        self.assertEqual(p["unmeasured"], {"SET": F.EMPTY, "GET": F.EMPTY})
        p = W.parse_redis_csv("", W.REDIS_TESTS)
        self.assertEqual(p["missing"], W.REDIS_TESTS)
        p = W.parse_redis_csv('garbage\n"unterminated,\n\x00', W.REDIS_TESTS)
        self.assertEqual(len(p["missing"]), len(W.REDIS_TESTS))

    def fake_run(self, stdout, client_ok=True):
        """redis_runner against stand-ins for redis-server and redis-benchmark."""
        class FakeChild:
            def __init__(self, argv, env):
                self.proc = types.SimpleNamespace(poll=lambda: None, pid=0)

            def kill(self):
                pass

            def terminate(self):
                pass

            def wait(self, timeout=None):
                return {"status": 0, "user_s": 0.01, "sys_s": 0.02, "maxrss_kb": 9000}

        def fake_command(env, argv, stdin_path=None, timeout=None):
            if not client_ok:
                return {"ok": False, "error": "exit status 1: Could not connect"}
            return {"ok": True, "wall_s": 0.05, "stdout": stdout, "stderr": ""}

        saved = (H.Child, H.run_command, W.wait_for_port)
        H.Child, H.run_command, W.wait_for_port = FakeChild, fake_command, lambda port, proc: True
        try:
            ctx = H.Context("smoke", 2, "/nonexistent", "/tmp", 10)
            alloc = H.Allocator("glibc")
            workload = [w for w in W.all_workloads() if w.name == "redis"][0]
            res = H.run_one(ctx, workload, alloc)
        finally:
            H.Child, H.run_command, W.wait_for_port = saved
        return res

    def test_runner_inf_is_too_short(self):
        res = self.fake_run(redis_csv(["inf"] * 2 + ["100000.00"] * 9))
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["state"], W.SHORT)
        self.assertIn("SET (infinite)", res["note"])

    def test_runner_measured(self):
        res = self.fake_run(redis_csv(["100000.00"] * 11))
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["state"], "measured")
        self.assertEqual(res["extra"]["sum_rps"], 1000000)

    def test_runner_wrong_output_fails(self):
        res = self.fake_run(redis_csv(["100000.00"] * 4))
        self.assertFalse(res["ok"])
        self.assertIn("no result for", res["error"])
        res = self.fake_run("")
        self.assertFalse(res["ok"])
        res = self.fake_run("", client_ok=False)
        self.assertFalse(res["ok"])


class IssueThirteenChecks(unittest.TestCase):
    """The output checks of the workloads added for issue 13: the right
    figures pass, a wrong count, a changed stamp (errors=) or a missing
    line fails."""

    def check(self, name, extra, size="smoke", threads=2):
        ctx = H.Context(size, threads, "/nonexistent", "/tmp", 10)
        return W.C_CHECKS[name](ctx, {"extra": extra, "stdout": ""})

    GOOD = {
        "thread-churn": {"ns_per_thread": 20500, "ns_per_thread_bare": 19800, "cost_threads": 400,
                         "churn_threads": 1000, "wave": 2, "allocations": 8762, "errors": 0},
        "live-set-lifo": {"order": "lifo", "blocks": 400000, "errors": 0},
        "live-set-fifo": {"order": "fifo", "blocks": 400000, "errors": 0},
        "live-set-random": {"order": "random", "blocks": 400000, "errors": 0},
        "cfrac-like": {"steps": 300000, "allocations": 360700, "errors": 0},
        "free-sized": {"malloc_from": "libc.so.6", "via": "free", "free_sized_from": "not-found",
                       "threads": 2, "steps": 1000000, "errors": 0},
        "sized-delete": {"via": "sized-delete", "delete_from": "libstdc++.so.6", "threads": 2,
                         "steps": 1000000, "errors": 0},
        "midsize": {"allocations": 1001, "errors": 0},
        "small-heap": {"threads": 5, "steps": 150000, "errors": 0, "live_kb": 322, "rss_all_kb": 3344},
    }

    def test_good_output_passes(self):
        self.assertEqual(set(self.GOOD), set(W.C_CHECKS))
        for name, extra in self.GOOD.items():
            self.assertIsNone(self.check(name, extra), name)

    def test_changed_stamp_fails(self):
        for name, extra in self.GOOD.items():
            self.assertIn("errors=1", self.check(name, dict(extra, errors=1)) or "", name)

    def test_missing_line_fails(self):
        for name, extra in self.GOOD.items():
            self.assertIsNotNone(self.check(name, {"malloc_from": "libc.so.6"}), name)

    def test_wrong_work_fails(self):
        for name, key, value in [("thread-churn", "churn_threads", 999), ("thread-churn", "allocations", 10),
                                 ("live-set-fifo", "order", "lifo"), ("live-set-lifo", "blocks", 399999),
                                 ("cfrac-like", "steps", 299999), ("free-sized", "steps", 999998),
                                 ("sized-delete", "via", "free"), ("midsize", "allocations", 999),
                                 ("small-heap", "live_kb", 20), ("small-heap", "steps", 30000)]:
            self.assertIsNotNone(self.check(name, dict(self.GOOD[name], **{key: value})), (name, key))
        # the sizes differ: a smoke result is not a quick one
        self.assertIsNotNone(self.check("live-set-lifo", self.GOOD["live-set-lifo"], size="quick"))
        # the sized churn's steps are split over the threads
        self.assertIsNone(self.check("free-sized", dict(self.GOOD["free-sized"], threads=3, steps=999999),
                                     threads=3))

    def test_free_sized_from_another_object_fails(self):
        good = dict(self.GOOD["free-sized"], via="free_sized", free_sized_from="libc.so.6")
        self.assertIsNone(self.check("free-sized", good))
        bad = dict(good, malloc_from="libjemalloc.so.2")
        self.assertIn("another allocator", self.check("free-sized", bad))
        self.assertIsNotNone(self.check("free-sized", dict(good, via="sdallocx")))
        self.assertIsNotNone(self.check("sized-delete", dict(self.GOOD["sized-delete"], delete_from="not-found")))


def run(workload, allocator, **fields):
    r = {"workload": workload, "allocator": allocator, "round": 0, "extra": {}}
    r.update(fields)
    return r


class Verdict(unittest.TestCase):
    def setUp(self):
        self.c = W.Workload("larson", "d", "c")
        self.redis = W.Workload("redis", "d", "real")
        self.instr = W.Workload("pair-instr", "d", "instr")
        self.allocs = [H.Allocator("glibc"), H.Allocator("goheap")]
        self.logged = []
        self.saved_log, H.log = H.log, self.logged.append

    def tearDown(self):
        H.log = self.saved_log

    def settled(self, workload, **fields):
        r = dict(fields)
        H.settle(r, workload)
        return r

    def test_settle(self):
        ok = self.settled(self.c, ok=True, wall_s=0.5, maxrss_kb=100)
        self.assertEqual(ok["state"], "measured")
        short = self.settled(self.c, ok=True, wall_s=0.0, maxrss_kb=100)
        self.assertEqual(short["state"], W.SHORT)
        inf = self.settled(self.c, ok=True, wall_s=float("inf"), maxrss_kb=100)
        self.assertEqual((inf["state"], inf["wall_s"]), (W.SHORT, None))
        nofig = self.settled(self.c, ok=True, wall_s=0.5, maxrss_kb=None)
        self.assertEqual((nofig["ok"], nofig["state"]), (False, "failed"))
        crashed = self.settled(self.c, ok=False, error="killed by signal 11")
        self.assertEqual(crashed["state"], "failed")
        noinstr = self.settled(self.instr, ok=True, instr=float("nan"))
        self.assertFalse(noinstr["ok"])

    def test_c_output_checked(self):
        static = H.Allocator("goheap-static", static="/x/libgoheap.a")
        preload = H.Allocator("goheap", expect_malloc_from="libgoheap.so")
        for alloc, extra, ok in [(static, {"malloc_from": "larson", "ops": 1}, True),
                                 (static, {"malloc_from": "larson"}, False),
                                 (static, {"malloc_from": "libc.so.6", "ops": 1}, False),
                                 (preload, {"malloc_from": "libgoheap.so", "ops": 1}, True),
                                 (preload, {"malloc_from": "libgoheap.so"}, False),
                                 (preload, {"malloc_from": "libc.so.6", "ops": 1}, False),
                                 (preload, {"ops": 1}, False)]:
            r = {"ok": True, "extra": extra}
            H.check_malloc_from(r, alloc)
            self.assertEqual(r["ok"], ok, (alloc.name, extra))

    def verdict(self, results):
        return H.smoke_verdict([self.c, self.redis], self.allocs, results)

    def test_smoke_passes_short_fails_crash(self):
        good = [run("larson", "glibc", ok=True, state="measured", wall_s=0.1, maxrss_kb=10),
                run("larson", "goheap", ok=True, state="measured", wall_s=0.1, maxrss_kb=10),
                run("redis", "glibc", ok=True, state=W.SHORT, wall_s=0.1, maxrss_kb=10, note="SET (infinite)"),
                run("redis", "goheap", ok=True, state="measured", wall_s=0.1, maxrss_kb=10)]
        self.assertEqual(self.verdict(good), (4, 0))
        self.assertEqual(self.logged, ["NOTE redis under glibc: ran, too short to measure: SET (infinite)"])
        crash = good[:3] + [run("redis", "goheap", ok=False, state="failed", error="killed by signal 11")]
        self.assertEqual(self.verdict(crash), (3, 1))
        self.assertEqual(self.verdict(good[:3]), (3, 1))   # a workload that did not run at all

    def test_report(self):
        results = [run("larson", "glibc", ok=True, state="measured", wall_s=0.2, maxrss_kb=2048),
                   run("larson", "goheap", ok=True, state=W.SHORT, wall_s=None, maxrss_kb=2048,
                       note="wall time not measurable"),
                   run("redis", "glibc", ok=True, state=W.SHORT, wall_s=0.1, maxrss_kb=10,
                       note="redis-benchmark could not time SET (infinite)"),
                   run("redis", "goheap", ok=False, state="failed", error="exit status 1")]
        meta = {"size": "smoke", "date": "d", "runs_per_cell": 1, "threads": 2,
                "machine": {"nproc": 2, "cpu": "c", "memory_gib": 1, "kernel": "k",
                            "thp_enabled": "t", "thp_defrag": "t"},
                "allocators": {"glibc": {"version": None}, "goheap": {"version": "0.1"}}}
        md = R.summary_markdown(meta, [self.c, self.redis], self.allocs, results)
        self.assertIn(W.SHORT, md)
        self.assertIn("**failed**", md)
        self.assertIn("could not time SET", md)
        self.assertEqual(R.ratios([self.c, self.redis], self.allocs, results, "time")["goheap"], {})

    def test_best_anchor(self):
        allocs = [H.Allocator(n) for n in ("glibc", "jemalloc", "tcmalloc", "mimalloc", "goheap")]
        times = {"glibc": 2.0, "jemalloc": 1.5, "tcmalloc": 1.0, "mimalloc": 1.2, "goheap": 1.3}
        rss = {"glibc": 1000, "jemalloc": 4000, "tcmalloc": 8000, "mimalloc": 2000, "goheap": 1500}
        results = [run("larson", a, ok=True, state="measured", wall_s=times[a], maxrss_kb=rss[a])
                   for a in times]
        results += [run("redis", "glibc", ok=True, state="measured", wall_s=1.0, maxrss_kb=10),
                    run("redis", "mimalloc", ok=False, state="failed", error="x"),
                    run("redis", "goheap", ok=False, state="failed", error="exit status 1")]
        ws = [self.c, self.redis]
        t = R.best_ratios(ws, allocs, results, "time")
        self.assertEqual(set(t), {"goheap"})                    # anchors are not compared with themselves
        self.assertAlmostEqual(t["goheap"]["larson"][0], 1.3)   # ÷ tcmalloc's 1.0
        self.assertEqual(t["goheap"]["larson"][1], "tcmalloc")
        self.assertNotIn("redis", t["goheap"])
        m = R.best_ratios(ws, allocs, results, "rss")["goheap"]["larson"]
        self.assertEqual((m[0], m[1]), (1.5, "glibc"))
        table = R.best_table(ws, allocs, results)
        self.assertIn("| larson | tcmalloc 1.000 s | **1.30** | glibc 1.0 MiB | **1.50** |", table)
        self.assertIn("| redis | glibc 1.000 s | **failed** |", table)
        self.assertIn("1.30 (1)", table)                       # the geomean row
        # no anchor, or nothing but anchors: no table
        self.assertIsNone(R.best_table(ws, [H.Allocator("goheap")], results))
        self.assertIsNone(R.best_table(ws, allocs[:4], results))


if __name__ == "__main__":
    unittest.main(verbosity=1)
