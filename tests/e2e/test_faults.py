"""Faults and bad input: each fault gives podman a non-zero exit and
one clear message in time; afterwards no job of the user, no anchor, no spool
dir (conftest checks those), no runc container, no task dir, no tunnel port.

Tests marked `disruptive` stop a daemon or down the node: every user of the
testbed feels them, so they are grouped and kept short.
"""
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

from . import testbed
from .testbed import IMAGE, RUNTIME, as_user, podman, rest_job, user_jobs, wait_until
from .user_config import (Timer, all_user_jobs, blocked_ports, clear_compute_leftovers,
                          compute_leftovers, daemon_stopped, job_params, new_job,
                          podman_popen, user_argv, user_config, write_user_file)

RUN = ("run", "--rm", "--network=none")


def one_clear_line(stderr, *words):
    text = stderr.decode("utf-8", "replace")
    assert "Traceback" not in text and "KeyError" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    for word in words:
        assert word in lines[0], text
    return lines[0]


def finished(process, timeout):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


@pytest.fixture
def nothing_on_the_node():
    """After the test: no runc container, no task scratch dir of the user."""
    yield
    problems = compute_leftovers()
    clear_compute_leftovers()
    assert not problems


def runtime(*args, timeout=60):
    return as_user([RUNTIME] + list(args), timeout=timeout)


def runtime_create(bundle, cid, *extra):
    """create as conmon runs it: the anchor keeps its stdout and stderr (files
    here, so that nothing waits for them to close)."""
    with tempfile.TemporaryFile() as errors:
        result = subprocess.run(
            user_argv([RUNTIME, "create", "--bundle", bundle] + list(extra) + [cid]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
            timeout=120, cwd="/tmp")
        errors.seek(0)
        result.stderr = errors.read()
    return result


# -- slurmrestd outages -----------------------------------------------------------

@pytest.mark.disruptive
def test_slurmrestd_down_at_create(nothing_on_the_node):
    """podman as the test user and docker as root, side by side in one outage."""
    before = all_user_jobs(), all_user_jobs("root")
    with daemon_stopped("slurmrestd"):
        timer = Timer()
        ours = podman_popen(*RUN, IMAGE, "true")
        theirs = subprocess.Popen(["/usr/bin/docker", "run", "--runtime", "scrun-rest"] +
                                  list(RUN[1:]) + [IMAGE, "true"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        podman_result, docker_result = finished(ours, 60), finished(theirs, 60)
        elapsed = timer.elapsed
        # Nothing was submitted (nobody can submit while slurmrestd is down).
        assert (all_user_jobs(), all_user_jobs("root")) == before
    assert elapsed < 15, elapsed
    for code, out, err in (podman_result, docker_result):
        assert code != 0
        one_clear_line(err, testbed.REST_URL, "unreachable")


@pytest.mark.disruptive
@pytest.mark.slow
def test_slurmrestd_outage_while_containers_run(nothing_on_the_node):
    """The tunnel needs no REST: one container runs through the outage, one
    is killed and removed during it."""
    name = "outage-kill-%d" % os.getpid()
    before = all_user_jobs()
    through = podman_popen(*RUN, IMAGE, "sh", "-c", "sleep 9; echo done; exit 3")
    killed = podman("run", "-d", "--network=none", "--name", name, IMAGE, "sleep", "300")
    assert killed.returncode == 0, killed.stderr
    assert wait_until(lambda: len(all_user_jobs() - before) == 2 and len(user_jobs()) == 2, 15)
    with daemon_stopped("slurmrestd"):
        outage = Timer()
        stop = podman("stop", "-t", "1", name, timeout=30)
        assert stop.returncode == 0, stop.stderr
        code = podman("wait", name).stdout.decode().strip()
        assert code in ("137", "143"), code
        removed = podman("rm", name)
        assert removed.returncode == 0, removed.stderr
        assert outage.elapsed < 8, outage.elapsed
        time.sleep(max(0.0, 4 - outage.elapsed))  # the other one runs on without REST
    code, out, err = finished(through, 60)
    assert code == 3, err
    assert out == b"done\n"


# -- the token runs out while the container runs ------------------------------------

def short_token(lifespan):
    """A token of the test user (scontrol token works for one's own name)."""
    out = as_user(["scontrol", "token", "lifespan=%d" % lifespan]).stdout.decode()
    return out.strip().split("=", 1)[1]


def detached_job(result):
    assert result.returncode == 0, result.stderr
    cid = result.stdout.decode().strip()
    state = wait_until(lambda: (testbed.container_state(cid) or {}).get("job_id") and
                       testbed.container_state(cid), 15)
    return cid, state["job_id"]


def logs(cid):
    result = podman("logs", cid)
    return (result.stdout + result.stderr).decode("utf-8", "replace")


@pytest.mark.slow
def test_token_expiry_while_containers_run(nothing_on_the_node):
    """scrun-rest stops using a token 60 s before it expires, so a 68 s token
    is stale 8 s after it was made. A container outlives its token unharmed;
    what needs REST afterwards renews through JwtCommand, or says why not."""
    home = testbed.HOME + "/.config/scrun-rest"
    jwt_file, command, counter = home + "/short-jwt", home + "/mint.sh", home + "/mint-count"
    write_user_file(counter, "")
    write_user_file(command, "#!/bin/sh\necho run >> %s\nexec scontrol token lifespan=68\n"
                    % counter, mode=0o700)
    write_user_file(jwt_file, short_token(68) + "\n")
    minted = Timer()
    names = []
    try:
        with user_config(JwtFile=jwt_file):
            harmless = podman_popen(*RUN, IMAGE, "sh", "-c", "sleep 13; echo survived; exit 4")
            stale_cid, stale_job = detached_job(
                podman("run", "-d", "--network=none", IMAGE, "sleep", "300"))
        names.append(stale_cid)
        with user_config(JwtFile=None, JwtCommand=command):
            renew_cid, renew_job = detached_job(
                podman("run", "-d", "--network=none", IMAGE, "sleep", "300"))
        names.append(renew_cid)
        time.sleep(max(0.0, 10 - minted.elapsed))
        for job in (stale_job, renew_job):
            assert as_user(["scancel", str(job)]).returncode == 0
        timer = Timer()
        for cid in names:
            code = podman("wait", cid, timeout=30).stdout.decode().strip()
            assert code in ("137", "143"), (cid, code)
        assert timer.elapsed < 10
        assert "lost contact with job %d" % stale_job in logs(stale_cid)
        assert "cannot be renewed" in logs(stale_cid)
        assert "Slurm cancelled job %d" % renew_job in logs(renew_cid)
        with open(counter) as handle:
            assert len(handle.read().split()) >= 2  # create, then the renewal
        code, out, err = finished(harmless, 60)
        assert (code, out) == (4, b"survived\n"), err
    finally:
        for cid in names:
            podman("rm", "-f", cid)
        for path in (jwt_file, command, counter):
            if os.path.exists(path):
                os.unlink(path)


# -- Slurm ends the job ---------------------------------------------------------------

def rest_delete_as_user(job_id):
    with open(testbed.HOME + "/.config/scrun-rest/jwt") as handle:
        token = handle.read().strip()
    request = urllib.request.Request(
        "%s/slurm/v0.0.38/job/%d" % (testbed.REST_URL, job_id), method="DELETE",
        headers={"X-SLURM-USER-NAME": testbed.USER, "X-SLURM-USER-TOKEN": token})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def running_container_job(engine_name="podman"):
    """A container sleeping in the background; its process and job id once
    the container's own process exists, not just its job."""
    seconds = 400 + os.getpid() % 500  # a command line no one else runs
    name = "fault-%d-%d" % (os.getpid(), time.monotonic_ns() % 100000)
    args = RUN + ("-e", "SCRUN_JOB_NAME=" + name, IMAGE, "sleep", str(seconds))
    if engine_name == "podman":
        process, uid = podman_popen(*args), testbed.UID
    else:
        process = subprocess.Popen(["/usr/bin/docker", "run", "--runtime", "scrun-rest"] +
                                   list(args[1:]), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        uid = 0
    job_id = wait_until(lambda: job_named(name), 15)
    assert job_id, "no job %s" % name
    assert wait_until(lambda: container_processes("sleep %d" % seconds, uid), 15)
    return process, job_id


def job_named(name):
    out = subprocess.run(["squeue", "-h", "-t", "all", "-n", name, "-o", "%i"],
                         capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def container_processes(command_line, uid=testbed.UID):
    """pids of the user's processes with exactly this command line."""
    out = subprocess.run(["pgrep", "-u", str(uid), "-f", "^%s$" % command_line],
                         capture_output=True, text=True).stdout
    return out.split()


def rest_delete_as_root(job_id):
    request = urllib.request.Request(
        "%s/slurm/v0.0.38/job/%d" % (testbed.REST_URL, job_id), method="DELETE",
        headers={"X-SLURM-USER-NAME": "root", "X-SLURM-USER-TOKEN": testbed.admin_token()})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize("how", ["scancel", "rest_delete"])
def test_job_cancelled_from_outside(engine, how):
    """scancel, or DELETE through slurmrestd by the job's owner."""
    process, job_id = running_container_job(engine.name)
    port = job_params(job_id)["port"]
    timer = Timer()
    if how == "scancel" and engine.name == "podman":
        assert as_user(["scancel", str(job_id)]).returncode == 0
    elif how == "scancel":
        subprocess.run(["scancel", str(job_id)], check=True)
    elif engine.name == "podman":
        rest_delete_as_user(job_id)
    else:
        rest_delete_as_root(job_id)
    code, out, err = finished(process, 30)
    assert timer.elapsed < 10, timer.elapsed
    assert code in (137, 143), (code, err)
    words = "Slurm cancelled job %d" % job_id
    if engine.name == "podman":
        assert one_clear_line(err, words).startswith("scrun-rest: ")
        assert not compute_leftovers(port=port)
    else:
        # docker adds nothing of its own here: the container's stderr.
        assert words in err.decode(), err


@pytest.mark.slow
def test_job_hits_its_time_limit(nothing_on_the_node):
    """EndTime=now makes slurmctld's next time-limit check (every 30 s) end it."""
    process, job_id = running_container_job()
    subprocess.run(["scontrol", "update", "jobid=%d" % job_id,
                    # A second on: an EndTime before the job's start is refused.
                    "EndTime=" + time.strftime("%Y-%m-%dT%H:%M:%S",
                                               time.localtime(time.time() + 2))], check=True)
    code, out, err = finished(process, 60)
    ended = rest_job(job_id)["end_time"]
    assert time.time() - ended < 10, time.time() - ended
    assert code in (137, 143), (code, err)
    one_clear_line(err, "job %d reached its time limit" % job_id)


@pytest.mark.disruptive
def test_node_set_down(nothing_on_the_node):
    process, job_id = running_container_job()
    node = rest_job(job_id)["nodes"]
    timer = Timer()
    try:
        subprocess.run(["scontrol", "update", "nodename=" + node, "state=down",
                        "reason=scrun-rest fault test"], check=True)
        code, out, err = finished(process, 30)
        elapsed = timer.elapsed
    finally:
        # ReturnToService=2 may have brought it back already: then resume fails.
        subprocess.run(["scontrol", "update", "nodename=" + node, "state=resume"],
                       capture_output=True)
        wait_until(lambda: subprocess.run(["sinfo", "-h", "-n", node, "-o", "%t"],
                                          capture_output=True, text=True).stdout.strip()
                   in ("idle", "mix", "alloc"), 30)
    assert elapsed < 10, elapsed
    assert code != 0
    one_clear_line(err, "job %d ended: its node failed" % job_id)


# -- the tunnel breaks -----------------------------------------------------------------

def test_anchor_killed_ends_the_job(bundle, nothing_on_the_node):
    cid = "killed-anchor-%d" % os.getpid()
    before = all_user_jobs()
    assert runtime_create(bundle, cid, "--pid-file", bundle + "/pid").returncode == 0
    try:
        assert runtime("start", cid).returncode == 0
        job_id = new_job(before)
        port = job_params(job_id)["port"]
        assert wait_until(lambda: container_processes("sleep 300"), 15)
        os.kill(int(open(bundle + "/pid").read()), signal.SIGKILL)
        timer = Timer()
        assert wait_until(lambda: str(job_id) not in user_jobs(), 30), "the job outlived it"
        # The agent sees the tunnel close at once (0.1 s here): a bound of its
        # own, not the wait's.
        assert timer.elapsed < 5, timer.elapsed
        state = json.loads(runtime("state", cid).stdout)
        assert (state["status"], state["pid"]) == ("stopped", 0)
    finally:
        assert runtime("delete", "--force", cid).returncode == 0
    assert testbed.container_state(cid) is None
    assert not compute_leftovers(port=port)


def task_shims(command_line):
    """pids of the task shims (`python3 ... -c TASK_BOOT task`) above the
    user's processes with this command line."""
    shims = set()
    for pid in map(int, container_processes(command_line)):
        try:
            while pid > 1:
                with open("/proc/%d/cmdline" % pid, "rb") as handle:
                    argv = handle.read().split(b"\0")[:-1]
                if argv and argv[-1] == b"task" and b"-c" in argv:
                    shims.add(pid)
                    break
                with open("/proc/%d/stat" % pid) as handle:
                    pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            pass  # gone meanwhile
    return sorted(shims)


def test_a_killed_task_is_swept_by_the_next_one(nothing_on_the_node):
    """SIGKILL (Slurm's, after KillWait) leaves a task no time to remove its
    runtime container and scratch dir: the user's next task on the node does."""
    name = "killed-task-%d" % os.getpid()
    started = podman("run", "-d", "--network=none", "--name", name, IMAGE, "sleep", "300")
    assert started.returncode == 0, started.stderr
    try:
        shims = wait_until(lambda: task_shims("sleep 300"), 15)
        assert len(shims) == 1, shims
        os.kill(shims[0], signal.SIGKILL)
        code = podman("wait", name, timeout=30).stdout.decode().strip()
        assert code != "0", code
        left = compute_leftovers()
        assert any("runc containers left" in problem for problem in left), left
        assert any("task dirs left" in problem for problem in left), left
    finally:
        podman("rm", "-f", name)
    result = podman(*RUN, IMAGE, "true")
    assert result.returncode == 0, result.stderr


TUNNEL_PORTS = (47700, 47709)


@pytest.mark.slow
def test_agent_cannot_reach_the_anchor(nothing_on_the_node):
    """A firewall drops the agent's packets: the job gives up by itself."""
    before = all_user_jobs()
    with user_config(TunnelPortRange="%d-%d" % TUNNEL_PORTS), blocked_ports(*TUNNEL_PORTS):
        timer = Timer()
        result = podman(*RUN, IMAGE, "true", timeout=120)
        elapsed = timer.elapsed
    assert result.returncode != 0
    line = one_clear_line(result.stderr, "without its agent reaching the anchor at 127.0.0.1:477")
    assert elapsed < 60, elapsed
    job_id = new_job(before)
    assert rest_job(job_id)["job_state"] in ("FAILED", "COMPLETED", "CANCELLED"), line


def test_tunnel_host_the_anchor_cannot_use():
    before = all_user_jobs()
    with user_config(TunnelHost="192.0.2.1"):
        result = podman(*RUN, IMAGE, "true")
    assert result.returncode != 0
    one_clear_line(result.stderr, "cannot listen on 192.0.2.1")
    assert all_user_jobs() == before


# -- a rootfs the node cannot see --------------------------------------------------------

@pytest.fixture
def overlay_podman():
    """podman argv of the test user with overlay storage of its own (podman's
    default driver), holding the test image; removed afterwards."""
    base = "%s/.local/share/scrun-test-overlay-%d" % (testbed.HOME, os.getpid())
    argv = ["podman", "--storage-driver", "overlay", "--root", base + "/root",
            "--runroot", "%s/scrun-test-overlay-%d" % (testbed.RUNTIME_DIR, os.getpid())]
    loaded = as_user(argv + ["import", "-q", testbed.FACTS.get(
        "TB_ROOTFS_TAR", "/var/lib/scrun-testbed/busybox.tar"), IMAGE])
    assert loaded.returncode == 0, loaded.stderr
    yield argv
    # Not `system reset`: it ends the user's podman namespace for every
    # later test (each then warns that / is not a shared mount).
    as_user(argv + ["rmi", "-a", "-f"])
    as_user(argv + ["unshare", "rm", "-rf", base, argv[-1]])


def test_an_overlay_rootfs_the_node_cannot_see_is_named(overlay_podman):
    """The overlay mount exists only in podman's mount namespace: without
    transfer the task on the node finds an empty dir, and says so, not
    "echo: not found" (test_transfer.py runs it with transfer)."""
    before = all_user_jobs()
    with user_config(BundleTransfer="never"):
        result = as_user(overlay_podman + ["--runtime", RUNTIME] + list(RUN)
                         + [IMAGE, "echo", "hi"])
    assert result.returncode == 126, (result.returncode, result.stderr)
    line = one_clear_line(result.stderr, "the container's root filesystem ",
                          "/merged is empty on node ", "podman's overlay storage")
    assert "not found" not in line
    job_id = new_job(before)
    assert wait_until(lambda: str(job_id) not in user_jobs(), 10)


# -- the compute-side runtime ------------------------------------------------------------

NOT_EXECUTABLE = testbed.HOME + "/.config/scrun-rest/not-a-runtime"


@pytest.mark.parametrize("run,code,words", [
    ("/nonexistent/runc run %n.%u.%j.%s.%t -b %b", 127,
     "/nonexistent/runc: executable file not found"),
    (NOT_EXECUTABLE + " run %n.%u.%j.%s.%t -b %b", 126,
     NOT_EXECUTABLE + ": permission denied"),
])
def test_runtime_missing_on_the_node(nothing_on_the_node, run, code, words):
    before = all_user_jobs()
    write_user_file(NOT_EXECUTABLE, "#!/bin/sh\nexit 0\n", mode=0o644)
    with user_config(RunTimeRun=run):
        result = podman(*RUN, IMAGE, "true")
    os.unlink(NOT_EXECUTABLE)
    assert result.returncode == code, result.stderr
    one_clear_line(result.stderr, words)
    job_id = new_job(before)
    assert wait_until(lambda: str(job_id) not in user_jobs(), 10)


def test_runtime_that_fails_on_the_node(nothing_on_the_node):
    with user_config(RunTimeRun="sh -c 'echo the runtime broke: $0 >&2; exit 3' %b"):
        result = podman(*RUN, IMAGE, "true")
    assert result.returncode == 3, result.stderr
    one_clear_line(result.stderr, "the runtime broke: /tmp/scrun-rest.")


# -- scrun.lua staging ---------------------------------------------------------------------

STAGING = """
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)
    return %s
end
function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path, spool_dir, config_file, job_id, user_id, group_id)
    return %s
end
return slurm.SUCCESS
"""


@pytest.fixture
def lua_script():
    path = testbed.HOME + "/.config/scrun-rest/fault-test.lua"

    def write(stage_in, stage_out):
        write_user_file(path, STAGING % (stage_in, stage_out))
        return path
    yield write
    if os.path.exists(path):
        os.unlink(path)


def test_stage_in_failing_cancels_the_job(lua_script, nothing_on_the_node):
    before = all_user_jobs()
    with user_config(LuaScript=lua_script("slurm.ERROR", "slurm.SUCCESS")):
        result = podman(*RUN, IMAGE, "echo", "never")
    assert result.returncode != 0 and b"never" not in result.stdout
    one_clear_line(result.stderr, "stage_in")
    job_id = new_job(before)
    assert wait_until(lambda: rest_job(job_id)["job_state"] == "CANCELLED", 10)


def test_stage_out_failing_keeps_the_exit_code(lua_script, nothing_on_the_node):
    with user_config(LuaScript=lua_script("slurm.SUCCESS", "slurm.ERROR")):
        result = podman(*RUN, IMAGE, "sh", "-c", "echo ran; exit 5")
    assert result.returncode == 5 and result.stdout == b"ran\n"
    one_clear_line(result.stderr, "stage_out")


# -- bad input: one clear line, non-zero exit, nothing submitted -----------------------------

@pytest.fixture
def nothing_submitted():
    before = all_user_jobs()
    yield
    time.sleep(0.5)
    assert all_user_jobs() == before


@pytest.mark.parametrize("cid,words", [
    ("a/b", "contains '/'"), ("..", "not allowed"), ("x" * 1025, "too long"),
])
def test_bad_container_ids(bundle, nothing_submitted, cid, words):
    result = runtime_create(bundle, cid)
    assert result.returncode != 0
    one_clear_line(result.stderr, words)
    for command in (["state"], ["kill"], ["start"], ["delete"]):
        result = runtime(*(command + [cid]))
        assert result.returncode != 0
        one_clear_line(result.stderr, words)


def test_a_1000_character_id_fails_cleanly(bundle, nothing_submitted):
    cid = "x" * 1000
    result = runtime_create(bundle, cid)
    assert result.returncode != 0
    line = one_clear_line(result.stderr, "File name too long")
    assert len(line) < 400
    for command in (["state"], ["kill"], ["start"]):
        result = runtime(*(command + [cid]))
        assert result.returncode != 0
        one_clear_line(result.stderr, "does not exist")


def test_bundles_that_are_not_bundles(bundle, nothing_submitted):
    cases = [("/nonexistent-bundle", "does not exist"), ("/etc/hostname", "is not a directory"),
             ("/tmp", "no config.json")]
    for path, words in cases:
        result = runtime_create(path, "bad-bundle")
        assert result.returncode != 0
        one_clear_line(result.stderr, words)
    with open(bundle + "/config.json", "w") as handle:
        handle.write('{"ociVersion": "1.0.2", "process": ')
    result = runtime_create(bundle, "bad-json")
    assert result.returncode != 0
    one_clear_line(result.stderr, "config.json: not valid JSON")


def test_pid_file_in_an_unwritable_place(bundle, nothing_submitted):
    result = runtime_create(bundle, "bad-pid-file", "--pid-file", "/proc/scrun-pid")
    assert result.returncode != 0
    one_clear_line(result.stderr, "cannot write pid file /proc/scrun-pid")
    assert testbed.container_state("bad-pid-file") is None
