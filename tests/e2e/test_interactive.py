"""Terminals, exec, and the signals a person sends.

Terminal tests run podman or docker on a real pty (testbed.Terminal) and
type at it. Long-queue tests make the container's job pend on a dependency
on the user's own held job, and clear that dependency when the container
should start. That touches no other user's jobs, unlike draining,
reserving or filling the shared node.
"""
import os
import statistics
import subprocess
import time

import pytest

from . import testbed
from .conftest import Engine, make_bundle
from .testbed import (IMAGE, RUNTIME, Terminal, container_state, rest_job,
                      spool_dirs, user_command, user_jobs, wait_until)
# Settings go in the user's own scrun-rest.conf: podman passes no
# environment that could point elsewhere.
from .user_config import root_config, user_config

RUN = ("run", "--rm", "--network=none")
# Runs until a signal it handles ends it; a shell as pid 1 ignores the rest.
LOOP = "echo ready; while :; do sleep 0.2; done"


def engine_argv(engine, *args):
    """The engine's command line, as the engine's user, with our runtime."""
    if engine.name == "podman":
        return user_command(["podman", "--runtime", RUNTIME] + list(args))
    return testbed.docker_argv(*args)


def on_terminal(engine, *args, rows=24, cols=80):
    """The engine's command line on a fresh pty, as the engine's user."""
    return Terminal(engine_argv(engine, *args), rows=rows, cols=cols)


def detached(engine, *command, options=()):
    started = engine("run", "-d", "--network=none", *options, IMAGE, *command)
    assert started.returncode == 0, started.stderr
    return started.stdout.decode().strip()


def remove(engine, cid):
    """Without the 10 s grace podman's rm -f gives a running container."""
    if engine.name == "podman":
        engine("rm", "-f", "-t", "0", cid)
    else:
        engine("rm", "-f", cid)


def remove_if_left(engine, name):
    """A failed terminal test kills its podman, which leaves --rm undone."""
    if engine("inspect", name).returncode == 0:
        remove(engine, name)


def wait_for_log(engine, cid, text, timeout=15):
    return wait_until(lambda: text in engine("logs", cid).stdout, timeout, 0.3)


def shell_output(term, command, timeout=15):
    """Type a command line and return what it printed. The quotes keep the
    markers' output apart from their echo, which the shell may redraw (after
    a resize) in pieces."""
    marker = "%x" % int(time.monotonic() * 1e6)
    term.type('echo "<""%s"; %s; echo "%s"">"\r' % (marker, command, marker))
    return term.expect(r"<%s\r\n([\s\S]*?)%s>\r\n" % (marker, marker), timeout).group(1)


# -- terminal -------------------------------------------------------------------

def test_interactive_shell_on_a_terminal(engine):
    name = "scrun-e2e-it-%d" % os.getpid()
    term = on_terminal(engine, "run", "-it", "--rm", "--network=none", "--name", name,
                       IMAGE, "sh")
    try:
        term.expect("# ", 60)
        assert shell_output(term, "echo $((6*7))") == b"42\r\n"
        assert shell_output(term, "stty size") == b"24 80\r\n"

        term.resize(31, 101)
        assert wait_until(lambda: shell_output(term, "stty size") == b"31 101\r\n", 10, 0.2)

        # Whether the signal meets sh -c or the sleep it became, it dies of it.
        term.type("sh -c 'echo sleeping; exec sleep 100'\r")
        term.expect("\nsleeping\r\n")
        time.sleep(0.3)
        begin = time.monotonic()
        term.type("\x03")
        term.type('echo "st""atus=$?"\r')
        assert term.expect(r"status=(\d+)\r\n", 30).group(1) == b"130"
        # A keystroke's round trip (10 ms here), bounded apart from the wait.
        assert time.monotonic() - begin < 3, time.monotonic() - begin

        term.type("exit 5\r")
        assert term.wait() == 5, term.screen[-300:]
    finally:
        term.close()
        remove_if_left(engine, name)


def test_ctrl_d_ends_the_shell():
    name = "scrun-e2e-ctrl-d-%d" % os.getpid()
    term = on_terminal(Engine("podman"), "run", "-it", "--rm", "--network=none",
                       "--name", name, IMAGE, "sh")
    try:
        term.expect("# ", 60)
        term.type("\x04")
        assert term.wait() == 0
    finally:
        term.close()
        remove_if_left(Engine("podman"), name)


def test_ctrl_c_stops_an_attached_container(engine):
    """Not -t: the terminal sends SIGINT to podman (docker), which passes it
    on. A shell as pid 1 needs its trap, with runc as with us."""
    name = "scrun-e2e-ctrl-c-%d" % os.getpid()
    term = on_terminal(engine, *RUN, "--name", name, IMAGE, "sh", "-c",
                       'trap "echo got INT; exit 3" INT; ' + LOOP)
    try:
        term.expect("ready", 60)
        cid = engine("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
        job_id = str(container_state(cid, engine.spool_root)["job_id"])
        assert job_id in user_jobs(engine.user)
        begin = time.monotonic()
        term.type("\x03")
        assert term.wait(20) == 3
        elapsed = time.monotonic() - begin
        assert b"got INT" in term.screen
        assert elapsed < 5
        assert wait_until(lambda: job_id not in user_jobs(engine.user), 10)
        print("Ctrl-C to exit of %s run: %.2f s" % (engine.name, elapsed))
    finally:
        term.close()
        remove_if_left(engine, name)


@pytest.fixture
def tty_bundle():
    """A rootless bundle of the test user's whose process wants a terminal."""
    import shutil
    path = make_bundle("/tmp/scrun-e2e-tty-bundle-%d" % os.getpid(),
                       ["sh", "-c", "read line; echo got-$line; exit 3"], terminal=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_create_sends_exactly_the_pty_master(tty_bundle):
    """As conmon and docker's shim expect: one fd, before create returns,
    and create's own stdio released (the shim reads it until EOF)."""
    import array
    import socket
    cid = "tty-%d" % os.getpid()
    address = "/tmp/scrun-e2e-console-%d.sock" % os.getpid()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(address)
    os.chmod(address, 0o777)
    server.listen(1)
    server.settimeout(60)
    create = subprocess.Popen(
        user_command([RUNTIME, "create", "--bundle", tty_bundle, "--console-socket", address,
                      "--pid-file", tty_bundle + "/pid", cid]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/tmp")
    master = None
    try:
        conn, _ = server.accept()
        data, ancillary, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(8 * 4))
        conn.close()
        fds = array.array("i")
        for level, kind, payload in ancillary:
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            fds.frombytes(payload[:len(payload) - len(payload) % 4])
        assert data and len(fds) == 1
        master = fds[0]
        out, err = create.communicate(timeout=60)
        assert create.returncode == 0, err
        assert os.isatty(master)
        assert testbed.as_user([RUNTIME, "start", cid]).returncode == 0
        os.write(master, b"x\r")
        screen = b""
        while b"got-x" not in screen:
            screen += os.read(master, 4096)
        assert wait_until(lambda: container_state(cid)["status"] == "stopped", 15)
        assert container_state(cid)["exit_code"] == 3
    finally:
        if create.poll() is None:
            create.kill()
        if master is not None:
            os.close(master)
        server.close()
        os.unlink(address)
        testbed.as_user([RUNTIME, "delete", "--force", cid])


# -- exec -------------------------------------------------------------------------

def test_runtime_exec_with_args_and_detached():
    """The runc-style command line itself, beside what podman passes."""
    engine = Engine("podman")
    cid = detached(engine, "sleep", "300")
    try:
        result = testbed.as_user([RUNTIME, "exec", cid, "sh", "-c", "echo args; exit 2"])
        assert (result.returncode, result.stdout) == (2, b"args\n"), result.stderr
        pid_file = "/run/user/%d/scrun-e2e-exec.pid" % testbed.UID
        # Our stdio becomes the process's (the anchor holds it): /dev/null,
        # so that returning does not wait for the process.
        result = subprocess.run(
            user_command([RUNTIME, "exec", "--detach", "--pid-file", pid_file, cid,
                          "sh", "-c", "sleep 3; exit 7"]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=10, cwd="/tmp")
        assert result.returncode == 0
        pid = int(open(pid_file).read())
        os.unlink(pid_file)
        # The front lives as long as the process it stands for.
        assert os.path.exists("/proc/%d" % pid)
        assert wait_until(lambda: not os.path.exists("/proc/%d" % pid), 15)
    finally:
        remove(engine, cid)


def test_exec_runs_beside_the_container(engine):
    cid = detached(engine, "sleep", "300")
    try:
        result = engine("exec", cid, "sh", "-c", "echo in; echo err >&2; exit 4")
        assert (result.returncode, result.stdout, result.stderr) == (4, b"in\n", b"err\n")

        result = engine("exec", "-i", cid, "cat", input=b"hi\n")
        assert (result.returncode, result.stdout) == (0, b"hi\n")

        # Same job, same container: the exec sees the container's processes.
        result = engine("exec", cid, "sh", "-c", "echo $SLURM_JOB_ID; cat /proc/1/cmdline")
        job_id = container_state(cid, engine.spool_root)["job_id"]
        assert result.stdout == ("%s\nsleep\x00300\x00" % job_id).encode()

        durations = []
        for _ in range(5):
            begin = time.monotonic()
            assert engine("exec", cid, "true").returncode == 0
            durations.append(time.monotonic() - begin)
        print("%s exec true: median %.2f s, max %.2f s"
              % (engine.name, statistics.median(durations), max(durations)))
        assert statistics.median(durations) < 5
        if engine.name == "podman":     # root's jobs are shared with others
            assert user_jobs(engine.user) == [str(job_id)]
    finally:
        remove(engine, cid)


def test_exec_through_the_configured_runtime_exec():
    # runc exec ignores its other flags when given --process: a wrapper
    # that speaks first shows the pattern was used.
    pattern = """sh -c 'echo via pattern in job %j >&2; exec "$0" "$@"' """ \
        "runc --rootless=true --root=/run/user/%U/ exec"
    engine = Engine("podman")
    with user_config(RunTimeExec=pattern):     # read by create, used by exec
        cid = detached(engine, "sleep", "300")
    try:
        job_id = container_state(cid)["job_id"]
        result = engine("exec", cid, "sh", "-c", "echo in; exit 3")
        assert (result.returncode, result.stdout, result.stderr) == \
            (3, b"in\n", ("via pattern in job %s\n" % job_id).encode())
    finally:
        remove(engine, cid)


def test_exec_with_a_terminal(engine):
    cid = detached(engine, "sleep", "300")
    term = on_terminal(engine, "exec", "-it", cid, "sh", rows=40, cols=120)
    try:
        term.expect("# ", 60)
        assert shell_output(term, "echo $((6*7))") == b"42\r\n"
        assert wait_until(lambda: shell_output(term, "stty size") == b"40 120\r\n", 10, 0.2)
        term.resize(33, 99)
        assert wait_until(lambda: shell_output(term, "stty size") == b"33 99\r\n", 10, 0.2)
        term.type("exit 6\r")
        assert term.wait() == 6
        # The container outlives its exec.
        assert engine("exec", cid, "true").returncode == 0
    finally:
        term.close()
        remove(engine, cid)


# -- signals and stop -----------------------------------------------------------

def test_kill_usr1_reaches_the_container():
    engine = Engine("podman")
    cid = detached(engine, "sh", "-c", 'trap "echo got USR1" USR1; ' + LOOP)
    try:
        assert wait_for_log(engine, cid, b"ready")
        assert engine("kill", "-s", "USR1", cid).returncode == 0
        assert wait_for_log(engine, cid, b"got USR1")
        assert engine("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == b"running"
    finally:
        remove(engine, cid)


def test_stop_kills_a_process_that_ignores_term(engine):
    cid = detached(engine, "sh", "-c", 'trap "" TERM; ' + LOOP)
    try:
        assert wait_for_log(engine, cid, b"ready")
        job_id = container_state(cid, engine.spool_root)["job_id"]
        begin = time.monotonic()
        stopped = engine("stop", "-t", "2", cid)
        elapsed = time.monotonic() - begin
        assert stopped.returncode == 0, stopped.stderr
        print("%s stop -t 2 of a TERM-ignoring container: %.2f s" % (engine.name, elapsed))
        assert 2 <= elapsed < 2 + 3
        assert engine("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == b"137"
        assert wait_until(lambda: str(job_id) not in user_jobs(engine.user), 10)
    finally:
        remove(engine, cid)


# -- long queues ------------------------------------------------------------------

@pytest.fixture
def held_job():
    """A held job of the test user: a container whose job depends on it
    pends until the fixture's value is called with that job's id. Clearing
    the dependency lets the job start at the next scheduler wake-up (< 1 s);
    a dependency met by the holder's end waits for a full pass (4-25 s)."""
    submitted = testbed.as_user(["sbatch", "--hold", "--parsable", "-J", "scrun-e2e-hold",
                                 "-o", "/dev/null", "--wrap", "true"])
    assert submitted.returncode == 0, submitted.stderr
    holder = submitted.stdout.decode().strip().split(";")[0]

    def release(job_id):
        subprocess.run(["scontrol", "update", "jobid=%s" % job_id, "dependency="], check=True)
    release.job_id = holder
    yield release
    subprocess.run(["scancel", holder])


def pending_run(held_job, engine):
    """The engine's run, attached, of a container whose job waits for held_job."""
    argv = engine_argv(engine, "run", "--rm", "--network=none", "-e",
                       "SCRUN_DEPENDENCY=afterany:" + held_job.job_id, IMAGE, "echo", "late")
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd="/tmp")


def pending_state(spool=testbed.SPOOL_ROOT):
    """The state of the one container in spool, once it has a job (create
    has read the config file by then)."""
    for cid in spool_dirs(spool):
        state = container_state(cid, spool)
        if state and state.get("job_id"):
            return state
    return None


def started_while_pending(state, create_limit, spool=testbed.SPOOL_ROOT):
    """The engine called start (state running) while the job still pends."""
    assert state, "no container with a job"
    cid = state["id"]
    # Nothing happens until CreateTimeout: create waits for the job.
    time.sleep(max(0, create_limit - 1 - (time.time() - state["created"])))
    assert container_state(cid, spool)["status"] == "creating"
    assert wait_until(lambda: container_state(cid, spool)["status"] == "running", 10)
    assert rest_job(state["job_id"])["job_state"] == "PENDING"


def config_of(engine):
    """podman's runtime runs as the test user, docker's as root: whose
    scrun-rest.conf a test changes."""
    return user_config if engine.name == "podman" else root_config


def test_create_returns_while_the_job_pends(held_job, engine):
    spool = engine.spool_root
    with config_of(engine)(CreateTimeout="4"):
        run = pending_run(held_job, engine)
        state = wait_until(lambda: pending_state(spool), 15)
    try:
        started_while_pending(state, 4, spool)
        time.sleep(2)     # start is queued, not failed
        assert run.poll() is None
        held_job(state["job_id"])
        out, err = run.communicate(timeout=60)
        assert (run.returncode, out) == (0, b"late\n"), err
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


@pytest.mark.slow
def test_job_that_pends_past_podmans_create_limit(held_job):
    """Default CreateTimeout (200 s) under podman's 240 s; released at 250 s."""
    begin = time.monotonic()
    with user_config(CreateTimeout=None):
        run = pending_run(held_job, Engine("podman"))
        state = wait_until(pending_state, 15)
    try:
        started_while_pending(state, 200)
        time.sleep(max(0, 250 - (time.monotonic() - begin)))
        assert run.poll() is None
        held_job(state["job_id"])
        out, err = run.communicate(timeout=60)
        assert (run.returncode, out) == (0, b"late\n"), err
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_stop_of_a_pending_container_cancels_its_job(held_job, engine):
    spool = engine.spool_root
    with config_of(engine)(CreateTimeout="2"):
        cid = detached(engine, "sleep", "300",
                       options=("-e", "SCRUN_DEPENDENCY=afterany:" + held_job.job_id))
    try:
        job_id = container_state(cid, spool)["job_id"]
        assert rest_job(job_id)["job_state"] == "PENDING"
        refused = engine("exec", cid, "true")
        # docker prints the runtime's error on stdout
        assert refused.returncode != 0 and b"pending" in refused.stderr + refused.stdout
        begin = time.monotonic()
        stopped = engine("stop", "-t", "10", cid)
        elapsed = time.monotonic() - begin
        assert stopped.returncode == 0, stopped.stderr
        print("%s stop of a pending container: %.2f s" % (engine.name, elapsed))
        assert elapsed < 3
        assert rest_job(job_id)["job_state"] == "CANCELLED"
    finally:
        remove(engine, cid)
