import json
import os
import shutil
import subprocess

import pytest

from . import testbed


@pytest.fixture(scope="session", autouse=True)
def require_testbed(unavailable):
    if not testbed.available():
        unavailable("the testbed is not up: run contrib/testbed/setup.sh")


class Engine:
    """podman as the rootless test user, or docker (as root)."""

    def __init__(self, name):
        self.name = name
        self.user = testbed.USER if name == "podman" else "root"
        self.spool_root = testbed.SPOOL_ROOT if name == "podman" else testbed.DOCKER_ROOT

    def __call__(self, *args, **kwargs):
        run = testbed.podman if self.name == "podman" else testbed.docker
        return run(*args, **kwargs)

    def __repr__(self):
        return self.name


@pytest.fixture(params=["podman", "docker"])
def engine(request, unavailable):
    if request.param == "docker" and not testbed.docker_available():
        unavailable("dockerd is not running")
    request.node.user_properties.append(
        ("matrix", (testbed.version_of("slurm"), testbed.version_of(request.param))))
    return Engine(request.param)


def _leftovers(user, spool_root):
    problems = []
    if not testbed.wait_until(lambda: not testbed.user_jobs(user), 20):
        left = testbed.user_jobs(user)
        problems.append("jobs of %s left: %s" % (user, "; ".join(map(_job_summary, left))))
        # Blamed on this test once; the next tests start clean.
        subprocess.run(["scancel"] + left, capture_output=True)
        testbed.wait_until(lambda: not set(left) & set(testbed.user_jobs(user)), 30)
    if not testbed.wait_until(lambda: not testbed.anchors(user), 10):
        problems.append("anchors of %s left: %s" % (user, testbed.anchors(user)))
    if not testbed.wait_until(lambda: not testbed.spool_dirs(spool_root), 10):
        problems.append("spool dirs left: %s" % testbed.spool_dirs(spool_root))
    return problems


def _job_summary(job_id):
    """What a left job is doing, for the failure: its state, reason, name,
    times and its steps."""
    fields = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True,
                            text=True).stdout.split()
    wanted = ("JobState=", "Reason=", "JobName=", "SubmitTime=", "StartTime=",
              "TimeLimit=", "NumTasks=", "Partition=")
    steps = subprocess.run(["squeue", "-h", "-s", "-j", job_id, "-o", "%i %j %M %N"],
                           capture_output=True, text=True).stdout.split("\n")
    return "%s (%s; steps: %s)" % (job_id, " ".join(f for f in fields if f.startswith(wanted)),
                                  ", ".join(s for s in steps if s.strip()) or "none")


@pytest.fixture(autouse=True)
def nothing_left_behind(request):
    """After every test: no job, no anchor process, no spool dir."""
    yield
    if request.node.get_closest_marker("leaves_state"):
        return
    problems = _leftovers(testbed.USER, testbed.SPOOL_ROOT)
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("engine") == "docker":
        problems += _leftovers("root", testbed.DOCKER_ROOT)
    assert not problems, "; ".join(problems)


def make_bundle(path, args, owner=testbed.USER, terminal=False):
    """A rootless bundle owner owns, as podman would prepare one, for tests
    that drive the runtime directly as conmon does."""
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(testbed.ROOTFS, path + "/rootfs", symlinks=True)
    subprocess.run(["runc", "spec", "--rootless", "--bundle", path], check=True)
    with open(path + "/config.json") as handle:
        config = json.load(handle)
    config["process"]["terminal"] = terminal
    config["process"]["args"] = args
    with open(path + "/config.json", "w") as handle:
        json.dump(config, handle)
    subprocess.run(["chown", "-R", owner, path], check=True)
    return path


@pytest.fixture
def bundle():
    path = make_bundle("/tmp/scrun-e2e-bundle-%d" % os.getpid(), ["sleep", "300"])
    yield path
    shutil.rmtree(path, ignore_errors=True)
