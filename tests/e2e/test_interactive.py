"""Issue 5: terminals, exec, and the signals a person sends.

Terminal tests run podman or docker on a real pty (testbed.Terminal) and
type at it. Long-queue tests make the container's job pend on a dependency:
the user's own held job, cancelled when the test wants the container to
start. That touches no other user's jobs, unlike draining or reserving the
shared node.
"""
import os
import statistics
import subprocess
import time

import pytest

from . import testbed
from .conftest import Engine
from .testbed import (IMAGE, RUNTIME, Terminal, container_state, rest_job,
                      spool_dirs, user_command, user_jobs, wait_until)

RUN = ("run", "--rm", "--network=none")
# Runs until a signal it handles ends it; a shell as pid 1 ignores the rest.
LOOP = "echo ready; while :; do sleep 0.2; done"
USER_CONF = os.path.join(testbed.HOME, ".config/scrun-rest/scrun-rest.conf")


def on_terminal(engine, *args, rows=24, cols=80):
    """The engine's command line on a fresh pty, as the engine's user."""
    if engine.name == "podman":
        argv = user_command(["podman", "--runtime", RUNTIME] + list(args))
    else:
        argv = ["/usr/bin/docker"] + list(args)
        if args[0] == "run":
            argv[2:2] = ["--runtime", "scrun-rest"]
    return Terminal(argv, rows=rows, cols=cols)


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


def wait_for_log(engine, cid, text, timeout=15):
    return wait_until(lambda: text in engine("logs", cid).stdout, timeout, 0.3)


def shell_answer(term, command, pattern, timeout=15):
    """Type a command line and read its answer (not the typed echo)."""
    marker = "%x" % int(time.monotonic() * 1e6)
    term.type("%s; echo end-%s\r" % (command, marker))
    term.expect("echo end-%s\r\n" % marker, timeout)
    match = term.expect(pattern, timeout)
    term.expect("end-%s\r\n" % marker, timeout)
    return match


@pytest.fixture
def user_conf():
    """Add settings to the test user's own config file (podman passes no
    environment that could point elsewhere); restored afterwards."""
    with open(USER_CONF) as handle:
        original = handle.read()

    def add(line):
        with open(USER_CONF, "w") as handle:   # keeps owner and mode 0600
            handle.write(original + line + "\n")
    yield add
    with open(USER_CONF, "w") as handle:
        handle.write(original)


# -- terminal -------------------------------------------------------------------

def test_interactive_shell_on_a_terminal(engine):
    term = on_terminal(engine, "run", "-it", "--rm", "--network=none", IMAGE, "sh")
    try:
        term.expect("# ", 60)
        assert shell_answer(term, "echo $((6*7))", r"(\d+)\r\n").group(1) == b"42"
        assert shell_answer(term, "stty size", r"(\d+) (\d+)\r\n").groups() == (b"24", b"80")

        term.resize(31, 101)
        assert wait_until(lambda: shell_answer(term, "stty size", r"(\d+) (\d+)\r\n")
                          .groups() == (b"31", b"101"), 10, 0.2)

        term.type("sleep 100\r")
        term.expect("sleep 100\r\n")
        time.sleep(0.5)
        begin = time.monotonic()
        term.type("\x03")
        assert shell_answer(term, "echo status=$?", r"status=(\d+)\r\n", timeout=10) \
            .group(1) == b"130"
        assert time.monotonic() - begin < 10

        term.type("exit 5\r")
        assert term.wait() == 5
    finally:
        term.close()


def test_ctrl_d_ends_the_shell():
    term = on_terminal(Engine("podman"), "run", "-it", "--rm", "--network=none", IMAGE, "sh")
    try:
        term.expect("# ", 60)
        term.type("\x04")
        assert term.wait() == 0
    finally:
        term.close()


def test_ctrl_c_stops_an_attached_container(engine):
    """Not -t: the terminal sends SIGINT to podman, which passes it on."""
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


# -- exec -------------------------------------------------------------------------

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


def test_exec_through_the_configured_runtime_exec(user_conf):
    # runc exec ignores its other flags when given --process: a wrapper
    # that speaks first shows the pattern was used.
    user_conf("""RunTimeExec=sh -c 'echo via pattern in job %j >&2; exec "$0" "$@"' """
              "runc --rootless=true --root=/run/user/%U/ exec")
    engine = Engine("podman")
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
        assert shell_answer(term, "echo $((6*7))", r"(\d+)\r\n").group(1) == b"42"
        assert wait_until(lambda: shell_answer(term, "stty size", r"(\d+) (\d+)\r\n")
                          .groups() == (b"40", b"120"), 10, 0.2)
        term.resize(33, 99)
        assert wait_until(lambda: shell_answer(term, "stty size", r"(\d+) (\d+)\r\n")
                          .groups() == (b"33", b"99"), 10, 0.2)
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




def pending_run(held_job):
    """podman run, attached, of a container whose job waits for held_job."""
    return subprocess.Popen(
        user_command(["podman", "--runtime", RUNTIME, "run", "--rm", "--network=none",
                      "-e", "SCRUN_DEPENDENCY=afterany:" + held_job.job_id, IMAGE,
                      "echo", "late"]),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/tmp")


def started_while_pending(create_limit):
    """podman called start (state running) while the job still pends."""
    cids = wait_until(spool_dirs, 15)
    assert cids
    state = wait_until(lambda: (container_state(cids[0]) or {}).get("job_id")
                       and container_state(cids[0]), 15)
    assert state
    # Nothing happens until CreateTimeout: create waits for the job.
    time.sleep(max(0, create_limit - 1 - (time.time() - state["created"])))
    assert container_state(cids[0])["status"] == "creating"
    assert wait_until(lambda: container_state(cids[0])["status"] == "running", 10)
    assert rest_job(state["job_id"])["job_state"] == "PENDING"
    return state


def test_create_returns_while_the_job_pends(held_job, user_conf):
    user_conf("CreateTimeout=4")
    run = pending_run(held_job)
    try:
        state = started_while_pending(4)
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
    run = pending_run(held_job)
    try:
        state = started_while_pending(200)
        time.sleep(max(0, 250 - (time.monotonic() - begin)))
        assert run.poll() is None
        held_job(state["job_id"])
        out, err = run.communicate(timeout=60)
        assert (run.returncode, out) == (0, b"late\n"), err
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_stop_of_a_pending_container_cancels_its_job(held_job, user_conf):
    user_conf("CreateTimeout=2")
    engine = Engine("podman")
    cid = detached(engine, "sleep", "300",
                   options=("-e", "SCRUN_DEPENDENCY=afterany:" + held_job.job_id))
    try:
        job_id = container_state(cid)["job_id"]
        assert rest_job(job_id)["job_state"] == "PENDING"
        begin = time.monotonic()
        stopped = engine("stop", "-t", "10", cid)
        elapsed = time.monotonic() - begin
        assert stopped.returncode == 0, stopped.stderr
        print("podman stop of a pending container: %.2f s" % elapsed)
        assert elapsed < 3
        assert rest_job(job_id)["job_state"] == "CANCELLED"
    finally:
        remove(engine, cid)
