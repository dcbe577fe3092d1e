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
    problems = clusters.leftovers(release, engine.user, engine.uid, engine.spool_root)
    assert not problems, "; ".join(problems)


@pytest.fixture
def submit_host(release, unavailable):
    """The release's root as a submit host: its podman 5 as the test user."""
    if not os.access(clusters.submit_host(release), os.X_OK):
        unavailable("%s has no submit host %s: run contrib/testbed/roots.sh up"
                    % (release, clusters.submit_host(release)))
    yield release
    problems = clusters.leftovers(release, clusters.USER, clusters.UID,
                                  clusters.submit_spool_root(release),
                                  lambda user: clusters.submit_anchors(release, user))
    assert not problems, "; ".join(problems)


class SubmitEngine:
    """The root's own podman (rootless, the test user) or docker (root) on the
    release's submit host, with the root's scrun-rest."""

    def __init__(self, name, release):
        self.name, self.release = name, release
        self.user = clusters.USER if name == "podman" else "root"
        self.uid = clusters.UID if name == "podman" else 0
        self.spool_root = (clusters.submit_spool_root(release) if name == "podman"
                           else clusters.submit_docker_state(release))

    def __call__(self, *args, **kwargs):
        run = clusters.root_podman if self.name == "podman" else clusters.root_docker
        return run(self.release, *args, **kwargs)

    def remove(self, name):
        """Gone at once, whatever its state."""
        now = ("-t", "0") if self.name == "podman" else ()
        return self("rm", "-f", *now, name)

    def __repr__(self):
        return "%s on %s's submit host" % (self.name, self.release)


@pytest.fixture(params=["podman", "docker"])
def submit_engine(request, submit_host, unavailable):
    if request.param == "docker":
        info = clusters.on_submit_host(submit_host, "docker", "info", as_root=True)
        if info.returncode != 0:
            unavailable("the dockerd of %s's submit host does not answer: run "
                        "contrib/testbed/roots.sh up (%s)" % (submit_host, info.stderr[-300:]))
    engine = SubmitEngine(request.param, submit_host)
    yield engine
    problems = clusters.leftovers(submit_host, engine.user, engine.uid, engine.spool_root,
                                  lambda user: clusters.submit_anchors(submit_host, user))
    assert not problems, "; ".join(problems)
