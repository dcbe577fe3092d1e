"""The compute nodes do not share the submit host's files (issue 13).

Seen through Slurm itself: steps of the test user, started with srun from the
ctl namespace, look around n1 and n2 with the node's python3.
"""
import json
import os
import tempfile
import uuid

import pytest

from . import cluster
from .cluster import HOME, USER

SMALL_SCRATCH = cluster.MN.get("MN_SMALL_SCRATCH", "/var/lib/scrun-testbed-scratch-small")

# What a step reports about the node it runs on; argv: the probe file to
# create in the node's /tmp ("-" for none), the small scratch, then paths to
# look for.
LOOK = r"""
import json, os, shutil, socket, subprocess, sys

def listing(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return None

create, small, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
if create != "-":
    open(create, "w").close()
small_fs = os.statvfs(small) if os.path.isdir(small) else None
runc = shutil.which("runc") or shutil.which("crun")
print(json.dumps({
    "host": socket.gethostname(),
    "exists": {path: os.path.exists(path) for path in paths},
    "home": listing(os.environ["LOOK_HOME"]),
    "run_user": listing("/run/user"),
    "tmp_mode": os.stat("/tmp").st_mode & 0o7777,
    "small_is_mount": os.path.ismount(small),
    "small_bytes": small_fs and small_fs.f_blocks * small_fs.f_frsize,
    "small_mode": small_fs and os.stat(small).st_mode & 0o7777,
    "runc": runc and subprocess.run([runc, "--version"], stdout=subprocess.PIPE).returncode,
}))
"""


def look(node, create="-", paths=(), user=USER):
    result = cluster.slurm("srun", "-N1", "-n1", "-w", node, "--export=ALL,LOOK_HOME=" + HOME,
                           "python3", "-c", LOOK, create, SMALL_SCRATCH, *paths, user=user)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def host_tmp_file():
    """A file in the submit host's /tmp that the test user may read."""
    handle, path = tempfile.mkstemp(prefix="scrun-mn-host-only.", dir="/tmp")
    os.close(handle)
    os.chmod(path, 0o644)
    try:
        yield path
    finally:
        os.unlink(path)


def test_the_testbed_says_so():
    assert cluster.MN.get("MN_SHARED_FS") == "no"
    assert "/tmp" in cluster.MN.get("MN_NODE_PRIVATE", "").split()


def test_a_job_on_either_node_sees_none_of_the_submit_hosts_files(host_tmp_file):
    assert os.listdir(HOME), "the test user's home on the host is empty: nothing proven"
    for node in cluster.MN.get("MN_NODES", "n1 n2").split():
        seen = look(node, paths=[host_tmp_file, HOME])
        assert seen["host"] == node
        assert not seen["exists"][host_tmp_file], "%s sees the host's %s" % (node, host_tmp_file)
        assert not seen["home"], "%s sees %s: %s" % (node, HOME, seen["home"])
        assert seen["run_user"] == [], "%s: /run/user holds %s" % (node, seen["run_user"])
        assert seen["tmp_mode"] == 0o1777, "%s: /tmp is mode %o" % (node, seen["tmp_mode"])
        assert seen["runc"] == 0, "%s: no runc or crun that runs" % node


# Where root's engines keep their default storage (engines.py): the rootful
# podman store and the overlay2 dockerd's data root, each with its images.
ROOT_STORES = ("/var/lib/containers/storage/overlay", "/var/lib/docker-overlay2/overlay2")


def test_no_node_sees_root_engines_storage():
    present = [path for path in ROOT_STORES if os.path.isdir(path) and os.listdir(path)]
    assert present, "no root engine's storage on the host: nothing proven"
    for node in cluster.MN.get("MN_NODES", "n1 n2").split():
        seen = look(node, paths=present, user=None)  # as root, who may look in them
        assert not any(seen["exists"].values()), "%s sees %s" % (node, seen["exists"])


def test_each_node_has_its_own_tmp():
    probe = "/tmp/scrun-mn-probe.%s" % uuid.uuid4().hex
    assert look("n1", create=probe, paths=[probe])["exists"][probe]
    try:
        assert not os.path.exists(probe), "n1's /tmp is the host's"
        assert not look("n2", paths=[probe])["exists"][probe], "n2 sees a file made on n1"
        assert look("n1", paths=[probe])["exists"][probe], "n1's /tmp did not keep the file"
    finally:
        cluster.slurm("srun", "-N1", "-w", "n1", "rm", "-f", probe, user=USER)


def test_each_node_has_a_small_scratch_tmpfs():
    for node in ("n1", "n2"):
        seen = look(node)
        assert seen["small_is_mount"], "%s: %s is not a mount" % (node, SMALL_SCRATCH)
        assert 7 << 20 <= seen["small_bytes"] <= 9 << 20, (node, seen["small_bytes"])
        assert seen["small_mode"] == 0o1777, (node, oct(seen["small_mode"]))
