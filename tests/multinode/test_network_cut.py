"""The login host loses a node while a 2-node container runs."""
import contextlib
import time

import pytest

from . import cluster
from .cluster import IMAGE

# The anchor gives up on a silent agent after 4 heartbeats (20 s by default);
# on a task link after TCP keepalive (~13 s) and TASK_LOST_GRACE (10 s).
LIMIT = 30
TASK_LIMIT = 40


@contextlib.contextmanager
def two_node_container():
    """podman running one task on each node; yields it and the job id."""
    podman = cluster.podman_popen(
        "run", "--rm", "--network=none", "-e", "SCRUN_JOB_NUM_NODES=2", "-e", "SCRUN_NTASKS=2",
        IMAGE, "sh", "-c", "echo $SLURM_PROCID up; exec sleep 300")
    try:
        # Both tasks run once both said so (the order is not fixed).
        ups = {podman.stdout.readline(), podman.stdout.readline()}
        assert ups == {b"0 up\n", b"1 up\n"}, podman.stderr.read() if podman.poll() else ups
        yield podman, cluster.user_jobs()[0]
    finally:
        if podman.poll() is None:
            podman.kill()
            podman.wait()


def ended_after_cut(podman, node, limit):
    """Wait for podman once node is cut off; returns (seconds, stderr)."""
    cut = time.monotonic()
    try:
        podman.wait(limit)
    except Exception:
        pytest.fail("the container still ran %d s after %s was cut off" % (limit, node))
    took = time.monotonic() - cut
    stderr = podman.stderr.read().decode()
    print("container ended %.1f s after the cut: %s" % (took, stderr.strip()))
    return took, stderr


@pytest.mark.slow
def test_losing_n1_ends_the_container_and_cancels_the_job():
    with two_node_container() as (podman, job):
        with cluster.cut_login_from("n1"):
            took, stderr = ended_after_cut(podman, "n1", LIMIT)
            assert podman.returncode != 0
            assert "no word from the job's agent" in stderr, stderr
            assert "job %s is still RUNNING" % job in stderr, stderr
            # Cancelled by the anchor through slurmrestd, which it still reaches.
            assert cluster.wait_until(lambda: cluster.job_state(job) == "CANCELLED", 10), \
                cluster.job_state(job)
            # Each task removed its container before the job ended (the
            # nothing_left_behind fixture checks for runc state too).
            assert cluster.wait_until(lambda: not cluster.node_processes(), 15), \
                cluster.node_processes()


@pytest.mark.slow
def test_losing_only_n2_ends_the_whole_container_too():
    """The agent (on n1) still answers, but task 1 is out of reach: running
    on with half the output missing would be wrong, as srun ends a step that
    lost a node."""
    with two_node_container() as (podman, job):
        with cluster.cut_login_from("n2"):
            took, stderr = ended_after_cut(podman, "n2", TASK_LIMIT)
            assert podman.returncode == 137, (podman.returncode, stderr)
            assert "lost contact with task 1 on n2" in stderr, stderr
            assert cluster.wait_until(lambda: cluster.job_state(job) not in (
                "RUNNING", "COMPLETING"), 15), cluster.job_state(job)
            assert cluster.wait_until(lambda: not cluster.node_processes(), 15), \
                cluster.node_processes()
