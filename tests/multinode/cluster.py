"""How the tests reach the multi-node testbed of contrib/testbed/multinode.sh.

The login host is the network namespace `login`: podman runs there as the
test user with the runtime wrapper multinode.sh writes (its own scrun-rest
config). Slurm commands for checks run from the `ctl` namespace.
"""
import contextlib
import os
import re
import shutil
import subprocess
import tempfile

# The same test user, image and helpers as tests/e2e (SCRUN_TEST_USER picks
# a developer's own user).
from e2e.testbed import (HOME, IMAGE, RUNTIME_DIR, SPOOL_ROOT, UID, USER,  # noqa: F401
                         user_command, wait_until)

ENV_FILE = "/var/lib/scrun-testbed/multinode.env"
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
# podman hands the runtime no more than this (oci-callers.md).
RUNTIME_ENV = {"HOME": HOME, "PATH": PATH, "XDG_RUNTIME_DIR": RUNTIME_DIR}


def settings():
    values = {}
    try:
        with open(ENV_FILE) as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep:
                    values[key] = value
    except FileNotFoundError:
        pass
    return values


MN = settings()


def available():
    return bool(MN) and os.path.exists("/run/netns/login") and os.path.isdir(HOME) and \
        os.path.exists(user_conf()) and slurm("scontrol", "ping").returncode == 0


def user_conf(home=HOME):
    return "%s/%s/scrun-rest.conf" % (home, MN.get("MN_USER_CONF_DIR", ""))


def in_ns(ns, argv, **kwargs):
    """argv in a namespace's network only: nsenter --net, as the daemons run."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run(["nsenter", "--net=/run/netns/%s" % ns] + list(argv), **kwargs)


def on_login(argv, env=None, input=None, timeout=120, **kwargs):
    """argv on the login host as the test user, with only the given environment."""
    base = ["runuser", "-u", USER, "--", "env", "-i"]
    base += ["%s=%s" % kv for kv in dict(RUNTIME_ENV, **(env or {})).items()]
    return in_ns("login", base + list(argv), input=input, timeout=timeout, cwd="/tmp", **kwargs)


def podman(*args, input=None, timeout=120, runtime=None):
    runtime = runtime or MN["MN_RUNTIME"]
    return on_login(["podman", "--runtime", runtime] + list(args), input=input,
                    timeout=timeout)


def podman_popen(*args, runtime=None):
    runtime = runtime or MN["MN_RUNTIME"]
    return login_popen(["podman", "--runtime", runtime] + list(args))


def login_popen(argv):
    """on_login's argv, running, its stdout and stderr pipes."""
    base = ["nsenter", "--net=/run/netns/login", "runuser", "-u", USER, "--", "env", "-i"]
    base += ["%s=%s" % kv for kv in RUNTIME_ENV.items()]
    return subprocess.Popen(base + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd="/tmp")


def login_command(argv):
    """argv on the login host as the test user, exec'd in place so that a
    terminal it runs on is its own (e2e.testbed.user_command, in login's
    network)."""
    return ["nsenter", "--net=/run/netns/login"] + user_command(argv)


def slurm(*argv, user=None):
    """A Slurm client command against the multi-node cluster (from ctl)."""
    command = ["env", "SLURM_CONF=%s" % MN.get("MN_CONF", "/nonexistent"),
               "PATH=" + PATH] + list(argv)
    if user:
        command = ["runuser", "-u", user, "--"] + command
    return in_ns("ctl", command, text=True, cwd="/tmp")


def user_jobs(user=USER):
    """Ids of the user's jobs that are not finished."""
    out = slurm("squeue", "-h", "-u", user, "-o", "%i").stdout
    return out.split()


def job_state(job_id):
    out = slurm("scontrol", "show", "job", "-o", str(job_id)).stdout
    match = re.search(r"\bJobState=(\S+)", out)
    return match.group(1) if match else None


def last_job(user=USER):
    """The user's newest job on this cluster (finished ones included)."""
    out = slurm("scontrol", "show", "job", "-o").stdout
    ids = [int(m.group(1)) for line in out.splitlines()
           if re.search(r"\bUserId=%s\(" % re.escape(user), line)
           for m in [re.search(r"\bJobId=(\d+)", line)] if m]
    return max(ids) if ids else None


def anchors(user=USER):
    out = subprocess.run(["pgrep", "-u", user, "-x", "scrun-anchor"], capture_output=True,
                         text=True).stdout
    return [int(pid) for pid in out.split()]


def root_ready():
    """Root's engines have their runtime wrapper and login config."""
    return os.path.exists("/var/lib/scrun-testbed/multinode/scrun-rest-root") and \
        os.path.exists(user_conf("/root"))


def spool_dirs():
    try:
        return sorted(name for name in os.listdir(SPOOL_ROOT) if not name.startswith("."))
    except FileNotFoundError:
        return []


def node_root(node):
    """The node's own view of the filesystem (its slurmd's root: the nodes
    share none of this host's /tmp, /run/user or /home)."""
    with open("/run/slurm-multi/slurmd-%s.pid" % node) as handle:
        return "/proc/%d/root" % int(handle.read().split()[0])


def _listing(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def task_workdirs(nodes=None, uid=UID):
    """The task shims' scratch dirs (mkdtemp under each node's /tmp) the
    user has, as NODE:NAME."""
    found = set()
    for node in nodes or MN.get("MN_NODES", "n1 n2").split():
        tmp = node_root(node) + "/tmp"
        for name in _listing(tmp):
            try:
                if name.startswith("scrun-rest.") and os.stat(tmp + "/" + name).st_uid == uid:
                    found.add("%s:%s" % (node, name))
            except FileNotFoundError:
                pass
    return found


def runc_states(nodes=None):
    """runc's state dirs of this cluster's containers on the nodes: under
    /run/user/UID where a node has it, else in the task's scratch dir."""
    found = set()
    for node in nodes or MN.get("MN_NODES", "n1 n2").split():
        root = node_root(node)
        roots = [root + RUNTIME_DIR] + [
            "%s/tmp/%s/runtime-root" % (root, name.split(":", 1)[1])
            for name in task_workdirs([node])]
        found.update("%s:%s" % (node, name) for base in roots for name in _listing(base)
                     if name.split(".")[1:2] == [USER])
    return found


def node_processes(nodes=None, uid=UID):
    """The user's processes in the nodes' namespaces (pid, command); for
    root, those besides slurmd."""
    found = []
    for node in nodes or MN.get("MN_NODES", "n1 n2").split():
        pids = subprocess.run(["ip", "netns", "pids", node], capture_output=True,
                              text=True).stdout.split()
        slurmd = node_root(node).split("/")[2]
        for pid in pids:
            try:
                if os.stat("/proc/%s" % pid).st_uid != uid or pid == slurmd:
                    continue
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found.append((node, int(pid), command[:80]))
    return found


@contextlib.contextmanager
def user_dir():
    """A scratch directory under /tmp that the test user owns."""
    path = tempfile.mkdtemp(prefix="scrun-mn-test.")
    os.chmod(path, 0o755)
    subprocess.run(["chown", USER, path], check=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def login_runtime(tmp_dir, settings):
    """A runtime wrapper whose config is the login config with some settings
    added or replaced (None removes one)."""
    with open(user_conf()) as handle:
        lines = [line for line in handle.read().splitlines()
                 if line.split("=", 1)[0].strip() not in settings]
    lines += ["%s=%s" % kv for kv in settings.items() if kv[1] is not None]
    conf = os.path.join(tmp_dir, "scrun-rest.conf")
    wrapper = os.path.join(tmp_dir, "scrun-rest")
    with open(conf, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(conf, 0o600)
    subprocess.run(["chown", USER, conf], check=True)
    with open(wrapper, "w") as handle:
        handle.write('#!/bin/sh\nexec %s -f %s "$@"\n' % (
            os.path.join(MN.get("MN_VENV", "/opt/scrun-rest"), "bin", "scrun-rest"), conf))
    os.chmod(wrapper, 0o755)
    yield wrapper


@contextlib.contextmanager
def cut_login_from(node):
    """Drop every packet between the login host and a node, both ways."""
    address = MN["MN_%s_ADDR" % node.upper()]
    rules = (["INPUT", "-s", address, "-j", "DROP"], ["OUTPUT", "-d", address, "-j", "DROP"])
    for rule in rules:
        in_ns("login", ["iptables", "-I"] + rule, check=True)
    try:
        yield
    finally:
        for rule in rules:
            in_ns("login", ["iptables", "-D"] + rule)
