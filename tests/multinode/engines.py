"""The engines that run containers on the multi-node testbed: rootless
podman on the login host (the testbed's vfs store, and podman's default
overlay driver in a store of its own), and root's rootful podman and
docker with overlay2 on this host, whose runtime wrapper (multinode.sh)
puts the runtime in the login host's network. The nodes see none of their
storage (MN_NODE_PRIVATE)."""
import contextlib
import os
import subprocess

from . import cluster
from e2e.testbed import DOCKER_OVERLAY2_HOST, FACTS, IMAGE, RUNTIME_DIR, docker_available

ROOT_RUNTIME = "/var/lib/scrun-testbed/multinode/scrun-rest-root"
DOCKER_RUNTIME = "scrun-rest-multinode"
NAMES = ("podman", "podman-overlay", "podman-rootful", "docker-overlay2")


class Engine:
    """name: as test ids show it; user: whose jobs and processes it makes;
    store: podman options for a store of its own."""

    def __init__(self, name, store=()):
        self.name = name
        self.user = "root" if name in ("podman-rootful", "docker-overlay2") else cluster.USER
        self.is_docker = name.startswith("docker")
        self.store = list(store)

    def argv(self, *args):
        if self.is_docker:
            argv = ["/usr/bin/docker", "-H", DOCKER_OVERLAY2_HOST] + list(args)
            if args and args[0] == "run":
                argv[4:4] = ["--runtime", DOCKER_RUNTIME]
            return argv
        runtime = ROOT_RUNTIME if self.user == "root" else cluster.MN["MN_RUNTIME"]
        return ["podman"] + self.store + ["--runtime", runtime] + list(args)

    def __call__(self, *args, input=None, timeout=120):
        if self.user != "root":
            return cluster.on_login(self.argv(*args), input=input, timeout=timeout)
        return subprocess.run(self.argv(*args), input=input, capture_output=True,
                              timeout=timeout, cwd="/tmp")

    def popen(self, *args):
        if self.user != "root":
            return cluster.login_popen(self.argv(*args))
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd="/tmp")

    def terminal_argv(self, *args):
        if self.user != "root":
            return cluster.login_command(self.argv(*args))
        return self.argv(*args)

    def remove(self, name):
        """Remove a container at once, whatever it is doing."""
        extra = () if self.is_docker else ("-t", "0")
        return self("rm", "-f", *extra, name)

    def unavailable(self):
        if self.is_docker and not docker_available(DOCKER_OVERLAY2_HOST):
            return "the overlay2 dockerd (%s) is not running" % DOCKER_OVERLAY2_HOST
        if self.user == "root" and not cluster.root_ready():
            return "root has no login config for the multi-node testbed: rerun setup.sh"
        return None

    def __repr__(self):
        return self.name


@contextlib.contextmanager
def overlay_store():
    """podman options for a store of the test user's with podman's default
    driver (overlay), holding the test image; removed after."""
    pid = os.getpid()
    base = "%s/.local/share/scrun-test-mn-overlay-%d" % (cluster.HOME, pid)
    runroot = "%s/scrun-test-mn-overlay-%d" % (RUNTIME_DIR, pid)
    store = ["--storage-driver", "overlay", "--root", base, "--runroot", runroot]
    loaded = cluster.on_login(["podman"] + store + ["import", "-q", FACTS.get(
        "TB_ROOTFS_TAR", "/var/lib/scrun-testbed/busybox.tar"), IMAGE])
    assert loaded.returncode == 0, loaded.stderr
    try:
        yield store
    finally:
        # Not `system reset`: it would end the user's podman namespace.
        cluster.on_login(["podman"] + store + ["rm", "-a", "-f", "-t", "0"])
        cluster.on_login(["podman"] + store + ["rmi", "-a", "-f"])
        cluster.on_login(["podman"] + store + ["unshare", "rm", "-rf", base, runroot])
