# Allocation work for the profiler and time-series checks in tests/real/run.sh:
# builds and keeps some data, churns more, and (with PROFILE_DUMP set) asks
# goheap to write its heap profile while the data is still live.
import ctypes
import json
import os
import time

kept = [{"id": i, "name": "item%d" % i, "tags": ["t%d" % (i % 7)] * 3} for i in range(150000)]
text = json.dumps(kept[:50000])
for _ in range(5):
    churn = [s.upper() for s in text.split(",")]
    del churn
blobs = [bytearray(256 << 10) for _ in range(40)]
time.sleep(float(os.environ.get("PROFILE_WORK_SLEEP", "0")))
dump = os.environ.get("PROFILE_DUMP")
if dump:
    lib = ctypes.CDLL(None)
    lib.goheap_profile_dump.argtypes = [ctypes.c_char_p]
    rc = lib.goheap_profile_dump(dump.encode())
    print("dump", rc)
print(len(kept), len(text), len(blobs))
