"""The core of a run against each Debian root's Slurm release (24.11 on trixie,
26.05 on forky), from this host's podman 4.3 and docker 20.10 and from the
root's own podman 5 and docker 26/28 as its submit host (the engine
fixture): the nodes share no filesystem with either, so every container's
rootfs travels."""
import hashlib
import os

from . import clusters
from .clusters import IMAGE

RUN = ("run", "--rm", "--network=none")


def test_check_reports_the_release_and_api_version(release):
    result = clusters.as_user([clusters.runtime(release), "check"])
    clusters.assert_check_reports_the_release(release, result)


def test_echo(engine):
    result = engine(*RUN, IMAGE, "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello\n"


def test_exit_code_is_the_containers(engine):
    result = engine(*RUN, IMAGE, "sh", "-c", "exit 7")
    assert result.returncode == 7, result.stderr


def test_death_by_signal_is_128_plus_n(engine):
    # In its own pid namespace the shell is pid 1 and would ignore TERM.
    result = engine(*RUN, IMAGE, "sh", "-c", "sleep 30 & kill -TERM $!; wait $!; exit $?")
    assert result.returncode == 143, result.stderr


def test_stdin_reaches_the_container(engine):
    data = os.urandom(3 << 20)
    result = engine("run", "--rm", "-i", "--network=none", IMAGE, "sha256sum", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest().encode()


def test_stdout_and_stderr_stay_apart(engine):
    result = engine(*RUN, IMAGE, "sh", "-c", "echo out; echo err >&2; echo out2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"out\nout2\n"
    assert result.stderr == b"err\n"


def test_the_job_runs_on_the_releases_cluster(engine):
    def jobs():
        return set(clusters.slurm(engine.release, "squeue", "-h", "-t", "all", "-u",
                                  engine.user, "-o", "%i %N").stdout.splitlines())

    before = jobs()
    result = engine(*RUN, IMAGE, "true")
    assert result.returncode == 0, result.stderr
    new = jobs() - before
    assert [line.split()[1] for line in new] == [clusters.fact(engine.release, "NODE")], new


def test_the_node_sees_none_of_this_hosts_files(release):
    # So the rootfs can only have come by transfer.
    node = clusters.node_root(release)
    for path in (clusters.HOME, "/run/user/%d" % clusters.UID, "/var/lib/scrun-testbed",
                 "/opt/scrun-rest"):
        assert not os.path.exists(node + path), path
    with open(node + "/etc/os-release") as handle:
        assert "VERSION_CODENAME=%s" % release in handle.read()
