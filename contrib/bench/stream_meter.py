"""`wc -c` that also times the stream from its first byte to EOF, so that
the start-up of a container does not count against the bytes.
Prints: bytes MB/s. Used by contrib/bench/bench.py and
tests/e2e/test_performance.py, both passing it with -c in single quotes:
no single quote may appear in this file."""
import os
import time

first, total = None, 0
while True:
    data = os.read(0, 1 << 20)
    if not data:
        break
    if first is None:
        first = time.monotonic()
    total += len(data)
print(total, total / max(time.monotonic() - (first or 0), 1e-6) / 1e6)
