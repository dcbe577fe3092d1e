import os

import pytest

from . import testbed


@pytest.fixture(scope="session", autouse=True)
def require_testbed():
    if not testbed.available():
        message = "the testbed is not up: run contrib/testbed/setup.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def nothing_left_behind(request):
    """After every test: no job, no anchor process, no spool dir of the user."""
    yield
    if request.node.get_closest_marker("leaves_state"):
        return
    assert testbed.wait_until(lambda: not testbed.user_jobs(), 20), \
        "jobs left: %s" % testbed.user_jobs()
    assert testbed.wait_until(lambda: not testbed.anchors(), 10), \
        "anchors left: %s" % testbed.anchors()
    assert testbed.wait_until(lambda: not testbed.spool_dirs(), 10), \
        "spool dirs left: %s" % testbed.spool_dirs()
