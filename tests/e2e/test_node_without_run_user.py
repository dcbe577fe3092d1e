"""A node where the user has no /run/user/UID (issue #15).

slurmd does not make /run/user/UID: on a cluster's compute node it exists
only while the user has a login session there. The testbed's TB_BARE_USER
never logs in, so this machine, the node, has none for it; the default
patterns (runc --root=%R) must still create, start, exec into and remove
the container. Before %R they failed in runc create: "mkdir /run/user/UID:
permission denied". The runtime is driven as conmon drives it: podman
itself would want a runtime dir on the submit host.
"""
import os
import shutil

import pytest

from . import testbed, user_config
from .conftest import make_bundle


@pytest.fixture
def bare_user(unavailable):
    user, uid = testbed.BARE_USER, testbed.BARE_UID
    if not user or not os.path.isdir("/home/%s" % user):
        unavailable("no test user without a login session: run contrib/testbed/setup.sh")
    if os.path.exists("/run/user/%d" % uid):
        unavailable("/run/user/%d exists: %s has logged in; remove it" % (uid, user))
    yield user, uid
    # conftest's check after each test looks at the main test user only.
    assert testbed.wait_until(lambda: not testbed.user_jobs(user), 20)
    assert testbed.wait_until(lambda: not testbed.anchors(user), 10)
    assert testbed.wait_until(lambda: not user_config.task_workdirs(uid), 10), \
        "task dirs (and with them runc's state) left"


@pytest.fixture
def bare_bundle(bare_user):
    path = make_bundle("/tmp/scrun-e2e-bare-bundle-%d" % os.getpid(),
                       ["sh", "-c", "echo started; sleep 300"], owner=bare_user[0])
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_container_runs_where_the_user_has_no_run_user_dir(bare_user, bare_bundle):
    user, uid = bare_user

    def runtime(*args):
        return testbed.as_user([testbed.RUNTIME] + list(args), user=user, uid=uid)

    cid = "bare-%d" % os.getpid()
    created = testbed.create_container(bare_bundle, cid, user=user, uid=uid)
    try:
        assert created.returncode == 0, created.stderr
        assert runtime("start", cid).returncode == 0
        assert testbed.wait_until(lambda: open(bare_bundle + "/out").read() == "started\n", 30)
        # An exec joins the container under the root its task chose.
        joined = runtime("exec", cid, "sh", "-c", "echo joined; exit 3")
        assert (joined.returncode, joined.stdout) == (3, b"joined\n"), joined.stderr
        assert runtime("kill", cid, "KILL").returncode == 0
        assert testbed.wait_until(lambda: b'"stopped"' in runtime("state", cid).stdout, 30)
    finally:
        runtime("delete", "--force", cid)
    assert not os.path.exists("/run/user/%d" % uid)
