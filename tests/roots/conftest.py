import os

import pytest

from . import clusters
from e2e.testbed import user_command, version_of

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
    """podman (rootless, as the test user) or docker (as root) against one
    release's cluster: this host's (podman 4.3, docker 20.10) with the
    release's runtime wrapper, or, as "root-podman" and "root-docker", the
    root's own (podman 5, docker 26/28) on its submit host with its scrun-rest."""

    def __init__(self, kind, release):
        self.on_root = kind.startswith("root-")
        self.name = kind[len("root-"):] if self.on_root else kind
        self.release = release
        podman = self.name == "podman"
        self.user = clusters.USER if podman else "root"
        self.uid = clusters.UID if podman else 0
        if self.on_root:
            self.spool_root = (clusters.submit_spool_root(release) if podman
                               else clusters.submit_docker_state(release))
            self.run = clusters.root_podman if podman else clusters.root_docker
            self.argv = clusters.root_podman_argv if podman else clusters.root_docker_argv
        else:
            self.spool_root = clusters.SPOOL_ROOT if podman else clusters.DOCKER_ROOT
            self.run = clusters.podman if podman else clusters.docker
            self.argv = clusters.podman_argv if podman else clusters.docker_argv

    def __call__(self, *args, **kwargs):
        return self.run(self.release, *args, **kwargs)

    def terminal_argv(self, *args):
        """The command line to run on a pty (e2e.testbed.Terminal): this
        host's podman exec'd as the test user, the others as they are."""
        argv = self.argv(self.release, *args)
        return user_command(argv) if self.name == "podman" and not self.on_root else argv

    def anchors(self, user):
        # Those of a submit host run pivoted into its root, this host's not:
        # tests of the other kind running at the same time have their own.
        if self.on_root:
            return clusters.submit_anchors(self.release, user)
        return [pid for pid in clusters.anchors(user)
                if not any(clusters.sees_root(pid, release) for release in clusters.RELEASES)]

    def remove(self, name):
        """Gone at once, whatever its state."""
        now = ("-t", "0") if self.name == "podman" else ()
        return self("rm", "-f", *now, name)

    def __repr__(self):
        return "%s%s on %s" % ("the root's " if self.on_root else "", self.name, self.release)


def require(kind, release, unavailable):
    """unavailable(...) unless the engine of that kind can reach the release."""
    if kind.startswith("root-") and not os.access(clusters.submit_host(release), os.X_OK):
        unavailable("%s has no submit host %s: run contrib/testbed/roots.sh up"
                    % (release, clusters.submit_host(release)))
    if kind == "root-docker":
        info = clusters.on_submit_host(release, "docker", "info", as_root=True)
        if info.returncode != 0:
            unavailable("the dockerd of %s's submit host does not answer: run "
                        "contrib/testbed/roots.sh up (%s)" % (release, info.stderr[-300:]))
    if kind == "docker":
        if not clusters.docker_available():
            unavailable("dockerd is not running")
        if not clusters.docker_has_runtime(release):
            unavailable("dockerd has no runtime %s: rerun contrib/testbed/setup.sh"
                        % clusters.docker_runtime(release))


def settled(engine):
    """What the engine's containers left behind (none, once they are gone)."""
    problems = clusters.leftovers(engine.release, engine.user, engine.uid, engine.spool_root,
                                  engine.anchors)
    assert not problems, "; ".join(problems)


def in_matrix(request, engine):
    """Name the test's cell in the run's table of releases and engines."""
    request.node.user_properties.append(("matrix", (
        "Slurm " + clusters.fact(engine.release, "SLURM_VERSION", "?"),
        clusters.root_package(engine.release, engine.name) if engine.on_root
        else version_of(engine.name))))


def engine_for_test(request, release, unavailable):
    """The engine of the fixture's param, in the matrix; checked for what
    it left behind once the test is done."""
    require(request.param, release, unavailable)
    engine = Engine(request.param, release)
    in_matrix(request, engine)
    yield engine
    settled(engine)


@pytest.fixture(params=["podman", "docker", "root-podman", "root-docker"])
def engine(request, release, unavailable):
    yield from engine_for_test(request, release, unavailable)


@pytest.fixture(params=["root-podman", "root-docker"])
def submit_engine(request, release, unavailable):
    """The root's own engines on its submit host only."""
    yield from engine_for_test(request, release, unavailable)


@pytest.fixture
def submit_host(release, unavailable):
    """The release's root as a submit host, for its podman as the test user."""
    require("root-podman", release, unavailable)
    yield release
    settled(Engine("root-podman", release))
