"""The runtime root (%R) a task picks for runc on its node (agent/runtime_root.py)."""
import os
import shlex
import stat
import threading
import types

import pytest

from scrun_rest import config
from scrun_rest.agent import leftovers, runtime_root, task_bundle
from scrun_rest.anchor import sessions, task_links

UID = os.getuid()


@pytest.fixture
def user_run(tmp_path, monkeypatch):
    """Where /run/user/UID would be: absent until a test makes it."""
    monkeypatch.setattr(runtime_root, "USER_RUN", str(tmp_path / "run-user-%d"))
    return str(tmp_path / ("run-user-%d" % UID))


@pytest.fixture
def workdir(tmp_path):
    path, fd = leftovers.claim(str(tmp_path))
    yield path
    os.close(fd)


def test_a_usable_run_user_dir_is_used_as_before(user_run, workdir):
    os.mkdir(user_run, 0o700)
    assert runtime_root.choose(workdir) == user_run
    assert not os.path.exists(os.path.join(workdir, runtime_root.PRIVATE))


def is_private_dir_of(path, workdir):
    info = os.lstat(path)
    return (os.path.dirname(path) == workdir and stat.S_ISDIR(info.st_mode)
            and info.st_uid == UID and stat.S_IMODE(info.st_mode) == 0o700)


def test_without_run_user_the_task_makes_a_private_root(user_run, workdir):
    root = runtime_root.choose(workdir)
    assert is_private_dir_of(root, workdir)


def test_a_run_user_dir_of_someone_else_is_not_used(user_run, workdir):
    other = UID + 1
    os.mkdir(runtime_root.USER_RUN % other, 0o700)  # ours, not theirs
    root = runtime_root.choose(workdir, uid=other)
    assert root == os.path.join(workdir, runtime_root.PRIVATE)


def test_a_symlinked_run_user_dir_is_not_followed(user_run, workdir, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    os.symlink(str(target), user_run)
    assert is_private_dir_of(runtime_root.choose(workdir), workdir)


@pytest.mark.parametrize("mode", [0o770, 0o703, 0o500])
def test_a_run_user_dir_others_may_write_or_we_may_not_is_not_used(user_run, workdir, mode):
    os.mkdir(user_run)
    os.chmod(user_run, mode)
    if mode == 0o500 and os.access(user_run, os.W_OK):
        pytest.skip("root writes anywhere")
    assert is_private_dir_of(runtime_root.choose(workdir), workdir)


def default_plan(setup, workdir):
    settings = {k: v for k, v in config.DEFAULTS.items() if k.startswith("RunTime")}
    plan, problem = task_bundle.prepare(setup, settings, workdir)
    assert problem is None
    return plan, settings


def root_in(command):
    roots = [w for w in shlex.split(command) if w.startswith("--root=")]
    assert len(roots) == 1
    return roots[0][len("--root="):]


@pytest.fixture
def run_setup(rootfs, podman_like_config):
    config_json = dict(podman_like_config, root={"path": rootfs})
    return {"mode": "run", "config": config_json, "streams": ["stdout", "stderr"], "env": {}}


def test_create_start_query_kill_delete_and_the_sweep_share_the_root(
        user_run, tmp_path, run_setup):
    """The defaults name %R; a dead task's sweep gets it from container.json."""
    workdir, fd = leftovers.claim(str(tmp_path))
    plan, settings = default_plan(run_setup, workdir)
    root = plan.values["R"]
    assert is_private_dir_of(root, workdir)
    assert root_in(plan.command) == root_in(plan.start) == root
    leftovers.record_container(workdir, plan.values)
    os.close(fd)  # the task dies
    recorded = []
    leftovers.sweep(recorded.append, base=str(tmp_path))
    for key in ("RunTimeQuery", "RunTimeKill", "RunTimeDelete"):
        assert root_in(task_bundle.oci_conf.expand(settings[key], recorded[0])) == root


def test_a_sites_run_user_pattern_stays_as_written(user_run, workdir, run_setup):
    settings = {"RunTimeRun": "runc --rootless=true --root=/run/user/%U/ run %n -b %b"}
    plan, problem = task_bundle.prepare(run_setup, settings, workdir)
    assert root_in(plan.command) == "/run/user/%d/" % UID


def test_an_exec_joins_the_container_under_its_root(user_run, workdir, run_setup):
    setup = dict(run_setup, mode="exec", container="n1.u.1.0.0", root="/elsewhere/root",
                 process={"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}})
    plan, problem = task_bundle.prepare(setup, {}, workdir)
    assert root_in(plan.command) == "/elsewhere/root" == plan.values["R"]
    assert not os.path.exists(os.path.join(workdir, runtime_root.PRIVATE))


def test_the_anchor_hands_an_exec_the_root_its_container_reported():
    main = sessions.TaskLink(0, None, {"node": "n1"})
    anchor = types.SimpleNamespace(
        setup=types.SimpleNamespace(compute_config=dict, container_env=dict, settings={}),
        task_key=bytes(32), main_task=lambda: main)
    links = task_links.TaskLinks(anchor)
    main_session = types.SimpleNamespace(number=0, started_event=threading.Event(),
                                         all_started=lambda: False)
    links._started(main_session, main,
                   {"t": "started", "pid": 5, "container": "n1.u.1.0.0", "root": "/r"})
    exec_session = types.SimpleNamespace(kind="exec", window=None, process={"args": ["sh"]},
                                         streams_for=lambda task_id: ["stdout"])
    setup = links.setup_message(exec_session, 0)
    assert setup["container"] == "n1.u.1.0.0" and setup["root"] == "/r"
