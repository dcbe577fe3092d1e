import os

import pytest

from . import clusters

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    # Everything here needs the Debian roots' clusters (and the single-node
    # testbed's users, image and runtime): -m "not matrix" leaves it out.
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.matrix)
            item.add_marker(pytest.mark.testbed)


@pytest.fixture(params=clusters.RELEASES)
def release(request, unavailable):
    reason = clusters.unavailable_reason(request.param)
    if reason:
        unavailable(reason)
    return request.param


class Engine:
    """Host podman as the rootless test user, or host docker (as root), both
    with the runtime wrapper of one release's cluster."""

    def __init__(self, name, release):
        self.name, self.release = name, release
        self.user = clusters.USER if name == "podman" else "root"
        self.uid = clusters.UID if name == "podman" else 0
        self.spool_root = clusters.SPOOL_ROOT if name == "podman" else clusters.DOCKER_ROOT

    def __call__(self, *args, **kwargs):
        run = clusters.podman if self.name == "podman" else clusters.docker
        return run(self.release, *args, **kwargs)

    def __repr__(self):
        return "%s on %s" % (self.name, self.release)


@pytest.fixture(params=["podman", "docker"])
def engine(request, release, unavailable):
    if request.param == "docker":
        if not clusters.docker_available():
            unavailable("dockerd is not running")
        if not clusters.docker_has_runtime(release):
            unavailable("dockerd has no runtime %s: rerun contrib/testbed/setup.sh"
                        % clusters.docker_runtime(release))
    engine = Engine(request.param, release)
    yield engine
    problems = []
    if not clusters.wait_until(lambda: not clusters.user_jobs(release, engine.user), 20):
        problems.append("jobs of %s left on %s: %s"
                        % (engine.user, release, clusters.user_jobs(release, engine.user)))
    if not clusters.wait_until(lambda: not clusters.anchors(engine.user), 10):
        problems.append("anchors of %s left: %s" % (engine.user, clusters.anchors(engine.user)))
    if not clusters.wait_until(lambda: not clusters.spool_dirs(engine.spool_root), 10):
        problems.append("spool dirs left: %s" % clusters.spool_dirs(engine.spool_root))
    if not clusters.wait_until(lambda: not clusters.task_workdirs(release, engine.uid), 10):
        problems.append("task dirs left in %s's node /tmp: %s"
                        % (release, sorted(clusters.task_workdirs(release, engine.uid))))
    assert not problems, "; ".join(problems)
