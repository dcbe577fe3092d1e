"""How the tests reach the Slurm clusters of the Debian roots (contrib/testbed/roots.sh).

One cluster per release, each in its own root, on its own ports of this
machine: trixie (Slurm 24.11) and forky (Slurm 26.05). The submit side is
this host (podman 4.3, docker 20.10) with the runtime wrapper roots.sh
writes per release (the test user's config for that cluster, or root's),
or the root itself as a submit host (its podman 5, submit_host()).
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


def root_package(release, engine):
    """`podman 5.4.2`, `docker 26.1.5`: the root's own, from roots.env."""
    package = "docker.io" if engine == "docker" else engine
    for pinned in fact(release, "PACKAGES", "").split():
        name, _, version = pinned.partition("=")
        if name == package:
            return "%s %s" % (engine, version.split("+")[0].split("-")[0])
    return "%s ?" % engine


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


def assert_check_reports_the_release(release, result):
    """`scrun-rest check` against the release's cluster said what it found there."""
    text = result.stdout.decode()
    assert result.returncode == 0, text + result.stderr.decode()
    for line in ("API version:         %s" % fact(release, "API"),
                 "slurmrestd release:  %s" % fact(release, "SLURM_VERSION"),
                 "slurmrestd URL:      %s" % fact(release, "REST_URL"), "ready to submit"):
        assert line in text, "no %r in: %s" % (line, text)


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
    return as_user(podman_argv(release, *args), input=input, timeout=timeout)


def podman_argv(release, *args):
    return ["podman", "--runtime", runtime(release)] + list(args)


def docker(release, *args, input=None, timeout=120):
    """Host docker (20.10) as root; `run` with the release's registered runtime."""
    return subprocess.run(docker_argv(release, *args), input=input, capture_output=True,
                          timeout=timeout, cwd="/tmp")


def docker_argv(release, *args):
    return ["/usr/bin/docker"] + with_runtime(args, docker_runtime(release))


def with_runtime(args, runtime_name):
    """docker's arguments, `run` given the runtime."""
    args = list(args)
    if args and args[0] == "run":
        args[1:1] = ["--runtime", runtime_name]
    return args


def submit_host(release):
    """The wrapper that runs a command as the test user on the release's own
    submit host: pivoted into its root, with the root's podman 5 and a venv
    of scrun-rest made with the root's python3 (roots.sh submit_up)."""
    return fact(release, "SUBMIT_HOST", "/var/lib/scrun-testbed/roots/%s/submit-host" % release)


def submit_runtime(release):
    """scrun-rest as the submit host sees it."""
    return fact(release, "SUBMIT_VENV", "/opt/scrun-rest") + "/bin/scrun-rest"


def submit_spool_root(release, uid=UID):
    """The submit host's /run/user/UID/scrun-rest, as this host sees it."""
    return "%s/%d/scrun-rest" % (fact(release, "SUBMIT_RUN_DIR", "/run/scrun-roots/%s" % release),
                                 uid)


def submit_host_root(release):
    """The same as root: the root's docker, whose dockerd runs there."""
    return fact(release, "SUBMIT_HOST_ROOT",
                "/var/lib/scrun-testbed/roots/%s/submit-host-root" % release)


def submit_docker_state(release):
    """Where dockerd's scrun-rest keeps its containers (runc's --root), seen from here."""
    return fact(release, "SUBMIT_DOCKER_STATE",
                root(release) + "/run/docker/runtime-runc/moby")


def on_submit_host(release, *argv, input=None, timeout=120, as_root=False):
    wrapper = submit_host_root(release) if as_root else submit_host(release)
    return subprocess.run([wrapper] + list(argv), input=input, capture_output=True,
                          timeout=timeout, cwd="/")


def root_podman(release, *args, input=None, timeout=120):
    """The root's own podman (5.4 on trixie, 5.8 on forky), rootless as the
    test user on the release's submit host, with its scrun-rest."""
    return on_submit_host(release, *root_podman_argv(release, *args)[1:], input=input,
                          timeout=timeout)


def root_podman_argv(release, *args):
    return [submit_host(release), "podman", "--runtime", submit_runtime(release)] + list(args)


def root_docker(release, *args, input=None, timeout=120):
    """The root's own docker (26.1 on trixie, 28.5 on forky) as root on the
    release's submit host; `run` with the scrun-rest its dockerd knows."""
    return on_submit_host(release, *root_docker_argv(release, *args)[1:], input=input,
                          timeout=timeout, as_root=True)


def root_docker_argv(release, *args):
    return [submit_host_root(release), "docker"] + with_runtime(args, "scrun-rest")


def sees_root(pid, release):
    """Whether process pid runs pivoted into the release's root."""
    try:
        with open("/proc/%d/root/etc/scrun-root" % pid, "rb") as seen, \
                open(root(release) + "/etc/scrun-root", "rb") as stamp:
            return seen.read() == stamp.read()
    except OSError:
        return False


def submit_anchors(release, user=USER):
    """The user's anchors on the release's submit host (the host's, of other
    tests running at the same time, are not theirs)."""
    return [pid for pid in anchors(user) if sees_root(pid, release)]


def leftovers(release, user, uid, spool_root, anchors_of=anchors):
    """What containers of user left behind, waiting a little for each: jobs
    on the release's cluster, anchors, spool dirs, the node's task dirs."""
    problems = []
    if not wait_until(lambda: not user_jobs(release, user), 20):
        problems.append("jobs of %s left on %s: %s" % (user, release, user_jobs(release, user)))
    if not wait_until(lambda: not anchors_of(user), 10):
        problems.append("anchors of %s left: %s" % (user, anchors_of(user)))
    if not wait_until(lambda: not spool_dirs(spool_root), 10):
        problems.append("spool dirs left in %s: %s" % (spool_root, spool_dirs(spool_root)))
    if not wait_until(lambda: not task_workdirs(release, uid), 10):
        problems.append("task dirs left in %s's node /tmp: %s"
                        % (release, sorted(task_workdirs(release, uid))))
    return problems


def docker_has_runtime(release):
    out = subprocess.run(["/usr/bin/docker", "info", "--format", "{{json .Runtimes}}"],
                         capture_output=True, text=True).stdout
    return '"%s"' % docker_runtime(release) in out
