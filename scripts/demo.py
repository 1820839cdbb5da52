"""An allocation-heavy Python workload, run by `make demo` under goheap.

It builds and tears down a few hundred MB of dicts, lists, strings and JSON
across threads, then shows which allocator served it: goheap's smallest
size class is 8 bytes (glibc's smallest chunk gives 24).
"""
import ctypes
import json
import threading
import time


def churn(seed, n):
    objs = {}
    for i in range(n):
        k = (i * 7919 + seed) % (n // 4 + 1)
        objs[k] = [str(i)] * (i % 17) + [bytearray(i % 4096)]
    return sum(len(v) for v in objs.values())


def main():
    t0 = time.time()
    doc = {str(i): {"id": i, "tags": ["t%d" % (i % 13)] * 5, "v": i * 0.5} for i in range(200_000)}
    text = json.dumps(doc)
    back = json.loads(text)
    assert back == doc
    results = [0] * 4
    threads = [threading.Thread(target=lambda j=j: results.__setitem__(j, churn(j, 150_000))) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc_usable_size.argtypes = [ctypes.c_void_p]
    libc.malloc_usable_size.restype = ctypes.c_size_t
    libc.free.argtypes = [ctypes.c_void_p]
    p = libc.malloc(1)
    usable = libc.malloc_usable_size(p)
    libc.free(p)
    print("json bytes: %d, churn checksums: %s, %.2f s" % (len(text), results, time.time() - t0))
    if usable == 8:
        print("served by goheap: malloc_usable_size(malloc(1)) == 8")
    else:
        print("NOT served by goheap: malloc_usable_size(malloc(1)) == %d" % usable)
        raise SystemExit(1)


main()
