"""Issue 8: the login host loses n1 while a 2-node container runs."""
import time

import pytest

from . import cluster
from .cluster import IMAGE

# The anchor gives up on a silent agent after 4 heartbeats (20 s by default).
LIMIT = 30


@pytest.mark.slow
def test_losing_n1_ends_the_container_and_cancels_the_job():
    podman = cluster.podman_popen(
        "run", "--rm", "--network=none", "-e", "SCRUN_JOB_NUM_NODES=2", "-e", "SCRUN_NTASKS=2",
        IMAGE, "sh", "-c", "echo $SLURM_PROCID up; exec sleep 300")
    try:
        # Both tasks run once both said so (the order is not fixed).
        ups = {podman.stdout.readline(), podman.stdout.readline()}
        assert ups == {b"0 up\n", b"1 up\n"}, podman.stderr.read() if podman.poll() else ups
        job = cluster.user_jobs()[0]
        with cluster.cut_login_from("n1"):
            cut = time.monotonic()
            try:
                podman.wait(LIMIT)
            except Exception:
                pytest.fail("the container still ran %d s after n1 was cut off" % LIMIT)
            took = time.monotonic() - cut
            stderr = podman.stderr.read().decode()
            assert podman.returncode != 0
            assert "no word from the job's agent" in stderr, stderr
            assert "job %s is still RUNNING" % job in stderr, stderr
            print("container ended %.1f s after the cut: %s" % (took, stderr.strip()))
            # Cancelled by the anchor through slurmrestd, which it still reaches.
            assert cluster.wait_until(lambda: cluster.job_state(job) == "CANCELLED", 10), \
                cluster.job_state(job)
            # Each task removed its container before the job ended (the
            # nothing_left_behind fixture checks for runc state too).
            assert cluster.wait_until(lambda: not cluster.node_processes(), 15), \
                cluster.node_processes()
    finally:
        if podman.poll() is None:
            podman.kill()
            podman.wait()
