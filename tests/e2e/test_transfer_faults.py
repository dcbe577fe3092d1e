"""Bundle transfer going wrong: each ends the container before it runs,
with one clear line naming the path and the node, no job, no anchor, and
nothing of the copy on the node (conftest and the fixtures check)."""
import os
import subprocess
import time

import pytest

from . import testbed
from .testbed import IMAGE, podman, user_jobs, wait_until
from .user_config import (all_user_jobs, blocked_ports, clear_compute_leftovers,
                          compute_leftovers, new_job, task_workdirs, user_config)

RUN = ("run", "--rm", "--network=none")
# Below the ephemeral range, apart from the other tests' ports.
TRANSFER_PORTS = (29380, 29389)


def one_clear_line(stderr, *words):
    text = stderr.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    for word in words:
        assert word in lines[0], text
    return lines[0]


@pytest.fixture
def nothing_on_the_node():
    yield
    problems = compute_leftovers()
    clear_compute_leftovers()
    assert not problems


@pytest.fixture
def big_volume():
    """A directory of the test user's holding 1.5 GB (sparse: cheap here,
    but every byte crosses the tunnel), so a copy takes seconds."""
    base = "%s/xfer-big-%d" % (testbed.HOME, os.getpid())
    os.makedirs(base)
    with open(base + "/big", "wb") as handle:
        handle.truncate(1536 << 20)
    subprocess.run(["chown", "-R", "%s:%s" % (testbed.USER, testbed.USER), base], check=True)
    yield base
    subprocess.run(["rm", "-rf", base])


def node_copy_bytes():
    """Bytes in the test user's task dirs on the node (the copy so far)."""
    total = 0
    for name in task_workdirs():
        for base, _, files in os.walk("/tmp/" + name):
            for file_name in files:
                try:
                    total += os.lstat(os.path.join(base, file_name)).st_blocks * 512
                except OSError:
                    pass
    return total


def test_an_unreadable_file_fails_create_naming_it(nothing_on_the_node):
    base = "%s/xfer-unreadable-%d" % (testbed.HOME, os.getpid())
    os.makedirs(base)
    with open(base + "/secret", "w") as handle:
        handle.write("root only")
    os.chmod(base + "/secret", 0o600)   # root's: the test user cannot read it
    subprocess.run(["chown", testbed.USER, base], check=True)
    try:
        before = all_user_jobs()
        with user_config(BundleTransfer="always"):
            result = podman(*RUN, "-v", base + ":/w", IMAGE, "cat", "/w/secret")
        assert result.returncode != 0
        line = one_clear_line(result.stderr, base + "/secret", "permission denied", "node ")
        assert "root only" not in line
        job_id = new_job(before)
        assert wait_until(lambda: str(job_id) not in user_jobs(), 15)
    finally:
        subprocess.run(["rm", "-rf", base])


def start_copy(big_volume, **settings):
    """podman run with the big volume; returns (process, job id) once the
    copy is under way on the node."""
    before = all_user_jobs()
    process = subprocess.Popen(
        ["runuser", "-u", testbed.USER, "--", "env", "-i", "HOME=" + testbed.HOME,
         "XDG_RUNTIME_DIR=" + testbed.RUNTIME_DIR, "PATH=/usr/bin:/bin",
         "podman", "--runtime", testbed.RUNTIME] + list(RUN)
        + ["-v", big_volume + ":/w", IMAGE, "true"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/tmp")
    job_id = new_job(before, timeout=30)
    assert wait_until(lambda: node_copy_bytes() > 50 << 20, 60, 0.05), \
        "the copy never got going"
    return process, job_id


@pytest.mark.slow
def test_scancel_during_the_copy_ends_it_cleanly(big_volume, nothing_on_the_node):
    with user_config(BundleTransfer="always", VolumeCopyLimit="2G", TunnelTls="yes"):
        process, job_id = start_copy(big_volume)
        subprocess.run(["scancel", str(job_id)], check=True)
        _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    one_clear_line(err, "cancel")
    assert wait_until(lambda: str(job_id) not in user_jobs(), 20)
    assert wait_until(lambda: not testbed.anchors(), 10)


@pytest.mark.slow
def test_a_tunnel_cut_during_the_copy_ends_it_cleanly(big_volume, nothing_on_the_node):
    ports = "%d-%d" % TRANSFER_PORTS
    with user_config(BundleTransfer="always", VolumeCopyLimit="2G", TunnelTls="yes",
                     TunnelPortRange=ports, TunnelHeartbeat="2"):
        process, job_id = start_copy(big_volume)
        began = time.monotonic()
        with blocked_ports(*TRANSFER_PORTS):
            _, err = process.communicate(timeout=120)
    print("ended %.1f s after the cut" % (time.monotonic() - began))
    assert process.returncode != 0
    one_clear_line(err)
    assert wait_until(lambda: str(job_id) not in user_jobs(), 30)
    assert wait_until(lambda: not testbed.anchors(), 10)


def test_the_copy_runs_on_beside_a_heartbeat(big_volume, nothing_on_the_node):
    """A long copy is not mistaken for a dead link (the agent's pings go on
    while the task fetches)."""
    with user_config(BundleTransfer="always", VolumeCopyLimit="2G", TunnelTls="no",
                     TunnelHeartbeat="1"):
        result = podman(*RUN, "-v", big_volume + ":/w", IMAGE, "sh", "-c",
                        "wc -c < /w/big", timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"%d\n" % (1536 << 20)
