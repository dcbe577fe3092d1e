"""podman and docker run containers as Slurm jobs and behave like runc."""
import hashlib
import json
import time

import pytest

from .testbed import IMAGE, container_state, podman, rest_job, user_jobs, wait_until

RUN = ("run", "--rm", "--network=none")


def test_echo_hello(engine):
    result = engine(*RUN, IMAGE, "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello\n"


def test_exit_code_is_the_containers(engine):
    assert engine(*RUN, IMAGE, "sh", "-c", "exit 7").returncode == 7


def test_death_by_signal_is_128_plus_n(engine):
    # In its own pid namespace the shell is pid 1 and would ignore TERM.
    result = engine(*RUN, IMAGE, "sh", "-c", "sleep 30 & kill -TERM $!; wait $!; exit $?")
    assert result.returncode == 143, result.stderr


def killed_from_outside(run):
    """The exit code of a running container whose pid 1 gets KILL from outside."""
    started = run("run", "-d", "--network=none", IMAGE, "sh", "-c", "echo up; exec sleep 300")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    try:
        # Running, not still starting: the signal meets the process itself.
        assert wait_until(lambda: run("logs", cid).stdout == b"up\n", 30)
        assert run("kill", "-s", "KILL", cid).returncode == 0
        waited = run("wait", cid)
        assert waited.returncode == 0, waited.stderr
        return int(waited.stdout)
    finally:
        run("rm", "-f", cid)


def test_same_as_runc_for_a_signal_death(engine):
    # pid 1 of a container ignores what it has no handler for, from inside
    # (`kill -TERM $$` exits 0) and outside alike; KILL it cannot ignore.
    ours = killed_from_outside(engine)
    runc = killed_from_outside(lambda *args: podman(*args, runtime="runc"))
    assert ours == runc == 128 + 9


def test_stdin_reaches_the_container(engine):
    result = engine("run", "--rm", "-i", "--network=none", IMAGE, "md5sum", input=b"abc")
    assert result.stdout.split()[0] == hashlib.md5(b"abc").hexdigest().encode()


def test_stdout_and_stderr_stay_apart(engine):
    result = engine(*RUN, IMAGE, "sh", "-c", "echo out; echo err >&2; echo out2")
    assert result.stdout == b"out\nout2\n"
    assert result.stderr == b"err\n"


def test_20_mb_of_output_arrives_intact(engine):
    result = engine(*RUN, IMAGE, "sh", "-c",
                    "head -c 20000000 /dev/urandom > /tmp/x; sha256sum /tmp/x >&2; cat /tmp/x",
                    timeout=180)
    assert result.returncode == 0, result.stderr[-500:]
    assert len(result.stdout) == 20000000
    assert hashlib.sha256(result.stdout).hexdigest().encode() == result.stderr.split()[0]


def test_detached_then_stopped_ends_the_job(engine):
    started = engine("run", "-d", "--network=none", IMAGE, "sleep", "300")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    assert wait_until(lambda: user_jobs(engine.user), 10)
    begin = time.monotonic()
    stopped = engine("stop", "-t", "2", cid)
    assert stopped.returncode == 0, stopped.stderr
    assert time.monotonic() - begin < 2 + 5
    assert wait_until(lambda: not user_jobs(engine.user), 10)
    engine("rm", "-f", cid)


def test_job_name_from_scrun_job_name(engine):
    started = engine("run", "-d", "--network=none", "-e", "SCRUN_JOB_NAME=x", IMAGE,
                     "sleep", "300")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    try:
        state = wait_until(lambda: container_state(cid, engine.spool_root), 10)
        assert rest_job(state["job_id"])["name"] == "x"
    finally:
        engine("rm", "-f", cid)


@pytest.mark.parametrize("edit,fragment", [
    (lambda c: c["process"].__setitem__("args", 5), "process.args"),
    (lambda c: c.pop("root"), "root"),
])
def test_bad_config_json_names_the_field(tmp_path, edit, fragment):
    import os
    import shutil
    import subprocess
    from .testbed import RUNTIME, as_user
    bundle = "/tmp/scrun-e2e-bad-bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    os.makedirs(bundle + "/rootfs")
    subprocess.run(["runc", "spec", "--rootless", "--bundle", bundle], check=True)
    with open(bundle + "/config.json") as handle:
        config = json.load(handle)
    edit(config)
    with open(bundle + "/config.json", "w") as handle:
        json.dump(config, handle)
    subprocess.run(["chown", "-R", "scruntest", bundle], check=True)
    before = user_jobs()
    result = as_user([RUNTIME, "create", "--bundle", bundle, "bad-config"])
    shutil.rmtree(bundle, ignore_errors=True)
    assert result.returncode != 0
    assert fragment in result.stderr.decode()
    assert len(result.stderr.decode().strip().splitlines()) == 1
    assert user_jobs() == before
