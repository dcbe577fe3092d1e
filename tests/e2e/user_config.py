"""Temporary changes to the test user's world, always undone: its
scrun-rest.conf, files in its home, firewall rules, the testbed's daemons.
"""
import contextlib
import os
import shutil
import subprocess
import time

from . import testbed

CONF_DIR = testbed.HOME + "/.config/scrun-rest"
CONF = CONF_DIR + "/scrun-rest.conf"
# root's, for docker (and rootful podman): shared, so tests change it only
# for their own length, as they do the test user's.
ROOT_CONF = "/etc/scrun-rest/scrun-rest.conf"
DAEMONS = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "testbed",
                       "daemons.sh")


def write_user_file(path, text, mode=0o600, user=testbed.USER):
    """Write a file the test user owns (the tests run as root)."""
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)
    subprocess.run(["chown", "%s:%s" % (user, user), path], check=True)


@contextlib.contextmanager
def changed_config(conf, owner, mode, settings):
    """conf with settings replaced or added (None removes), then restored.
    A copy of the real file is kept beside it while a test runs: if a run
    dies half way, the next one restores from there first."""
    backup = conf + ".saved-by-tests"
    if os.path.exists(backup):
        os.replace(backup, conf)
    with open(conf) as handle:
        original = handle.read()
    lowered = {key.lower() for key in settings}
    lines = [line for line in original.splitlines()
             if line.split("=", 1)[0].strip().lower() not in lowered]
    lines += ["%s=%s" % (key, value) for key, value in settings.items() if value is not None]
    write_user_file(backup, original, mode, owner)
    write_user_file(conf, "\n".join(lines) + "\n", mode, owner)
    try:
        yield conf
    finally:
        os.replace(backup, conf)


def user_config(**settings):
    """The test user's scrun-rest.conf with settings changed for a while."""
    return changed_config(CONF, testbed.USER, 0o600, settings)


def root_config(**settings):
    """root's scrun-rest.conf (docker's) with settings changed for a while."""
    return changed_config(ROOT_CONF, "root", 0o644, settings)


@contextlib.contextmanager
def blocked_ports(low, high):
    """Drop every TCP packet to ports low..high on this machine."""
    rule = ["OUTPUT", "-p", "tcp", "--dport", "%d:%d" % (low, high), "-j", "DROP",
            "-m", "comment", "--comment", "scrun-rest-fault-test"]
    subprocess.run(["iptables", "-I"] + rule, check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D"] + rule, check=False)


def daemon(action, name):
    subprocess.run(["bash", DAEMONS, action, name], check=True, capture_output=True,
                   timeout=120)


@contextlib.contextmanager
def daemon_stopped(name):
    """A Slurm daemon down for the block; it is back (and answering) after."""
    daemon("stop", name)
    try:
        yield
    finally:
        daemon("start", name)


def runc_containers(user=testbed.USER, uid=testbed.UID):
    """Containers rootless runc still knows of on the node (the default RunTimeRun root)."""
    out = testbed.as_user(["runc", "--root", "/run/user/%d" % uid, "list", "-q"],
                          user=user, uid=uid).stdout.decode()
    return [line for line in out.split() if line.strip()]


def task_workdirs(uid=testbed.UID):
    """The task shims' scratch dirs (mkdtemp under /tmp) the user still has."""
    found = []
    for name in os.listdir("/tmp"):
        if name.startswith("scrun-rest."):
            try:
                if os.stat("/tmp/" + name).st_uid == uid:
                    found.append(name)
            except FileNotFoundError:
                pass
    return found


def job_params(job_id):
    """The PARAMS the anchor put in the job script (root reads any script)."""
    import ast
    script = subprocess.run(["scontrol", "write", "batch_script", str(job_id), "-"],
                            capture_output=True, text=True).stdout
    for line in script.splitlines():
        if line.startswith("PARAMS = "):
            return ast.literal_eval(line[len("PARAMS = "):])
    return None


def job_script(job_id):
    return subprocess.run(["scontrol", "write", "batch_script", str(job_id), "-"],
                          capture_output=True, text=True).stdout


def port_listening(port):
    out = subprocess.run(["ss", "-H", "-ltn", "sport = :%d" % port], capture_output=True,
                         text=True).stdout
    return bool(out.strip())


def compute_leftovers(user=testbed.USER, uid=testbed.UID, port=None):
    """What conftest's check does not see: runc containers, task dirs, the tunnel port."""
    problems = []
    if not testbed.wait_until(lambda: not runc_containers(user, uid), 10):
        problems.append("runc containers left: %s" % runc_containers(user, uid))
    if not testbed.wait_until(lambda: not task_workdirs(uid), 10):
        problems.append("task dirs left: %s" % task_workdirs(uid))
    if port and not testbed.wait_until(lambda: not port_listening(port), 10):
        problems.append("tunnel port %d still listening" % port)
    return problems


def clear_compute_leftovers(user=testbed.USER, uid=testbed.UID):
    """Remove what compute_leftovers found, so that one test's leak fails
    that test alone."""
    for container in runc_containers(user, uid):
        testbed.as_user(["runc", "--root", "/run/user/%d" % uid, "delete", "--force",
                         container], user=user, uid=uid)
    for name in task_workdirs(uid):
        shutil.rmtree("/tmp/" + name, ignore_errors=True)


class Timer:
    def __init__(self):
        self.began = time.monotonic()

    @property
    def elapsed(self):
        return time.monotonic() - self.began


def user_argv(argv, user=testbed.USER, uid=testbed.UID):
    """argv run as the test user with a login-like environment (see testbed.as_user)."""
    return ["runuser", "-u", user, "--", "env", "-i", "HOME=/home/%s" % user,
            "XDG_RUNTIME_DIR=/run/user/%d" % uid, "USER=" + user,
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"] + list(argv)


def podman_popen(*args, stdin=subprocess.DEVNULL):
    """podman in the background, as the test user; read .stdout/.stderr when done."""
    return subprocess.Popen(user_argv(["podman", "--runtime", testbed.RUNTIME] + list(args)),
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd="/tmp")


def all_user_jobs(user=testbed.USER):
    """Every job of the user Slurm still remembers, finished ones too (MinJobAge)."""
    out = subprocess.run(["squeue", "-h", "-u", user, "-t", "all", "-o", "%i"],
                         capture_output=True, text=True).stdout
    return set(out.split())


def new_job(before, user=testbed.USER, timeout=15):
    """The one job the user submitted since `before` was taken."""
    found = testbed.wait_until(lambda: all_user_jobs(user) - before, timeout)
    assert len(found) == 1, found
    return int(found.pop())

