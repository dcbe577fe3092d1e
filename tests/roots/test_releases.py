"""The core of a run against each Debian root's Slurm release (24.11 on trixie,
26.05 on forky), from this host's podman 4.3 and docker 20.10 and from the
root's own podman 5 and docker 26/28 as its submit host (the engine
fixture): the nodes share no filesystem with either, so every container's
rootfs travels."""
import hashlib
import os

from . import clusters
from .clusters import IMAGE
from e2e.testbed import Terminal

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


def terminal_run(engine, *args, rows=24, cols=80):
    """`run -it --rm` of args on a fresh pty of that size, named, so that
    what a failed test left can go (killing the engine leaves --rm undone)."""
    name = "scrun-matrix-tty-%d" % os.getpid()
    term = Terminal(engine.terminal_argv("run", "-it", "--rm", "--network=none", "--name", name,
                                         IMAGE, *args), rows=rows, cols=cols)
    term.name = name
    return term


def close_terminal(engine, term):
    term.close()
    if engine("inspect", term.name).returncode == 0:
        engine.remove(term.name)


def printed(term, close):
    """What the program on term printed, and its exit; close(term) after."""
    try:
        code = term.wait()
        term.expect(r"\r\n$", 10)
        return term.screen, code
    finally:
        close(term)


def test_a_terminal_starts_with_the_callers_size(engine):
    # podman and docker 23+ put the size in process.consoleSize (before, the
    # pty stayed 0x0 until docker resized it after start); docker 20.10 puts
    # none there and resizes only after start, as it does with runc.
    seen = printed(terminal_run(engine, "stty", "size", rows=33, cols=99),
                   lambda term: close_terminal(engine, term))
    if engine.name == "docker" and not engine.on_root:
        runc = Terminal(["/usr/bin/docker", "run", "-it", "--rm", "--network=none", IMAGE,
                         "stty", "size"], rows=33, cols=99)
        assert seen == printed(runc, Terminal.close)
    else:
        assert seen == (b"33 99\r\n", 0)


def test_a_terminal_session_follows_a_resize(engine):
    term = terminal_run(engine, "sh")
    try:
        term.expect("# ", 60)
        term.type("until stty size | grep -q '^24 80$'; do sleep 0.1; done; echo sized\r")
        term.expect(r"\nsized\r\n", 15)
        term.resize(40, 120)
        # The window change travels: engine, runtime, tunnel, node.
        term.type("n=0; until stty size | grep -q '^40 120$' || [ $n -gt 100 ]; do "
                  "sleep 0.1; n=$((n+1)); done; stty size; tty; exit 3\r")
        term.expect(r"\n40 120\r\n/dev/pts/\d+\r\n")
        assert term.wait() == 3
    finally:
        close_terminal(engine, term)


def test_scrun_settings_reach_the_job(engine):
    name = "matrix-%s-%d" % (engine.name, os.getpid())
    result = engine(*RUN, "-e", "SCRUN_JOB_NAME=" + name, "-e", "SCRUN_TIMELIMIT=7", IMAGE,
                    "sh", "-c", "echo $SLURM_JOB_ID $SLURM_JOB_NAME")
    assert result.returncode == 0, result.stderr
    job_id, seen_name = result.stdout.decode().split()
    assert seen_name == name
    shown = clusters.slurm(engine.release, "scontrol", "-o", "show", "job", job_id).stdout
    assert "JobName=%s " % name in shown and "TimeLimit=00:07:00" in shown, shown
