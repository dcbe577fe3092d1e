"""How the tests reach the testbed that contrib/testbed/setup.sh brings up."""
import json
import os
import subprocess
import time
import urllib.request

RUNTIME = "/opt/scrun-rest/bin/scrun-rest"
FACTS_FILE = "/var/lib/scrun-testbed/testbed.env"


def _facts(path=FACTS_FILE):
    """What setup.sh wrote down about the testbed (KEY=VALUE lines)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}  # no testbed here: the tests that need one skip
    return dict(line.split("=", 1) for line in lines if "=" in line)


FACTS = _facts()
# SCRUN_TEST_USER/SCRUN_TEST_UID pick another test user (TB_DEV_USERS in
# contrib/testbed/lib.sh) so parallel runs do not see each other's jobs.
USER = os.environ.get("SCRUN_TEST_USER", FACTS.get("TB_USER", "scruntest"))
UID = int(os.environ.get("SCRUN_TEST_UID", FACTS.get("TB_UID", "2000")))
OTHER_USER = FACTS.get("TB_OTHER_USER", "scrunother")
# A test user who never logs in, so that the node (this machine) has no
# /run/user/UID for it, as most users on a cluster's compute nodes.
BARE_USER = FACTS.get("TB_BARE_USER")
BARE_UID = int(FACTS.get("TB_BARE_UID", "-1"))
HOME = "/home/%s" % USER
RUNTIME_DIR = "/run/user/%d" % UID
SPOOL_ROOT = RUNTIME_DIR + "/scrun-rest"
REST_URL = FACTS.get("TB_REST_URL", "http://127.0.0.1:6820")
IMAGE = FACTS.get("TB_IMAGE", "localhost/busybox")
ROOTFS = FACTS.get("TB_ROOTFS", "/var/lib/scrun-testbed/busybox-rootfs")


def available():
    return os.path.exists(RUNTIME) and os.path.isdir(HOME) and _rest_answers()


def _rest_answers():
    try:
        urllib.request.urlopen(REST_URL + "/openapi/v3", timeout=2)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def as_user(argv, user=USER, uid=UID, input=None, timeout=120, env=None):
    """Run argv as the unprivileged test user, like a person at a shell."""
    home = "/home/%s" % user
    base = ["runuser", "-u", user, "--", "env", "-i", "HOME=" + home,
            "XDG_RUNTIME_DIR=/run/user/%d" % uid, "USER=" + user,
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"]
    base += ["%s=%s" % kv for kv in (env or {}).items()]
    return subprocess.run(base + list(argv), input=input, capture_output=True,
                          timeout=timeout, cwd="/tmp")


def create_container(bundle, cid, user=USER, uid=UID):
    """`create` as conmon runs it, with its stdio on files: the anchor keeps
    them, as it keeps conmon's pipes, so a pipe here would never reach EOF.
    The container's output ends up in BUNDLE/out and BUNDLE/err."""
    with open(bundle + "/out", "wb") as out, open(bundle + "/err", "w+b") as err:
        result = subprocess.run(
            ["runuser", "-u", user, "--", "env", "-i", "HOME=/home/%s" % user,
             "XDG_RUNTIME_DIR=/run/user/%d" % uid, "PATH=/usr/bin:/bin",
             RUNTIME, "create", "--bundle", bundle, "--pid-file", bundle + "/pid", cid],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=120, cwd="/tmp")
        err.seek(0)
        result.stderr = err.read()
    return result


def podman(*args, input=None, timeout=120, runtime=RUNTIME):
    return as_user(["podman", "--runtime", runtime] + list(args), input=input, timeout=timeout)


DOCKER_ROOT = "/var/run/docker/runtime-runc/moby"
# The second dockerd, with docker's default storage driver (overlay2): its
# socket, and where it has the runtime keep its state (--root).
DOCKER_OVERLAY2_HOST = FACTS.get("TB_DOCKER_OVERLAY2_HOST", "unix:///run/docker-overlay2.sock")
DOCKER_OVERLAY2_ROOT = FACTS.get("TB_DOCKER_OVERLAY2_ROOT",
                                 "/run/docker-overlay2/runtime-runc/moby-overlay2")


def docker_argv(*args):
    """docker's command line, with our runtime for `run`."""
    argv = ["/usr/bin/docker"] + list(args)
    if args and args[0] == "run":
        argv[2:2] = ["--runtime", "scrun-rest"]
    return argv


def docker(*args, input=None, timeout=120):
    """Docker runs the runtime as root, which submits as Slurm user root."""
    return subprocess.run(docker_argv(*args), input=input, capture_output=True,
                          timeout=timeout, cwd="/tmp")


def docker_available(host=None):
    argv = ["/usr/bin/docker"] + (["-H", host] if host else []) + ["info"]
    return subprocess.run(argv, capture_output=True).returncode == 0


def admin_token(user="root", lifespan=600):
    out = subprocess.run(["scontrol", "token", "username=%s" % user, "lifespan=%d" % lifespan],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


def rest_get(path, user="root"):
    request = urllib.request.Request(REST_URL + path, headers={
        "X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": admin_token(user)})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def rest_job(job_id):
    return rest_get("/slurm/v0.0.38/job/%s" % job_id)["jobs"][0]


def user_jobs(user=USER):
    """Job ids of the user that are not finished."""
    out = subprocess.run(["squeue", "-h", "-u", user, "-o", "%i %T"], capture_output=True,
                         text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def anchors(user=USER):
    out = subprocess.run(["pgrep", "-u", user, "-x", "scrun-anchor"], capture_output=True,
                         text=True).stdout
    return [int(pid) for pid in out.split()]


def spool_dirs(root=SPOOL_ROOT):
    try:
        return [name for name in os.listdir(root) if not name.startswith(".")]
    except FileNotFoundError:
        return []


def wait_until(predicate, timeout=15, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def container_state(cid, root=SPOOL_ROOT):
    try:
        with open(os.path.join(root, cid, "state.json")) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def user_command(argv, user=USER, uid=UID):
    """argv as the test user with a login-like environment, exec'd in place
    (setpriv, unlike runuser, leaves no parent that handles the terminal's
    signals itself)."""
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--init-groups",
            "env", "-i", "HOME=/home/%s" % user, "XDG_RUNTIME_DIR=/run/user/%d" % uid,
            "USER=" + user, "TERM=xterm", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
            ] + list(argv)


class Terminal:
    """A program on a real pty, as if a person typed at it."""

    def __init__(self, argv, rows=24, cols=80):
        import pty
        master, slave = pty.openpty()
        self.fd = master
        self.resize(rows, cols)

        def controlling_terminal():
            import fcntl
            import termios
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                        start_new_session=True, cwd="/tmp",
                                        preexec_fn=controlling_terminal)
        os.close(slave)
        self.screen = b""
        self.unread = 0

    def resize(self, rows, cols):
        import fcntl
        import struct
        import termios
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, text):
        os.write(self.fd, text.encode() if isinstance(text, str) else text)

    def _read(self, timeout):
        import select
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: every process on the terminal closed it
            data = b""
        if not data:
            time.sleep(0.05)
        self.screen += data
        return bool(data)

    def expect(self, pattern, timeout=30):
        """The first match of pattern in output not yet matched."""
        import re
        expression = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = expression.search(self.screen, self.unread)
            if match:
                self.unread = match.end()
                return match
            if not self._read(deadline - time.monotonic()) and \
                    (time.monotonic() >= deadline or self.process.poll() is not None):
                raise AssertionError("no %r on the terminal; it shows %r"
                                     % (pattern, self.screen[-600:]))

    def wait(self, timeout=30):
        """The program's exit code, reading its output meanwhile."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        return self.process.wait(max(0.1, deadline - time.monotonic()))

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.fd)


_VERSIONS = {}


def version_of(program):
    """`Slurm 22.05.8`, `podman 4.3.1`, `docker 20.10.24`: this host's, for the
    matrix table (tests/conftest.py); asked once each."""
    if program not in _VERSIONS:
        argv = {"slurm": ["sinfo", "--version"], "podman": ["podman", "--version"],
                "docker": ["/usr/bin/docker", "version", "--format", "{{.Server.Version}}"]}
        out = subprocess.run(argv[program], capture_output=True, text=True).stdout.split()
        number = out[-1].split("+")[0] if out else "?"
        _VERSIONS[program] = "%s %s" % ("Slurm" if program == "slurm" else program, number)
    return _VERSIONS[program]
