"""The OCI lifecycle of runtime.md, driven as conmon drives it."""
import collections
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from scrun_rest.oci.validate import validate_state

from . import testbed


def runtime(*args, timeout=60):
    return testbed.as_user([testbed.RUNTIME] + list(args), timeout=timeout)


create = testbed.create_container


def state(cid):
    result = runtime("state", cid)
    assert result.stderr == b""
    document = json.loads(result.stdout)
    validate_state(document)
    return document


def test_the_whole_lifecycle(bundle):
    cid = "life-%d" % os.getpid()
    assert create(bundle, cid).returncode == 0
    pid = int(open(bundle + "/pid").read())
    assert not open(bundle + "/pid").read().endswith("\n")
    assert state(cid)["status"] == "created" and state(cid)["pid"] == pid
    duplicate = create(bundle, cid)
    assert duplicate.returncode != 0 and b"already exists" in duplicate.stderr
    assert runtime("delete", cid).returncode != 0          # not stopped
    assert runtime("start", cid).returncode == 0
    assert state(cid)["status"] == "running"
    assert runtime("start", cid).returncode == 0           # a second start succeeds
    assert runtime("kill", cid, "KILL").returncode == 0
    assert testbed.wait_until(lambda: state(cid)["status"] == "stopped", 10)
    assert state(cid)["pid"] == 0
    assert runtime("kill", cid).returncode != 0            # kill only when created/running
    assert runtime("start", cid).returncode != 0           # start only from created
    assert runtime("delete", cid).returncode == 0
    assert runtime("state", cid).returncode != 0
    assert runtime("delete", "--force", cid).returncode == 0   # may run twice
    assert runtime("delete", "--force", cid).returncode == 0


def test_delete_force_stops_a_running_container(bundle):
    cid = "force-%d" % os.getpid()
    assert create(bundle, cid).returncode == 0
    assert runtime("start", cid).returncode == 0
    begin = time.monotonic()
    assert runtime("delete", "--force", cid).returncode == 0
    assert time.monotonic() - begin < 10
    assert testbed.container_state(cid) is None


def test_state_after_the_anchor_died_is_stopped(bundle):
    cid = "dead-%d" % os.getpid()
    assert create(bundle, cid).returncode == 0
    pid = int(open(bundle + "/pid").read())
    os.kill(pid, signal.SIGKILL)
    assert testbed.wait_until(lambda: state(cid)["status"] == "stopped", 10)
    assert state(cid)["pid"] == 0
    assert runtime("delete", "--force", cid).returncode == 0


def test_sigint_to_the_anchor_cancels_the_job(bundle):
    cid = "sigint-%d" % os.getpid()
    assert create(bundle, cid).returncode == 0
    assert runtime("start", cid).returncode == 0
    job_id = testbed.container_state(cid)["job_id"]
    os.kill(int(open(bundle + "/pid").read()), signal.SIGINT)
    assert testbed.wait_until(lambda: state(cid)["status"] == "stopped", 15)
    assert testbed.wait_until(lambda: str(job_id) not in testbed.user_jobs(), 15)
    assert runtime("delete", cid).returncode == 0


def test_check_reports_a_ready_host():
    result = runtime("check")
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout.decode()
    assert "v0.0.38" in text and testbed.USER in text and testbed.REST_URL in text


def test_version_and_features():
    version = runtime("--version")
    assert version.stdout.decode().splitlines()[1] == "spec: 1.0.2"
    features = json.loads(runtime("features").stdout)
    assert features["ociVersionMax"] == "1.0.2"


# USR1 ends it with 0 once the trap is set; a lost USR1 leaves it to exit 3.
TRAP = 'trap "exit 0" USR1; sleep 30 & wait $!; exit 3'
KILL_AT_RUNNING_TRIES = int(os.environ.get("SCRUN_TEST_KILL_TRIES", "200"))


def kill_at_running(index):
    name = "trap-%d-%d" % (os.getpid(), index)
    started = testbed.podman("run", "-d", "--network=none", "--name", name, testbed.IMAGE,
                             "sh", "-c", TRAP)
    try:
        if started.returncode != 0:
            return "run failed: %s" % started.stderr.decode(errors="replace").strip()
        killed = testbed.podman("kill", "-s", "USR1", name)
        if killed.returncode != 0:
            return "kill failed: %s" % killed.stderr.decode(errors="replace").strip()
        return testbed.podman("wait", name, timeout=60).stdout.decode().strip()
    finally:
        testbed.podman("rm", "-f", name)


@pytest.mark.slow
def test_a_signal_sent_the_moment_it_runs_is_never_lost():
    """runtime.md: running means the user's program runs; podman run -d
    returns after start, and a kill right then must reach the process."""
    with ThreadPoolExecutor(4) as pool:
        outcomes = collections.Counter(pool.map(kill_at_running, range(KILL_AT_RUNNING_TRIES)))
    assert outcomes == {"0": KILL_AT_RUNNING_TRIES}, outcomes
