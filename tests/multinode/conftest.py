import os

import pytest

from . import cluster

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    # Everything here needs the multi-node testbed (and the single-node one's
    # users, image and runtime): -m "not multinode" leaves it out.
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.multinode)
            item.add_marker(pytest.mark.testbed)


@pytest.fixture(scope="session", autouse=True)
def require_cluster(unavailable):
    if not cluster.available():
        unavailable("the multi-node testbed is not up: run contrib/testbed/multinode.sh up")


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """After every test: no job, anchor, spool dir, process, runc state or
    task dir of the test user's, or of root's (rootful podman, docker)."""
    runc_before = cluster.runc_states()
    workdirs_before = {uid: cluster.task_workdirs(uid=uid) for uid in (cluster.UID, 0)}
    yield
    problems = []
    for user, uid in ((cluster.USER, cluster.UID), ("root", 0)):
        if not cluster.wait_until(lambda: not cluster.user_jobs(user), 20):
            problems.append("jobs of %s left: %s" % (user, cluster.user_jobs(user)))
        if not cluster.wait_until(lambda: not cluster.anchors(user), 10):
            problems.append("anchors of %s left: %s" % (user, cluster.anchors(user)))
        if not cluster.wait_until(lambda: not cluster.node_processes(uid=uid), 10):
            problems.append("processes of %s left on the nodes: %s" % (
                user, cluster.node_processes(uid=uid)))
        left = cluster.task_workdirs(uid=uid) - workdirs_before[uid]
        if left:
            problems.append("task dirs of %s left in /tmp: %s" % (user, sorted(left)))
    if not cluster.wait_until(lambda: not cluster.spool_dirs(), 10):
        problems.append("spool dirs left: %s" % cluster.spool_dirs())
    left = cluster.runc_states() - runc_before
    if left:
        problems.append("runc state left in %s: %s" % (cluster.RUNTIME_DIR, sorted(left)))
    assert not problems, "; ".join(problems)
