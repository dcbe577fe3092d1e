"""scrun.lua staging through real podman, Slurm and rsync.

Each test points the test user's LuaScript at its own script for the length
of the test (user_config restores the file).
"""
import contextlib
import os
import shutil
import subprocess

import pytest

from . import testbed
from .testbed import IMAGE, podman, rest_job, user_jobs, wait_until
from .user_config import root_config, user_config

RSYNC_EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "unit", "fixtures", "lua",
                             "rsync_example.lua")


@pytest.fixture
def user_dir():
    """A directory the test user (and so the anchor and the job) can write."""
    path = "/tmp/scrun-e2e-lua-%s-%d" % (testbed.USER, os.getpid())
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    subprocess.run(["chown", testbed.USER, path], check=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def lua(user_dir):
    """lua(text, **settings): make text the user's scrun.lua, with settings
    beside it in scrun-rest.conf, until the test ends."""
    with contextlib.ExitStack() as stack:
        def install(text, **settings):
            path = os.path.join(user_dir, "scrun.lua")
            with open(path, "w") as handle:
                handle.write(text.replace("@DIR@", user_dir))
            os.chmod(path, 0o644)
            stack.enter_context(user_config(LuaScript=path, **settings))
            return path

        yield install


def read(path):
    with open(path) as handle:
        return handle.read()


def env_file(path):
    return dict(line.split("=", 1) for line in read(path).splitlines() if "=" in line)


# -- the man page's example --------------------------------------------------------
@pytest.fixture
def staging_area():
    """/home/<user>/containers, where the example copies containers to."""
    path = os.path.join(testbed.HOME, "containers")
    existed = os.path.exists(path)
    yield path
    if not existed:
        shutil.rmtree(path, ignore_errors=True)


def test_man_page_rsync_example_stages_in_and_out(lua, staging_area, user_dir):
    lua(read(RSYNC_EXAMPLE))
    name = "e2e-rsync-%s" % testbed.USER
    podman("rm", "-f", name)
    result = podman("run", "--name", name, "--network=none", "--cidfile", user_dir + "/cid",
                    IMAGE, "sh", "-c",
                    "echo staged > /staged-marker; grep ' / ' /proc/self/mountinfo; env")
    cid = read(user_dir + "/cid").strip()
    try:
        assert result.returncode == 0, result.stderr
        out = result.stdout.decode()
        staged = os.path.join(staging_area, cid)
        # The container ran from the per-user copy...
        assert " %s/rootfs " % staged in out, out
        assert os.path.exists(os.path.join(staged, "config.json"))
        # ...the example merged the job's environment into the container's...
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        original_rootfs = env["SCRUN_SUBMISSION_ROOTFS_PATH"]
        assert env["SCRUN_CONTAINER_ID"] == cid and env["SLURM_JOB_ID"]
        # ...and stage_out copied what it wrote back into podman's rootfs.
        assert read(os.path.join(original_rootfs, "staged-marker")) == "staged\n"
        assert read(os.path.join(staged, "rootfs", "staged-marker")) == "staged\n"
    finally:
        podman("rm", "-f", name)
        shutil.rmtree(os.path.join(staging_area, cid), ignore_errors=True)


def test_man_page_rsync_example_under_docker(tmp_path, unavailable):
    """docker runs the runtime as root with root's config: the same example
    stages its overlay rootfs to /home/root/containers and back."""
    if not testbed.docker_available():
        unavailable("dockerd is not running")
    script = tmp_path / "scrun.lua"
    script.write_text(read(RSYNC_EXAMPLE))
    name = "e2e-rsync-docker"
    testbed.docker("rm", "-f", name)
    staging = "/home/root/containers"
    made = [path for path in ("/home/root", staging) if not os.path.exists(path)]
    try:
        with root_config(LuaScript=str(script)):
            result = testbed.docker(
                "run", "--name", name, "--network=none", IMAGE, "sh", "-c",
                "echo staged > /staged-marker; grep ' / ' /proc/self/mountinfo; env")
        assert result.returncode == 0, result.stderr
        out = result.stdout.decode()
        cid = testbed.docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
        assert " %s/%s/rootfs " % (staging, cid) in out, out
        assert "SCRUN_CONTAINER_ID=%s" % cid in out
        # stage_out put the file back into docker's own layer of the container.
        copied = testbed.docker("cp", name + ":/staged-marker", str(tmp_path / "back"))
        assert copied.returncode == 0, copied.stderr
        assert read(str(tmp_path / "back")) == "staged\n"
    finally:
        testbed.docker("rm", "-f", name)
        for path in made[:1]:  # the outermost one the example made
            shutil.rmtree(path, ignore_errors=True)


# -- what the script sees ---------------------------------------------------------
RECORDING_SCRIPT = r"""
local dir = "@DIR@"
local function write(name, text)
  local file = assert(io.open(dir .. "/" .. name, "w"))
  file:write(text)
  file:close()
end

-- Neither may reach the container's output.
print("printed while loading")
slurm.log_error("logged while loading")

function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id,
                              group_id, job_env)
  print("printed in stage_in")
  slurm.log_error("logged in stage_in")
  write("args", table.concat({id, bundle, spool_dir, config_file, tostring(job_id),
                              tostring(user_id), tostring(group_id)}, "\n") .. "\n")
  write("job_env", table.concat(job_env, "\n") .. "\n")
  slurm.allocator_command("env > " .. dir .. "/alloc.env; " ..
                          "cat /proc/$SCRUN_PID/comm > " .. dir .. "/alloc.comm")
  local status, output = slurm.remote_command("env; echo REMOTE_UID=$(id -u)")
  write("remote.status", tostring(status))
  write("remote.env", output)
  return slurm.SUCCESS
end

function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path,
                               spool_dir, config_file, job_id, user_id, group_id)
  slurm.allocator_command("echo $SCRUN_CONTAINER_ID > " .. dir .. "/stage_out")
  return slurm.SUCCESS
end

return slurm.SUCCESS
"""


def test_lua_allocator_and_remote_commands_see_the_output_variables(lua, user_dir):
    log_file = user_dir + "/anchor.log"
    lua(RECORDING_SCRIPT, SCRUN_LOG_FILE=log_file)
    result = podman("run", "--rm", "--network=none", "--cidfile", user_dir + "/cid",
                    "--annotation", "e2e.note=hello", "-v", user_dir + ":/out", IMAGE,
                    "sh", "-c", "touch /out/ran; echo out; echo err >&2")
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert os.path.exists(user_dir + "/ran")
    cid = read(user_dir + "/cid").strip()
    bundle = "%s/.local/share/containers/storage/vfs-containers/%s/userdata" % (
        testbed.HOME, cid)
    spool = os.path.join(testbed.SPOOL_ROOT, cid)
    job_env = env_file(user_dir + "/job_env")
    job_id = job_env["SLURM_JOB_ID"]
    expected = {
        "SCRUN_OCI_VERSION": "1.0.2-dev", "SCRUN_CONTAINER_ID": cid,
        "SCRUN_BUNDLE": bundle, "SCRUN_SUBMISSION_BUNDLE": bundle,
        "SCRUN_SUBMISSION_CONFIG_FILE": bundle + "/config.json",
        "SCRUN_PID_FILE": "%s/containers/vfs-containers/%s/userdata/pidfile" % (
            testbed.RUNTIME_DIR, cid),
        "SCRUN_ROOT": testbed.SPOOL_ROOT, "SCRUN_SPOOL_DIR": spool,
        "SCRUN_SOCKET": spool + "/ctl.sock",
        # The token's user as Slurm resolved it, although create runs as
        # uid 0 in podman's user namespace.
        "SCRUN_USER": testbed.USER, "SCRUN_USER_ID": str(testbed.UID),
        "SCRUN_GROUP": testbed.USER, "SCRUN_GROUP_ID": str(testbed.UID),
        "SCRUN_LOG_FILE": log_file, "SCRUN_LOG_FORMAT": "text",
        "SCRUN_ANNOTATION_E2E_NOTE": "hello",
    }
    for source in ("job_env", "alloc.env", "remote.env"):
        env = env_file(os.path.join(user_dir, source))
        assert {key: env.get(key) for key in expected} == expected, source
        assert env["SCRUN_ROOTFS_PATH"] == env["SCRUN_SUBMISSION_ROOTFS_PATH"], source
        assert env["SCRUN_ROOTFS_PATH"].startswith(testbed.HOME + "/.local/share/containers")
        assert env["SCRUN_PID"].isdigit(), source
    assert read(user_dir + "/alloc.comm").strip() == "scrun-anchor"
    # remote_command ran in a new step of the job, as the user.
    remote = env_file(user_dir + "/remote.env")
    assert read(user_dir + "/remote.status") == "0"
    assert remote["SLURM_JOB_ID"] == job_id and remote["REMOTE_UID"] == str(testbed.UID)
    assert remote["SLURM_STEP_ID"].isdigit()
    assert read(user_dir + "/args").splitlines() == [
        cid, bundle, spool, bundle + "/config.json", job_id, str(testbed.UID),
        str(testbed.UID)]
    assert read(user_dir + "/stage_out").strip() == cid
    log = read(log_file)
    assert "logged while loading" in log and "logged in stage_in" in log
    assert "printed in stage_in" not in log  # print() logs at info, below the default


# -- failures ---------------------------------------------------------------------
STAGE_OUT_MARKS = r"""
function slurm_scrun_stage_out()
  slurm.allocator_command("touch @DIR@/stage_out")
  return slurm.SUCCESS
end
return slurm.SUCCESS
"""


@pytest.mark.parametrize("body,message", [
    ("return slurm.ERROR", "scrun.lua stage_in returned -1, not slurm.SUCCESS"),
    ('error("no room for the image")', "no room for the image"),
])
def test_a_failed_stage_in_cancels_the_job_before_the_container_starts(
        lua, user_dir, body, message):
    lua(r"""
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id)
  local file = assert(io.open("@DIR@/job_id", "w"))
  file:write(tostring(job_id))
  file:close()
  %s
end
""" % body + STAGE_OUT_MARKS)
    result = podman("run", "--rm", "--network=none", "-v", user_dir + ":/out", IMAGE,
                    "touch", "/out/ran")
    assert result.returncode == 126
    assert message in result.stderr.decode()
    job_id = read(user_dir + "/job_id")
    assert wait_until(lambda: rest_job(job_id)["job_state"] == "CANCELLED", 10)
    assert not os.path.exists(user_dir + "/ran")
    assert not os.path.exists(user_dir + "/stage_out")  # stage_in did not run through


@pytest.mark.parametrize("script,message", [
    ("function slurm_scrun_stage_in( return", "scrun.lua has a syntax error"),
    ("function slurm_scrun_stage_in() return 0 end\nreturn slurm.SUCCESS",
     "does not define slurm_scrun_stage_out()"),
    ("function slurm_scrun_stage_in() return 0 end\n"
     "function slurm_scrun_stage_out() return 0 end\n",
     "must end with `return slurm.SUCCESS` but returned nil"),
])
def test_a_broken_script_fails_create_naming_the_problem(lua, script, message):
    lua(script)
    before = user_jobs()
    result = podman("run", "--rm", "--network=none", IMAGE, "true")
    assert result.returncode == 126
    assert message in result.stderr.decode()
    assert user_jobs() == before


def test_stage_out_runs_after_a_kill_and_its_failure_is_only_logged(lua, user_dir):
    log_file = user_dir + "/anchor.log"
    lua(r"""
function slurm_scrun_stage_in() return slurm.SUCCESS end
function slurm_scrun_stage_out()
  slurm.allocator_command("touch @DIR@/stage_out")
  return slurm.ERROR
end
return slurm.SUCCESS
""", SCRUN_LOG_FILE=log_file)
    started = podman("run", "-d", "--network=none", IMAGE, "sleep", "300")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    try:
        stopped = podman("stop", "-t", "1", cid)
        assert stopped.returncode == 0, stopped.stderr
        assert os.path.exists(user_dir + "/stage_out")
        assert "scrun.lua stage_out returned -1, not slurm.SUCCESS" in read(log_file)
        state = podman("inspect", "--format", "{{.State.ExitCode}}", cid)
        assert state.stdout.decode().strip() in ("137", "143")  # killed, not failed
    finally:
        podman("rm", "-f", cid)
