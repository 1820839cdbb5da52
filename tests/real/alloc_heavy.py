"""Allocation-heavy, deterministic Python workload: dicts and lists, strings,
JSON round trips, many small objects, big buffers, threads.

    alloc_heavy.py                 tests/real: one line per part, compared
                                   between runs under glibc and under goheap
    alloc_heavy.py smoke|quick|full
                                   the benchmark (bench/workloads.py): the
                                   same work scaled, and one line
                                   "RESULT checksum=N"

With ALLOC_HEAVY_EXPECT_GOHEAP=1 it also checks through ctypes that goheap
is the allocator serving malloc (malloc_usable_size(malloc(1)) is 8 under
goheap, 24 under glibc); that check prints nothing. Run it with
PYTHONMALLOC=malloc so that small objects reach the C allocator too."""
import ctypes
import gc
import hashlib
import json
import os
import random
import sys
import threading
import zlib

# How much work each size does, relative to the test run (1.0).
SCALE = {"smoke": 0.1, "quick": 0.5, "full": 3.0}


def check_goheap_serving():
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.malloc_usable_size.restype = ctypes.c_size_t
    libc.malloc_usable_size.argtypes = [ctypes.c_void_p]
    libc.free.argtypes = [ctypes.c_void_p]
    p = libc.malloc(1)
    us = libc.malloc_usable_size(p)
    libc.free(p)
    if us != 8:
        sys.stderr.write("alloc_heavy: malloc_usable_size(malloc(1)) = %d, expected 8: goheap is not serving\n" % us)
        sys.exit(3)
    # large blocks through ctypes as well: write them fully
    for n in (40000, 1 << 20, 5 << 20):
        p = libc.malloc(n)
        assert p and libc.malloc_usable_size(p) >= n
        ctypes.memset(p, 0x5A, n)
        libc.free(p)


def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


def n_of(f, n):
    """`n` scaled by `f`, at least 1."""
    return max(1, int(n * f))


def dicts_and_lists(rng, f):
    d = {}
    for i in range(n_of(f, 200000)):
        k = "k%d" % rng.randrange(50000)
        d.setdefault(k, []).append(i)
    sizes = sorted(len(v) for v in d.values())
    nested = [{"id": i, "tags": ["t%d" % (i % 7)] * (i % 5), "v": i * 1.5} for i in range(n_of(f, 50000))]
    nested.sort(key=lambda x: (-len(x["tags"]), x["id"] % 97, x["id"]))
    return len(d), sum(sizes), sizes[-5:], digest(nested[:50])


def strings(rng, f):
    parts = []
    for i in range(n_of(f, 100000)):
        parts.append(("%x" % rng.getrandbits(64)) * (1 + i % 4))
    s = "|".join(parts)
    t = s.upper().replace("A", "aa").split("|")
    joined = "".join(sorted(t)[:1000])
    words = {}
    for w in s[:2000000].split("0"):
        words[w] = words.get(w, 0) + 1
    return len(s), len(t), digest(joined), len(words)


def json_roundtrips(rng, f):
    doc = {
        "users": [
            {"name": "user%05d" % i, "age": rng.randrange(18, 90), "scores": [rng.random() for _ in range(10)],
             "meta": {"k": "v" * (i % 50), "n": None, "ok": i % 2 == 0}}
            for i in range(n_of(f, 6000))
        ]
    }
    h = ""
    for _ in range(3):
        text = json.dumps(doc, sort_keys=True)
        doc = json.loads(text)
        h = hashlib.sha256(text.encode()).hexdigest()[:16]
    return len(text), h


def many_small_objects(f):
    objs = [(i, str(i), [i] * (i % 3), {i: i}) for i in range(n_of(f, 250000))]
    total = sum(o[0] for o in objs if len(o[2]) == 2)
    del objs[::2]
    objs2 = [frozenset((i, i + 1)) for i in range(n_of(f, 150000))]
    gc.collect()
    return total, len(objs), len(objs2)


def big_buffers(rng, f):
    out = []
    b = bytearray()
    for i in range(n_of(f, 40)):
        b += bytes([i % 256]) * (256 * 1024)
    out.append(zlib.crc32(b))
    blobs = [bytearray(rng.randrange(1, 4 << 20)) for _ in range(n_of(f, 20))]
    for j, x in enumerate(blobs):
        x[-1] = j
        x[0] = j
    out.append(sum(len(x) for x in blobs))
    big = bytes(n_of(f, 64) << 20)
    out.append(len(big))
    comp = zlib.compress(bytes(b) * 2, 6)
    out.append(len(zlib.decompress(comp)))
    return out


def threaded(seed, f):
    results = [None] * 4

    def work(idx):
        r = random.Random(seed + idx)
        acc = {}
        for i in range(n_of(f, 25000)):
            key = (r.randrange(1000), "x" * r.randrange(1, 40))
            acc[key] = acc.get(key, 0) + i * r.randrange(3)
            if i % 1000 == 0:
                json.loads(json.dumps({str(k): v for k, v in list(acc.items())[:200]}))
        results[idx] = (len(acc), sum(acc.values()) % 1000003)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def main():
    size = sys.argv[1] if len(sys.argv) > 1 else None
    if size is not None and size not in SCALE:
        sys.exit("usage: alloc_heavy.py [smoke|quick|full]")
    f = SCALE.get(size, 1.0)
    if os.environ.get("ALLOC_HEAVY_EXPECT_GOHEAP") == "1":
        check_goheap_serving()
    rng = random.Random(12345)
    lines = [
        ("dicts_and_lists", dicts_and_lists(rng, f)),
        ("strings", strings(rng, f)),
        ("json", json_roundtrips(rng, f)),
        ("small_objects", many_small_objects(f)),
        ("big_buffers", big_buffers(rng, f)),
        ("threads", threaded(777, f)),
    ]
    if size is None:
        for name, value in lines:
            print(name, value)
        print("done")
    else:
        print("RESULT checksum=%d" % int(digest(lines), 16))


if __name__ == "__main__":
    main()
