"""The node's cache of rootfs files: the second container of an image sends
almost nothing, containers starting together send it once, and no
container can change what the next one gets (agent/node_cache.py)."""
import concurrent.futures
import hashlib
import os
import re
import statistics
import subprocess
import time

import pytest

from . import testbed
from .testbed import IMAGE, podman
from .user_config import clear_compute_leftovers, compute_leftovers, user_config

RUN = ("run", "--rm", "--network=none")
SENT = re.compile(r"a manifest of (\d+) bytes, then (\d+) of (\d+) bytes")


class Cached:
    """settings: BundleTransfer=always with a fresh cache of the test user's
    and the anchors' log in a file; transfers(): the log's transfers
    [(manifest bytes, file bytes sent, rootfs bytes)]."""

    def __init__(self, settings, transfers):
        self.settings, self.transfers = settings, transfers

    def run(self, *args, **settings):
        with user_config(**dict(self.settings, **settings)):
            return podman(*args, timeout=300)


@pytest.fixture
def cached():
    log_dir = "/tmp/scrun-cache-test-%d" % os.getpid()
    os.makedirs(log_dir, mode=0o755)
    subprocess.run(["chown", testbed.USER, log_dir], check=True)
    cache = "/var/tmp/scrun-cache-test-%d" % os.getpid()
    log_file = log_dir + "/anchors.log"

    def transfers():
        if not os.path.exists(log_file):
            return []
        with open(log_file) as handle:
            return [tuple(int(n) for n in m.groups()) for m in SENT.finditer(handle.read())]

    yield Cached({"BundleTransfer": "always", "NodeCache": cache,
                  "SCRUN_LOG_FILE": log_file, "SCRUN_DEBUG": "info"}, transfers)
    subprocess.run(["rm", "-rf", log_dir, cache])
    problems = compute_leftovers()
    clear_compute_leftovers()
    assert not problems


def test_the_second_container_of_an_image_sends_almost_nothing(cached):
    first = cached.run(*RUN, IMAGE, "true")
    assert first.returncode == 0, first.stderr
    second = cached.run(*RUN, IMAGE, "true")
    assert second.returncode == 0, second.stderr
    (manifest1, sent1, total1), (manifest2, sent2, total2) = cached.transfers()
    print("first: %d + %d of %d bytes; second: %d + %d" % (manifest1, sent1, total1,
                                                             manifest2, sent2))
    assert sent1 >= 0.9 * total1
    assert manifest2 + sent2 <= 0.05 * total2


def test_containers_starting_together_send_the_image_once(cached):
    with user_config(**cached.settings), concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: podman(*RUN, IMAGE, "true", timeout=300),
                                range(8)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    found = cached.transfers()
    assert len(found) == 8
    total = found[0][2]
    sent = sum(sent for _, sent, _ in found)
    print("8 containers at once sent %d bytes of a %d-byte rootfs" % (sent, total))
    assert total * 0.9 <= sent <= total * 1.05


def test_a_container_cannot_change_what_the_next_one_gets(cached):
    original = hashlib.sha256(open(testbed.ROOTFS + "/etc/passwd", "rb").read()).hexdigest()
    spoiled = cached.run(*RUN, IMAGE, "sh", "-c",
                         "echo spoiled >> /etc/passwd; sha256sum /etc/passwd")
    assert spoiled.returncode == 0, spoiled.stderr
    assert spoiled.stdout.split()[0].decode() != original
    after = cached.run(*RUN, IMAGE, "sha256sum", "/etc/passwd")
    assert after.stdout.split()[0].decode() == original
    found = cached.transfers()
    assert len(found) == 2 and found[1][1] == 0  # and it came from the cache


@pytest.mark.slow
def test_a_cached_start_costs_little_over_a_shared_filesystem(cached):
    assert cached.run(*RUN, IMAGE, "true").returncode == 0  # fill the cache
    timings = {"never": [], "always": []}
    for _ in range(6):
        for mode in ("never", "always"):
            began = time.monotonic()
            assert cached.run(*RUN, IMAGE, "true", BundleTransfer=mode).returncode == 0
            timings[mode].append(time.monotonic() - began)
    never, always = (statistics.median(timings[m]) for m in ("never", "always"))
    print("run --rm true: shared %.2f s, cached copy %.2f s (+%.2f s)"
          % (never, always, always - never))
    # The 0.1 s is the benchmark's to show (contrib/bench, many
    # runs); here slurmctld's one-second scheduling loop moves either median
    # by up to half a second, so only a gross cost fails.
    assert always - never <= 0.6
