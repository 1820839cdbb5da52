"""An allocation-heavy Python program for the goheap benchmark.

Run as: python3 alloc_heavy.py smoke|quick|full
The harness sets PYTHONMALLOC=malloc, so every Python object goes through the
C allocator under test (by default CPython's own pymalloc would serve objects
of up to 512 bytes and hide the allocator).  The work is a mix that typical
scripts do: building and dropping dicts of records, string formatting and
joining, JSON round trips, sorting, and growing byte strings.
"""
import json
import random
import sys

SCALE = {"smoke": 1, "quick": 4, "full": 30}


class Record:
    __slots__ = ("key", "name", "tags", "score")

    def __init__(self, key, name, tags, score):
        self.key, self.name, self.tags, self.score = key, name, tags, score


def records(rng, n):
    table = {}
    for i in range(n):
        name = "user-%06d-%s" % (i, "x" * rng.randrange(1, 40))
        tags = [rng.choice("abcdefgh") * rng.randrange(1, 8) for _ in range(rng.randrange(0, 6))]
        table[name] = Record(i, name, tags, rng.random())
    # drop a random half, then add new ones: churn on a long-lived dict
    for name in rng.sample(sorted(table), n // 2):
        del table[name]
    for i in range(n // 2):
        table["new-%d" % i] = Record(i, "n%d" % i, [], 0.0)
    return sum(len(r.tags) for r in table.values())


def text(rng, n):
    lines = [" ".join(str(rng.randrange(10**6)) for _ in range(rng.randrange(1, 20))) for _ in range(n)]
    words = {}
    for line in lines:
        for w in line.split():
            words[w] = words.get(w, 0) + 1
    return len("\n".join(sorted(lines, key=len)))  + len(words)


def json_roundtrip(rng, n):
    doc = [{"id": i, "vals": [rng.random() for _ in range(rng.randrange(1, 30))],
            "name": "item%d" % i, "nested": {"a": [1, 2, 3], "b": "y" * rng.randrange(100)}}
           for i in range(n)]
    s = json.dumps(doc)
    return len(json.loads(s)) + len(s)


def byte_growth(rng, n):
    total = 0
    for _ in range(n):
        b = b""
        for _ in range(rng.randrange(10, 300)):
            b += bytes(rng.randrange(1, 200))   # quadratic-ish growth by realloc
        total += len(b)
    return total


def main():
    scale = SCALE[sys.argv[1] if len(sys.argv) > 1 else "quick"]
    rng = random.Random(1)
    check = 0
    for _ in range(scale):
        check += records(rng, 5000)
        check += text(rng, 1250)
        check += json_roundtrip(rng, 500)
        check += byte_growth(rng, 50)
    print("RESULT checksum=%d" % check)


if __name__ == "__main__":
    main()
