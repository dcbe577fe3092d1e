"""Each Debian root as a submit host: the root's own podman (5.4.2 on trixie,
5.8.6 on forky) and conmon, rootless as the test user, and its docker (26.1,
28.5) as root, with scrun-rest installed into a venv of the root's python3
(3.13, 3.14), against the root's cluster (Slurm 24.11, 26.05). echo, exit
codes, stdin and stdout/stderr through them are test_releases.py's (the
engine fixture); here is the rest of the core: what runs there, 20 MB of
output, -d with stop and kill, exec, check."""
import hashlib
import os
import subprocess
import sys
import time
import uuid

from . import clusters
from .clusters import IMAGE

RUN = ("run", "--rm", "--network=none")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def package_version(release, name):
    """The Debian version roots.sh found installed in the root (name=version)."""
    for entry in clusters.fact(release, "PACKAGES", "").split():
        package, _, version = entry.partition("=")
        if package == name:
            return version
    raise AssertionError("roots.env lists no %s for %s" % (name, release))


def test_engine_is_the_roots(submit_engine):
    docker = submit_engine.name == "docker"
    fields = "{{.Client.Version}} {{.Server.Version}}" if docker else "{{.Client.Version}}"
    result = submit_engine("version", "--format", fields)
    assert result.returncode == 0, result.stderr
    package = package_version(submit_engine.release, "docker.io" if docker else "podman")
    versions = result.stdout.decode().split()
    assert len(versions) == len(fields.split()), versions
    for version in versions:
        assert package.startswith(version), (version, package)


def test_podman_runs_the_roots_conmon_and_python(submit_host):
    result = clusters.root_podman(submit_host, "info", "--format", "{{.Host.Conmon.Path}}")
    assert result.stdout.decode().strip() == "/usr/bin/conmon", result.stdout + result.stderr
    script = "import sys, scrun_rest; print('%d.%d' % sys.version_info[:2], scrun_rest.__file__)"
    result = clusters.on_submit_host(submit_host, os.path.dirname(
        clusters.submit_runtime(submit_host)) + "/python3", "-c", script)
    assert result.returncode == 0, result.stderr
    python, module = result.stdout.decode().split()
    assert package_version(submit_host, "python3").startswith(python), python
    assert module.startswith("/opt/scrun-rest/lib/python%s/" % python), module


# The digest of a package's *.py files, as a script for either side.
DIGEST = """
import hashlib, pathlib, sys
base = pathlib.Path(sys.argv[1])
print(hashlib.sha256(b"".join(p.read_bytes() for p in sorted(base.rglob("*.py")))).hexdigest())
"""


def test_the_submit_host_runs_this_checkouts_code(submit_host):
    # roots.sh reinstalls it on every run, so CI's clone tests its own code.
    python = os.path.dirname(clusters.submit_runtime(submit_host)) + "/python3"
    installed = clusters.on_submit_host(submit_host, python, "-c",
                                        "import scrun_rest; print(scrun_rest.__path__[0])")
    assert installed.returncode == 0, installed.stderr
    theirs = clusters.on_submit_host(submit_host, python, "-c", DIGEST,
                                     installed.stdout.decode().strip())
    mine = subprocess.run([sys.executable, "-c", DIGEST, os.path.join(REPO, "scrun_rest")],
                          capture_output=True)
    assert theirs.returncode == 0 and mine.returncode == 0, theirs.stderr + mine.stderr
    assert theirs.stdout == mine.stdout, \
        "the submit host's scrun-rest is not %s's: rerun contrib/testbed/roots.sh up" % REPO


def test_the_node_sees_none_of_the_submit_hosts_files(submit_host):
    # They are bound over the root's empty /opt, /home and /run/user only
    # where the submit host runs, so the rootfs can only travel.
    paths = ("/opt/scrun-rest/bin/scrun-rest", "/opt/scrun-rest-root.conf", "/opt/docker",
             clusters.HOME + "/.config/scrun-rest/jwt", "/run/user/%d/libpod" % clusters.UID)
    seen = clusters.on_submit_host(submit_host, "ls", "-d", *paths, as_root=True)
    assert seen.returncode == 0, seen.stderr
    node = clusters.node_root(submit_host)
    assert [path for path in paths if os.path.exists(node + path)] == []


def test_check_reports_the_release_and_api_version(submit_host):
    result = clusters.on_submit_host(submit_host, clusters.submit_runtime(submit_host), "check")
    clusters.assert_check_reports_the_release(submit_host, result)


def test_death_by_signal_is_128_plus_n(submit_host):
    # In a pid namespace of its own the shell would be its init, which
    # ignores a KILL sent from inside: in the node's it dies of it. (docker's
    # --pid=host wants a /proc mount rootless runc may not make there.)
    result = clusters.root_podman(submit_host, *RUN, "--pid=host", IMAGE, "sh", "-c",
                                  "kill -KILL $$; echo survived")
    assert result.returncode == 137, result.stdout + result.stderr
    assert b"survived" not in result.stdout


def test_20_mb_of_output_arrive_byte_for_byte(submit_engine):
    # Random bytes (NULs, no newlines to flush on), with their hash on stderr.
    size = 20 << 20
    result = submit_engine(*RUN, IMAGE, "sh", "-c",
                           "head -c %d /dev/urandom >/tmp/data && sha256sum </tmp/data >&2 && "
                           "cat /tmp/data" % size, timeout=180)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == size
    assert result.stderr.split()[0] == hashlib.sha256(result.stdout).hexdigest().encode()


def detached(engine, *argv):
    """A container left running with run -d; its name."""
    name = "submit-" + uuid.uuid4().hex[:10]
    result = engine("run", "-d", "--name", name, "--network=none", IMAGE, *argv)
    assert result.returncode == 0, result.stderr
    return name


def state(engine, name):
    result = engine("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().split()


def test_detached_container_runs_until_stopped(submit_engine):
    name = detached(submit_engine, "sleep", "300")
    try:
        assert state(submit_engine, name)[0] == "running"
        assert clusters.user_jobs(submit_engine.release, submit_engine.user), \
            "no job on %s for %s" % (submit_engine.release, name)
        t = time.monotonic()
        # sleep, the container's init, ignores TERM: stop ends it with KILL.
        result = submit_engine("stop", "-t", "2", name)
        took = time.monotonic() - t
        assert result.returncode == 0, result.stderr
        assert state(submit_engine, name) == ["exited", "137"]
        assert took < 15, took
    finally:
        submit_engine.remove(name)


def test_kill_ends_the_container_with_128_plus_n(submit_engine):
    name = detached(submit_engine, "sleep", "300")
    try:
        result = submit_engine("kill", "-s", "KILL", name)
        assert result.returncode == 0, result.stderr
        result = submit_engine("wait", name, timeout=60)
        assert result.stdout.split() == [b"137"], result.stdout + result.stderr
        assert state(submit_engine, name) == ["exited", "137"]
    finally:
        submit_engine.remove(name)


def test_exec_runs_in_the_running_container(submit_engine):
    name = detached(submit_engine, "sleep", "300")
    try:
        # The container's init, seen from the exec'd process: the same container.
        result = submit_engine("exec", name, "sh", "-c",
                               "tr '\\0' ' ' </proc/1/cmdline; echo err >&2; exit 5")
        assert result.returncode == 5, result.stderr
        assert result.stdout == b"sleep 300 "
        assert result.stderr == b"err\n"
        assert state(submit_engine, name)[0] == "running"
    finally:
        submit_engine.remove(name)
