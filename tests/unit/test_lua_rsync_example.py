"""The man page's full rsync scrun.lua, unmodified, against a real bundle.

The example stages the bundle to /home/<user>/containers/<id>/ where <user>
is `id -un <user_id>`; the test passes its own uid, creates only that
container's directory (plus /home/<user>/containers if missing) and removes
what it created.
"""
import json
import os
import pwd
import shutil
import uuid

import pytest

pytest.importorskip("lupa")

from scrun_rest.anchor.anchor_setup import AnchorSetup  # noqa: E402
from scrun_rest.lua.staging import Staging  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "lua")
EXAMPLE = os.path.join(FIXTURES, "rsync_example.lua")


class FakeSpool:
    def __init__(self, path):
        self.dir = path
        self.socket_path = os.path.join(path, "control.sock")


class Remote:
    def __init__(self):
        self.calls = []

    def __call__(self, script):
        self.calls.append(script)
        return 0, ""


@pytest.fixture
def home_dir():
    """/home/<user>/containers for this uid; skips when it cannot be written."""
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed (apt-get install -y rsync)")
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        pytest.skip("uid %d has no name for `id -un`" % os.getuid())
    user_home = os.path.join("/home", user)
    containers = os.path.join(user_home, "containers")
    created = [path for path in (user_home, containers) if not os.path.exists(path)]
    try:
        os.makedirs(containers, exist_ok=True)
    except OSError as exc:
        pytest.skip("the example writes to %s, which is not writable here: %s"
                    % (containers, exc.strerror))
    if not os.access(containers, os.W_OK):
        pytest.skip("the example writes to %s, which is not writable here" % containers)
    yield containers
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            pass


@pytest.fixture
def bundle(tmp_path):
    """A podman-like bundle: relative rootfs, bind-mounted files, hooks, rlimits."""
    bundle = tmp_path / "bundle"
    rootfs = bundle / "rootfs"
    for directory in ("bin", "etc", "proc", "sys", "var/empty"):
        (rootfs / directory).mkdir(parents=True)
    (rootfs / "data.txt").write_text("hello from the image\n")
    (rootfs / "etc" / "os-release").write_text("ID=test\n")
    (rootfs / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (rootfs / "bin" / "tool").chmod(0o755)
    (rootfs / "proc" / "should-not-copy").write_text("x")
    userdata = tmp_path / "userdata"
    userdata.mkdir()
    for name, text in (("hostname", "ctrhost\n"), ("hosts", "127.0.0.1 ctrhost\n"),
                       ("resolv.conf", "nameserver 10.0.0.1\n"), (".containerenv", "")):
        (userdata / name).write_text(text)
    (userdata / "shm").mkdir()
    with open(os.path.join(FIXTURES, "podman_config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    for mount in config["mounts"]:
        if mount["type"] == "bind" and mount["source"].startswith("/run/"):
            mount["source"] = str(userdata / os.path.basename(mount["source"]))
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


def test_man_page_rsync_example_runs_unmodified(tmp_path, bundle, home_dir, caplog):
    caplog.set_level(1, logger="scrun_rest.lua")
    container_id = "scrun-rest-test-" + uuid.uuid4().hex[:12]
    with open(bundle / "config.json", encoding="utf-8") as handle:
        original = json.load(handle)
    spool = tmp_path / "spool"
    spool.mkdir()
    setup = AnchorSetup(
        container_id=container_id, bundle=str(bundle), config_doc=original,
        config_file=str(bundle / "config.json"), spool=FakeSpool(str(spool)),
        root=str(tmp_path / "state"), user_name=pwd.getpwuid(os.getuid()).pw_name)
    setup.submission_bundle = setup.bundle
    setup.submission_config_file = setup.config_file
    setup.submission_rootfs = setup.rootfs
    staged = os.path.join(home_dir, container_id)
    try:
        staging = Staging.load(EXAMPLE, setup)
        assert any(r.getMessage() == "initialized scrun.lua" for r in caplog.records)
        identity = {"SCRUN_REST_USER_ID": str(os.getuid()),
                    "SCRUN_REST_GROUP_ID": str(os.getgid())}
        job_env = {"SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "node[1-2]"}
        remote = Remote()
        staging.stage_in(77, job_env, remote, identity)
        _check_stage_in(setup, bundle, staged, original, container_id, caplog)

        # something the container wrote comes back to the submitted rootfs
        with open(os.path.join(staged, "rootfs", "result.txt"), "w") as handle:
            handle.write("computed\n")
        staging.stage_out(77, remote, identity)
        assert (bundle / "rootfs" / "result.txt").read_text() == "computed\n"
        assert (bundle / "rootfs" / "data.txt").read_text() == "hello from the image\n"
        assert remote.calls == []
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _check_stage_in(setup, bundle, staged, original, container_id, caplog):
    rootfs = os.path.join(staged, "rootfs")
    # the rootfs was copied, without proc and sys
    with open(os.path.join(rootfs, "data.txt")) as handle:
        assert handle.read() == "hello from the image\n"
    assert os.access(os.path.join(rootfs, "bin", "tool"), os.X_OK)
    assert not os.path.exists(os.path.join(rootfs, "proc"))
    assert not os.path.exists(os.path.join(rootfs, "sys"))
    # bind-mounted files were copied into the rootfs instead
    with open(os.path.join(rootfs, "etc", "hostname")) as handle:
        assert handle.read() == "ctrhost\n"
    with open(os.path.join(rootfs, "etc", "resolv.conf")) as handle:
        assert handle.read() == "nameserver 10.0.0.1\n"

    with open(os.path.join(staged, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    dst_rootfs = "/home/%s/containers//%s/rootfs/" % (
        pwd.getpwuid(os.getuid()).pw_name, container_id)
    assert config["root"]["path"] == dst_rootfs
    linux = config["linux"]
    assert "uidMappings" not in linux and "gidMappings" not in linux
    assert "cgroupsPath" not in linux
    assert [n["type"] for n in linux["namespaces"]].count("user") == 1
    assert "rlimits" not in config["process"]
    assert "additionalGids" not in config["process"]["user"]
    assert "prestart" not in config["hooks"]
    assert config["hooks"]["createContainer"] == original["hooks"]["createContainer"]
    for mount in config["mounts"]:
        assert not any(o.startswith(("uid=", "gid=")) for o in mount["options"]), mount
        assert mount["type"] != "bind" or mount["source"] == "/sys"
    devpts = [m for m in config["mounts"] if m["type"] == "devpts"][0]
    assert devpts["options"] == ["nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                 "mode=0620"]
    env = config["process"]["env"]
    assert env[:len(original["process"]["env"])] == original["process"]["env"]
    assert "SLURM_JOB_ID=77" in env and "SLURM_JOB_NODELIST=node[1-2]" in env
    assert "SCRUN_CONTAINER_ID=%s" % container_id in env
    assert "SCRUN_USER_ID=%d" % os.getuid() in env
    # untouched parts survive exactly, empty objects and arrays included
    for key in ("annotations", "hostname", "ociVersion"):
        assert config[key] == original[key]
    assert config["process"]["capabilities"] == original["process"]["capabilities"]
    assert config["process"]["capabilities"]["effective"] == []
    assert linux["readonlyPaths"] == [] and linux["resources"]["unified"] == {}
    assert linux["seccomp"] == original["linux"]["seccomp"]
    assert linux["devices"] == original["linux"]["devices"]

    # the anchor now ships the staged bundle
    assert setup.bundle == os.path.normpath(staged)
    assert setup.config_file == os.path.join(os.path.normpath(staged), "config.json")
    assert setup.config_doc["root"]["path"] == dst_rootfs
    assert setup.rootfs == dst_rootfs
    assert any(r.getMessage() == "created: /home/%s/containers//%s/config.json"
               % (pwd.getpwuid(os.getuid()).pw_name, container_id) for r in caplog.records)


def test_fixture_is_the_man_page_example(man_page):
    """The fixture is the man page's text, only dedented."""
    with open(EXAMPLE, encoding="utf-8") as handle:
        example = handle.read()
    indented = "".join(" " * 14 + line if line.strip() else line
                       for line in example.splitlines(True))
    assert indented.rstrip("\n") in man_page
