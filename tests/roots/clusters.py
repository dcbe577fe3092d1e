"""How the tests reach the Slurm clusters of the Debian roots (contrib/testbed/roots.sh).

One cluster per release, each in its own root, on its own ports of this
machine: trixie (Slurm 24.11) and forky (Slurm 26.05). The submit side is
this host (podman 4.3, docker 20.10) with the runtime wrapper roots.sh
writes per release: the test user's config for that cluster, or root's.
Its nodes see none of this host's /home, /tmp or /run/user: containers get
there by bundle transfer. Slurm commands for checks: chroot ROOT squeue.
"""
import os
import subprocess

from e2e.testbed import DOCKER_ROOT, HOME, IMAGE, SPOOL_ROOT, UID, USER, as_user  # noqa: F401
from e2e.testbed import anchors, docker_available, spool_dirs, wait_until  # noqa: F401

ENV_FILE = "/var/lib/scrun-testbed/roots.env"
# Collected even where roots.sh never ran, so that the tests skip (or fail
# under CI) by name instead of vanishing.
DEFAULT_RELEASES = ("trixie", "forky")


def settings(path=ENV_FILE):
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:  # no roots here, or not root
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


ROOTS = settings()
RELEASES = tuple(ROOTS.get("ROOTS_RELEASES", " ".join(DEFAULT_RELEASES)).split())


def fact(release, name, default=None):
    return ROOTS.get("ROOTS_%s_%s" % (release.upper(), name), default)


def root(release):
    return fact(release, "ROOT", "/var/lib/scrun-roots/%s" % release)


def runtime(release):
    return fact(release, "RUNTIME", "/var/lib/scrun-testbed/roots/%s/scrun-rest" % release)


def docker_runtime(release):
    return fact(release, "DOCKER_RUNTIME", "scrun-rest-%s" % release)


def slurm(release, *argv):
    """A Slurm client command against the release's cluster (chroot into its root)."""
    return subprocess.run(["chroot", root(release)] + list(argv), capture_output=True,
                          text=True, timeout=60, cwd="/")


def unavailable_reason(release):
    """Why the release's cluster cannot be used, or None."""
    if not ROOTS:
        return "the Debian roots are not up: run contrib/testbed/roots.sh up (as root)"
    if release not in RELEASES or not fact(release, "REST_URL"):
        return "roots.env has no cluster %s: run contrib/testbed/roots.sh up" % release
    if not os.path.exists(os.path.join(HOME, fact(release, "USER_CONF_DIR", ""),
                                       "scrun-rest.conf")):
        return "%s has no config for %s: run contrib/testbed/roots.sh up" % (HOME, release)
    if slurm(release, "scontrol", "ping").returncode != 0:
        return "the %s cluster's slurmctld does not answer: run contrib/testbed/roots.sh up" \
            % release
    return None


def user_jobs(release, user=USER):
    """Ids of the user's jobs on the release's cluster that are not finished."""
    return slurm(release, "squeue", "-h", "-u", user, "-o", "%i").stdout.split()


def node_root(release):
    """The node's own view of the filesystem (its slurmd's root)."""
    with open(os.path.join(root(release), "run", "slurmd.pid")) as handle:
        return "/proc/%d/root" % int(handle.read().split()[0])


def task_workdirs(release, uid=UID):
    """The task shims' scratch dirs under the node's own /tmp that uid has."""
    tmp = node_root(release) + "/tmp"
    found = set()
    try:
        names = os.listdir(tmp)
    except OSError:
        return found
    for name in names:
        try:
            if name.startswith("scrun-rest.") and os.stat(tmp + "/" + name).st_uid == uid:
                found.add(name)
        except FileNotFoundError:
            pass
    return found


def podman(release, *args, input=None, timeout=120):
    """Host podman (4.3) as the rootless test user, with the release's runtime."""
    return as_user(["podman", "--runtime", runtime(release)] + list(args), input=input,
                   timeout=timeout)


def docker(release, *args, input=None, timeout=120):
    """Host docker (20.10) as root; `run` with the release's registered runtime."""
    argv = ["/usr/bin/docker"] + list(args)
    if args and args[0] == "run":
        argv[2:2] = ["--runtime", docker_runtime(release)]
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, cwd="/tmp")


def docker_has_runtime(release):
    out = subprocess.run(["/usr/bin/docker", "info", "--format", "{{json .Runtimes}}"],
                         capture_output=True, text=True).stdout
    return '"%s"' % docker_runtime(release) in out
