"""The core of a run from each Debian root as a submit host: the root's own
podman (5.4.2 on trixie, 5.8.6 on forky) and conmon, rootless as the test
user, with scrun-rest installed into a venv of the root's python3 (3.13,
3.14), against the root's cluster (Slurm 24.11, 26.05). The node shares no
filesystem with the submit host, so every container's rootfs travels."""
import hashlib
import os
import pathlib
import time
import uuid

from . import clusters
from .clusters import IMAGE

RUN = ("run", "--rm", "--network=none")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def podman(release, *args, **kwargs):
    return clusters.root_podman(release, *args, **kwargs)


def package_version(release, name):
    """The Debian version roots.sh found installed in the root (name=version)."""
    for entry in clusters.fact(release, "PACKAGES", "").split():
        package, _, version = entry.partition("=")
        if package == name:
            return version
    raise AssertionError("roots.env lists no %s for %s" % (name, release))


def test_podman_and_python_are_the_roots(submit_host):
    result = podman(submit_host, "version", "--format", "{{.Client.Version}}")
    assert result.returncode == 0, result.stderr
    assert package_version(submit_host, "podman").startswith(result.stdout.decode().strip())
    assert result.stdout.decode().startswith("5."), result.stdout
    result = podman(submit_host, "info", "--format", "{{.Host.Conmon.Path}}")
    assert result.stdout.decode().strip() == "/usr/bin/conmon", result.stdout + result.stderr
    script = "import sys, scrun_rest; print('%d.%d' % sys.version_info[:2], scrun_rest.__file__)"
    result = clusters.on_submit_host(submit_host, os.path.dirname(
        clusters.submit_runtime(submit_host)) + "/python3", "-c", script)
    assert result.returncode == 0, result.stderr
    python, module = result.stdout.decode().split()
    assert package_version(submit_host, "python3").startswith(python), python
    assert module.startswith("/opt/scrun-rest/lib/python%s/" % python), module


def test_the_submit_host_runs_this_checkouts_code(submit_host):
    # roots.sh reinstalls it on every run, so CI's clone tests its own code.
    script = ("import hashlib, pathlib, scrun_rest; base = pathlib.Path(scrun_rest.__file__).parent; "
              "print(hashlib.sha256(b''.join(p.read_bytes() for p in sorted(base.rglob('*.py'))))"
              ".hexdigest())")
    result = clusters.on_submit_host(submit_host, os.path.dirname(
        clusters.submit_runtime(submit_host)) + "/python3", "-c", script)
    assert result.returncode == 0, result.stderr
    base = pathlib.Path(REPO, "scrun_rest")
    mine = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(base.rglob("*.py"))))
    assert result.stdout.decode().strip() == mine.hexdigest(), \
        "the submit host's scrun-rest is not %s's: rerun contrib/testbed/roots.sh up" % REPO


def test_check_reports_the_release_and_api_version(submit_host):
    clusters.assert_check_reports_the_release(submit_host, clusters.on_submit_host(submit_host, clusters.submit_runtime(submit_host), "check"))


def test_echo_runs_on_the_releases_node(submit_host):
    def jobs():
        return set(clusters.slurm(submit_host, "squeue", "-h", "-t", "all", "-u",
                                  clusters.USER, "-o", "%i %N").stdout.splitlines())

    before = jobs()
    result = podman(submit_host, *RUN, IMAGE, "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello\n"
    new = jobs() - before
    assert [line.split()[1] for line in new] == [clusters.fact(submit_host, "NODE")], new


def test_exit_code_is_the_containers(submit_host):
    result = podman(submit_host, *RUN, IMAGE, "sh", "-c", "exit 7")
    assert result.returncode == 7, result.stderr


def test_death_by_signal_is_128_plus_n(submit_host):
    # In a pid namespace of its own the shell would be its init, which
    # ignores a KILL sent from inside: in the node's it dies of it.
    result = podman(submit_host, *RUN, "--pid=host", IMAGE, "sh", "-c",
                    "kill -KILL $$; echo survived")
    assert result.returncode == 137, result.stdout + result.stderr
    assert b"survived" not in result.stdout


def test_stdin_reaches_the_container(submit_host):
    data = os.urandom(3 << 20)
    result = podman(submit_host, "run", "--rm", "-i", "--network=none", IMAGE, "sha256sum",
                    input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest().encode()


def test_stdout_and_stderr_stay_apart(submit_host):
    result = podman(submit_host, *RUN, IMAGE, "sh", "-c", "echo out; echo err >&2; echo out2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"out\nout2\n"
    assert result.stderr == b"err\n"


def test_20_mb_of_output_arrive_byte_for_byte(submit_host):
    # Random bytes (NULs, no newlines to flush on), with their hash on stderr.
    size = 20 << 20
    result = podman(submit_host, *RUN, IMAGE, "sh", "-c",
                    "head -c %d /dev/urandom >/tmp/data && sha256sum </tmp/data >&2 && "
                    "cat /tmp/data" % size, timeout=180)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == size
    assert result.stderr.split()[0] == hashlib.sha256(result.stdout).hexdigest().encode()


def detached(release, *argv):
    """A container left running with podman run -d; its name."""
    name = "submit-" + uuid.uuid4().hex[:10]
    result = podman(release, "run", "-d", "--name", name, "--network=none", IMAGE, *argv)
    assert result.returncode == 0, result.stderr
    return name


def state(release, name):
    result = podman(release, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().split()


def test_detached_container_runs_until_stopped(submit_host):
    name = detached(submit_host, "sleep", "300")
    try:
        assert state(submit_host, name)[0] == "running"
        assert clusters.user_jobs(submit_host), "no job on %s for %s" % (submit_host, name)
        t = time.monotonic()
        # sleep, the container's init, ignores TERM: stop ends it with KILL.
        result = podman(submit_host, "stop", "-t", "2", name)
        took = time.monotonic() - t
        assert result.returncode == 0, result.stderr
        assert state(submit_host, name) == ["exited", "137"]
        assert took < 30, took
    finally:
        podman(submit_host, "rm", "-f", "-t", "0", name)


def test_exec_runs_in_the_running_container(submit_host):
    name = detached(submit_host, "sleep", "300")
    try:
        # The container's init, seen from the exec'd process: the same container.
        result = podman(submit_host, "exec", name, "sh", "-c",
                        "tr '\\0' ' ' </proc/1/cmdline; echo err >&2; exit 5")
        assert result.returncode == 5, result.stderr
        assert result.stdout == b"sleep 300 "
        assert result.stderr == b"err\n"
        assert state(submit_host, name)[0] == "running"
    finally:
        podman(submit_host, "rm", "-f", "-t", "0", name)
