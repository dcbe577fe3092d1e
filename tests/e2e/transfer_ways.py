"""The ways a container's files reach a node that cannot see them, as
real podman and docker users meet them: each is an engine callable like
conftest's, with its own settings for the time of a test."""
import contextlib
import os
import subprocess

from . import testbed
from .testbed import RUNTIME, as_user, user_command
from .user_config import root_config, user_config

# Where a copied rootfs ends up on the node (agent/bundle_fetch.py): the
# container's / shows it as the root of its mount.
ROOT_SOURCE = "awk '$5==\"/\"{print $4}' /proc/self/mountinfo"


def overlay_store(user_argv, base, runroot, run):
    """podman options for a store of its own with podman's default driver,
    holding the test image."""
    argv = user_argv + ["--storage-driver", "overlay", "--root", base, "--runroot", runroot]
    loaded = run(argv + ["import", "-q", testbed.FACTS.get(
        "TB_ROOTFS_TAR", "/var/lib/scrun-testbed/busybox.tar"), testbed.IMAGE])
    assert loaded.returncode == 0, loaded.stderr
    return argv


def run_as_root(argv, input=None, timeout=120):
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, cwd="/tmp")


class Way:
    """name: how it is known in test ids; user: whose jobs it makes;
    settings: the BundleTransfer settings it runs with."""

    def __init__(self, name, user, argv, settings, spool_root):
        self.name, self.user, self.argv = name, user, argv
        self.settings, self.spool_root = settings, spool_root
        self.is_docker = argv[0].endswith("docker")

    def command(self, *args):
        argv = list(self.argv)
        if self.is_docker and args and args[0] == "run":
            return argv + ["run", "--runtime", "scrun-rest"] + list(args[1:])
        if not self.is_docker:
            argv += ["--runtime", RUNTIME]
        return argv + list(args)

    def __call__(self, *args, input=None, timeout=120):
        argv = self.command(*args)
        if self.user == "root":
            return run_as_root(argv, input=input, timeout=timeout)
        return as_user(argv, input=input, timeout=timeout)

    def terminal_argv(self, *args):
        argv = self.command(*args)
        return argv if self.user == "root" else user_command(argv)

    @contextlib.contextmanager
    def configured(self, **extra):
        change = root_config if self.user == "root" else user_config
        with change(**dict(self.settings, **extra)):
            yield self

    def __repr__(self):
        return self.name


def unavailable(name):
    """Why the way cannot run on this testbed, or None."""
    if name.startswith("docker-overlay2"):
        if not testbed.docker_available(testbed.DOCKER_OVERLAY2_HOST):
            return "the overlay2 dockerd (%s) is not running" % testbed.DOCKER_OVERLAY2_HOST
    elif name.startswith("docker") and not testbed.docker_available():
        return "dockerd is not running"
    return None


@contextlib.contextmanager
def way(name):
    """One Way, its store made for the test module and removed after."""
    pid = os.getpid()
    if name == "podman-overlay-auto":
        base = "%s/.local/share/scrun-test-xfer-%d" % (testbed.HOME, pid)
        runroot = "%s/scrun-test-xfer-%d" % (testbed.RUNTIME_DIR, pid)
        argv = overlay_store(["podman"], base, runroot, as_user)
        try:
            yield Way(name, testbed.USER, argv, {}, testbed.SPOOL_ROOT)
        finally:
            # Not `system reset`: it would end the user's podman namespace.
            as_user(argv + ["rm", "-a", "-f", "-t", "0"])
            as_user(argv + ["rmi", "-a", "-f"])
            as_user(argv + ["unshare", "rm", "-rf", base, runroot])
    elif name == "podman-vfs-always":
        yield Way(name, testbed.USER, ["podman"], {"BundleTransfer": "always"},
                  testbed.SPOOL_ROOT)
    elif name == "podman-rootful-overlay-always":
        base = "/var/lib/scrun-test-xfer-%d" % pid
        runroot = "/run/scrun-test-xfer-%d" % pid
        argv = overlay_store(["podman"], base, runroot, run_as_root)
        try:
            yield Way(name, "root", argv, {"BundleTransfer": "always"},
                      "/run/scrun-rest")
        finally:
            run_as_root(argv + ["rm", "-a", "-f", "-t", "0"])
            run_as_root(argv + ["rmi", "-a", "-f"])
            subprocess.run(["umount", "-R", base + "/overlay"], capture_output=True)
            subprocess.run(["rm", "-rf", base, runroot], capture_output=True)
    elif name == "docker-always":
        yield Way(name, "root", ["/usr/bin/docker"], {"BundleTransfer": "always"},
                  testbed.DOCKER_ROOT)
    elif name == "docker-overlay2-always":
        # No -auto: dockerd mounts the merged rootfs in the host's mount
        # namespace, where this testbed's node sees it, so auto uses it in
        # place (test_docker_overlay2_auto_uses_the_rootfs_in_place).
        yield Way(name, "root", ["/usr/bin/docker", "-H", testbed.DOCKER_OVERLAY2_HOST],
                  {"BundleTransfer": "always"}, testbed.DOCKER_OVERLAY2_ROOT)
    else:
        raise ValueError(name)
