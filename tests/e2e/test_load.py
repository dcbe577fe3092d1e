"""Load: 32 containers of one user at once, each printing its own
1 MB; then again with 8 of them killed half way. Every exit code and every
byte must be right, and nothing may be left behind. Wall times are printed
(pytest -s) and recorded as test properties.
"""
import subprocess
import threading
import time

import pytest

from . import testbed
from .testbed import IMAGE
from .user_config import compute_leftovers, podman_popen

COUNT = 32
KILLED = 8
SIZE = 1 << 20
# Each container repeats its own line: any byte from another container, any
# loss or duplication shows.
SCRIPT = 'yes "$0" | head -c %d; exit "$1"' % SIZE
SLEEPER = 'yes "$0" | head -c %d; exec sleep 300' % SIZE


def payload(token):
    line = (token + "\n").encode()
    return (line * (SIZE // len(line) + 1))[:SIZE]


class Run:
    """One `podman run` in the background whose output we read as it comes."""

    def __init__(self, index, script, code):
        self.token = "load-%02d-%s" % (index, "x" * (index % 7))
        self.name = "load-%d-%d" % (index, id(self))
        self.code = code
        self.process = podman_popen("run", "--rm", "--network=none", "--name", self.name,
                                    IMAGE, "sh", "-c", script, self.token, str(code))
        self.out = bytearray()
        self.err = b""
        self.has_payload = threading.Event()
        self.began = time.monotonic()
        self.took = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            chunk = self.process.stdout.read1(1 << 16)
            if not chunk:
                break
            self.out += chunk
            if len(self.out) >= SIZE:
                self.has_payload.set()
        self.err = self.process.stderr.read()
        self.process.wait()
        self.took = time.monotonic() - self.began

    def wait(self, timeout):
        self.reader.join(timeout)
        assert not self.reader.is_alive(), "%s still runs after %d s" % (self.name, timeout)
        return self.process.returncode


def no_conmon_left():
    out = subprocess.run(["pgrep", "-u", str(testbed.UID), "-x", "conmon"],
                         capture_output=True, text=True).stdout
    return not out.split()


def check_all(runs, expected_codes):
    for run, code in zip(runs, expected_codes):
        assert run.process.returncode == code, (run.name, run.process.returncode, run.err)
        assert bytes(run.out) == payload(run.token), (run.name, len(run.out), run.err[-300:])
    assert testbed.wait_until(no_conmon_left, 15)
    assert not compute_leftovers()


def report(record_property, label, began, runs):
    wall = time.monotonic() - began
    slowest = max(run.took for run in runs)
    record_property(label + "_wall_s", round(wall, 1))
    record_property(label + "_slowest_s", round(slowest, 1))
    print("\n%s: %d containers, wall %.1f s, slowest podman run %.1f s"
          % (label, len(runs), wall, slowest))


@pytest.mark.slow
def test_32_containers_in_parallel(record_property):
    began = time.monotonic()
    runs = [Run(i, SCRIPT, i % 7) for i in range(COUNT)]
    for run in runs:
        run.wait(400)
    report(record_property, "parallel", began, runs)
    check_all(runs, [i % 7 for i in range(COUNT)])


@pytest.mark.slow
def test_32_containers_with_8_killed_mid_run(record_property):
    began = time.monotonic()
    doomed = set(range(0, COUNT, COUNT // KILLED))
    runs = [Run(i, SLEEPER if i in doomed else SCRIPT, i % 7) for i in range(COUNT)]
    for index in sorted(doomed):
        # Killed once its output is out, while it sleeps: mid-run.
        assert runs[index].has_payload.wait(400), runs[index].name
        killed = testbed.podman("kill", runs[index].name, timeout=60)
        assert killed.returncode == 0, killed.stderr
    for run in runs:
        run.wait(400)
    report(record_property, "with_kills", began, runs)
    check_all(runs, [137 if i in doomed else i % 7 for i in range(COUNT)])
