"""What a task prepares on its node before the runtime runs (agent/task_bundle.py)."""
import json
import os
import shlex
import stat

import pytest

from scrun_rest.agent import task_bundle

SETTINGS = {
    "RunTimeRun": "runc run %n.%u.%j.%s.%t -b %b",
    "RunTimeCreate": "runc create %n.%u.%j.%s.%t -b %b",
    "RunTimeStart": "runc start %n.%u.%j.%s.%t",
}


@pytest.fixture
def node_env(monkeypatch):
    for name, value in {"SLURM_JOB_ID": "42", "SLURM_STEP_ID": "3", "SLURM_PROCID": "1",
                        "SLURMD_NODENAME": "n2", "SLURM_JWT": "secret"}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def workdir(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    return str(path)


@pytest.fixture
def setup_for(rootfs, podman_like_config):
    """The anchor's setup message for a task, with the rootfs fixture."""
    def make(streams=("stdout", "stderr"), **extra):
        config = dict(podman_like_config, root={"path": rootfs})
        return dict({"mode": "run", "config": config, "streams": list(streams),
                     "env": {"SCRUN_JOB_ID": "42"}}, **extra)
    return make


def test_without_a_terminal_the_container_is_created_then_started(setup_for, node_env, workdir):
    plan, problem = task_bundle.prepare(setup_for(), SETTINGS, workdir)
    assert problem is None
    name = plan.values["container"]
    assert name.startswith("n2.") and name.endswith(".42.3.1")
    assert shlex.split(plan.command) == ["runc", "create", name, "-b", workdir]
    assert shlex.split(plan.start) == ["runc", "start", name]
    written = os.path.join(workdir, "config.json")
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    env = json.load(open(written))["process"]["env"]
    assert "SLURM_JOB_ID=42" in env and "SCRUN_JOB_ID=42" in env
    assert not any(e.startswith("SLURM_JWT=") for e in env)


def test_a_terminal_needs_run_mode(setup_for, node_env, workdir):
    plan, problem = task_bundle.prepare(setup_for(streams=["tty"]), SETTINGS,
                                        workdir)
    assert plan.start is None and plan.command.startswith("runc run ")
    settings = dict(SETTINGS, RunTimeRun="")
    # A second task has a workdir of its own: without /run/user/UID (root
    # here has none) each makes its private runtime root in it.
    other = workdir + "-other"
    os.mkdir(other)
    plan, problem = task_bundle.prepare(setup_for(streams=["tty"]), settings, other)
    assert plan is None
    assert problem == (126, "no RunTimeRun in oci.conf (a terminal needs run mode)")


def test_a_missing_program_is_refused_before_anything_is_written(setup_for, node_env, workdir):
    setup = setup_for()
    setup["config"]["process"]["args"] = ["nope"]
    plan, problem = task_bundle.prepare(setup, SETTINGS, workdir)
    assert plan is None and problem[0] == 127
    assert os.listdir(workdir) == []


def test_exec_joins_the_named_container_with_its_process(setup_for, node_env, workdir):
    setup = setup_for(mode="exec", container="n1.u.42.0.0",
                      process={"args": ["sh"], "env": ["SLURM_JOB_ID=mine"], "cwd": "/",
                               "user": {"uid": 0, "gid": 0, "additionalGids": [4]},
                               "consoleSize": {"height": 1, "width": 2}})
    plan, problem = task_bundle.prepare(setup, {"RunTimeExec": "runc exec"}, workdir)
    assert problem is None and plan.mode == "exec" and plan.start is None
    path = os.path.join(workdir, "process.json")
    assert plan.command == "runc exec --process '%s' 'n1.u.42.0.0'" % path
    assert plan.values["container"] == "n1.u.42.0.0"
    process = json.load(open(path))
    assert "consoleSize" not in process and "additionalGids" not in process["user"]
    assert "SLURM_JOB_ID=mine" in process["env"]  # the exec's own value wins
    assert "SLURM_JOB_ID=42" not in process["env"]


def test_env_exclude_drops_matching_variables(node_env):
    env = task_bundle.container_env({"env": {"SCRUN_X": "1"}}, {"EnvExclude": "^SLURM_PROC"})
    assert "SLURM_PROCID" not in env and env["SLURM_STEP_ID"] == "3" and env["SCRUN_X"] == "1"
    assert "SLURM_JWT" not in env


@pytest.mark.parametrize("state", ["is empty", "does not exist"])
def test_a_rootfs_the_node_cannot_see_is_named_not_the_program(
        podman_like_config, node_env, workdir, tmp_path, state):
    """podman's overlay mount seen from outside its mount namespace is an
    empty dir; a node without the submit host's storage has no dir at all.
    Either way the program is not what is missing."""
    rootfs = tmp_path / "merged"
    if state == "is empty":
        rootfs.mkdir()
    config = dict(podman_like_config, root={"path": str(rootfs)})
    setup = {"mode": "run", "config": config, "streams": ["stdout"], "env": {}}
    plan, problem = task_bundle.prepare(setup, SETTINGS, workdir)
    assert plan is None and problem[0] == 126
    assert problem[1].startswith("the container's root filesystem %s %s on node n2: "
                                 % (rootfs, state)), problem
    assert "not found" not in problem[1]
    assert os.listdir(workdir) == []
