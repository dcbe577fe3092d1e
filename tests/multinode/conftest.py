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
    """After every test: no job, anchor, spool dir, process, runc state or task dir."""
    runc_before, workdirs_before = cluster.runc_states(), cluster.task_workdirs()
    yield
    problems = []
    if not cluster.wait_until(lambda: not cluster.user_jobs(), 20):
        problems.append("jobs left: %s" % cluster.user_jobs())
    if not cluster.wait_until(lambda: not cluster.anchors(), 10):
        problems.append("anchors left: %s" % cluster.anchors())
    if not cluster.wait_until(lambda: not cluster.spool_dirs(), 10):
        problems.append("spool dirs left: %s" % cluster.spool_dirs())
    if not cluster.wait_until(lambda: not cluster.node_processes(), 10):
        problems.append("processes left on the nodes: %s" % cluster.node_processes())
    left = cluster.runc_states() - runc_before
    if left:
        problems.append("runc state left in %s: %s" % (cluster.RUNTIME_DIR, sorted(left)))
    left = cluster.task_workdirs() - workdirs_before
    if left:
        problems.append("task dirs left in /tmp: %s" % sorted(left))
    assert not problems, "; ".join(problems)
