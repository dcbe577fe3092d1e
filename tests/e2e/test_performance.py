"""The performance targets that are cheap enough to guard in CI.

contrib/bench/bench.py measures all of them with bigger sizes and more runs;
these tests catch a regression, each against a baseline measured in the
same test so that machine speed and load cancel out.
"""
import os
import re
import statistics
import subprocess

import pytest

from .testbed import IMAGE, RUNTIME, UID, USER, as_user, podman, wait_until
from .user_config import user_config

REST_LOG = "/var/log/slurm/slurmrestd.log"
PYTHON = os.path.join(os.path.dirname(RUNTIME), "python")
RUN = ("run", "--rm", "--network=none")

# Alternates `python -c pass` and `scrun-rest state ID`; medians in ms.
STATE_TIMER = r"""
import statistics, subprocess, sys, time
runs, python, runtime, cid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
times = {"pass": [], "state": []}
for _ in range(runs):
    for name, argv in (("pass", [python, "-c", "pass"]), ("state", [runtime, "state", cid])):
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        times[name].append(time.perf_counter() - began)
print(statistics.median(times["pass"]) * 1000, statistics.median(times["state"]) * 1000)
"""

# contrib/bench's meter, passed with -c (the test user may not read the checkout).
with open(os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "bench",
                       "stream_meter.py")) as _meter:
    STREAM_METER = _meter.read()


def rest_log_lines():
    """slurmrestd logs one authentication line per request, naming the user."""
    with open(REST_LOG, "rb") as handle:
        return handle.read().decode("utf-8", "replace").count(
            "user_name %s token authentication" % USER)


def requests_reported(stderr):
    found = re.findall(rb"REST requests: (\d+)", stderr)
    assert found, stderr[-2000:]
    return int(found[-1])


def test_a_container_costs_at_most_4_rest_requests():
    """Start and exit come through the tunnel: only the submit goes to REST."""
    # The first container of a boot also discovers the API version (cached).
    podman(*RUN, IMAGE, "true")
    witness = os.access(REST_LOG, os.R_OK)
    before = rest_log_lines() if witness else None
    with user_config(SCRUN_STDERR_DEBUG="debug"):
        result = podman(*RUN, IMAGE, "true")
    assert result.returncode == 0, result.stderr[-2000:]
    counted = requests_reported(result.stderr)
    assert 1 <= counted <= 4
    if witness:
        # slurmrestd saw the same number: the anchor's counter misses nothing.
        assert rest_log_lines() - before == counted


def test_state_costs_at_most_half_an_interpreter_start_more():
    started = podman("run", "-d", "--network=none", IMAGE, "sleep", "120")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    try:
        timed = as_user([PYTHON, "-c", STATE_TIMER, "20", PYTHON, RUNTIME, cid])
        assert timed.returncode == 0, timed.stderr
        bare, state = (float(x) for x in timed.stdout.split())
        assert state <= 1.5 * bare, "state %.1f ms, python -c pass %.1f ms" % (state, bare)
    finally:
        podman("rm", "-f", "-t", "0", cid)


def stream_rate(runtime, size):
    script = "%s run --rm --network=none %s head -c %d /dev/zero | %s -c '%s'" % (
        " ".join(["podman", "--runtime", runtime]), IMAGE, size, PYTHON, STREAM_METER)
    result = as_user(["sh", "-c", script], timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    moved, rate = result.stdout.split()
    assert int(moved) == size
    return float(rate)


@pytest.mark.slow
@pytest.mark.parametrize("tls,target", [("no", 0.8), ("yes", 0.6)])
def test_stdout_streams_near_local_runc(tls, target):
    """runc under podman writes straight into conmon's pipe: the ceiling.
    In clear the tunnel keeps 80 % of it (issue 7's target); TLS, the
    default, costs a relay thread at each end (0.75-0.8 of runc measured)."""
    size = 200 * 10**6
    ours, runc = [], []
    with user_config(TunnelTls=tls):
        for _ in range(3):
            ours.append(stream_rate(RUNTIME, size))
            runc.append(stream_rate("runc", size))
    ratio = statistics.median(ours) / statistics.median(runc)
    assert ratio >= target, "scrun-rest %s MB/s, runc %s MB/s" % (ours, runc)


def test_anchor_memory_stays_flat_while_streaming():
    """The relay holds a pipeful, never the stream: 100 MB leave no trace in RSS."""
    script = ("%s run --rm --network=none %s "
              "head -c 100000000 /dev/zero | wc -c" % (
                  " ".join(["podman", "--runtime", RUNTIME]), IMAGE))
    sampler = subprocess.Popen(["sh", "-c", "while :; do for p in $(pgrep -u %d -x "
                                "scrun-anchor); do grep VmHWM /proc/$p/status; done; "
                                "sleep 0.2; done" % UID],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        result = as_user(["sh", "-c", script], timeout=300)
    finally:
        sampler.kill()
    peaks = [int(n) for n in re.findall(rb"VmHWM:\s+(\d+) kB", sampler.communicate()[0])]
    assert result.returncode == 0 and result.stdout.strip() == b"100000000"
    assert peaks, "never saw the anchor"
    assert max(peaks) < 80 * 1024, "anchor peak RSS %d kB" % max(peaks)


def runtimes():
    return subprocess.run(["pgrep", "-u", str(UID), "-x", "runc"],
                          capture_output=True, text=True).stdout.split()


def test_no_runtime_process_copies_the_output():
    """Without a terminal the container is started create/start: once it
    runs, no `runc run` sits between it and its stdio copying every byte."""
    started = podman("run", "-d", "--network=none", IMAGE, "sh", "-c",
                     "echo started; exec sleep 120")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    try:
        # `runc create` and `runc start` may still be finishing; `runc run`
        # would stay for the container's whole life.
        assert wait_until(lambda: not runtimes(), 10), "runc still running: %s" % runtimes()
        # ...and the container is there, its output through: no runc, not no container.
        assert podman("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == b"running"
        assert wait_until(lambda: podman("logs", cid).stdout == b"started\n", 10)
    finally:
        podman("rm", "-f", "-t", "0", cid)


def test_the_container_can_still_reopen_its_stdio():
    """Its stdio are pipes (as under runc run or conmon), not the sockets,
    which a process cannot reopen through /dev/stdout."""
    result = podman(*RUN, IMAGE, "sh", "-c",
                    "echo out > /dev/stdout; echo err > /dev/stderr; ls -l /proc/self/fd/1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"out\n") and b"pipe:" in result.stdout, result.stdout
    assert result.stderr == b"err\n"
