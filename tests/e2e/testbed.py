"""How the tests reach the testbed that contrib/testbed/setup.sh brings up."""
import json
import os
import subprocess
import time
import urllib.request

RUNTIME = "/opt/scrun-rest/bin/scrun-rest"
# SCRUN_TEST_USER/SCRUN_TEST_UID pick another test user (TB_DEV_USERS in
# contrib/testbed/lib.sh) so parallel runs do not see each other's jobs.
USER = os.environ.get("SCRUN_TEST_USER", "scruntest")
UID = int(os.environ.get("SCRUN_TEST_UID", "2000"))
OTHER_USER = "scrunother"
HOME = "/home/%s" % USER
RUNTIME_DIR = "/run/user/%d" % UID
SPOOL_ROOT = RUNTIME_DIR + "/scrun-rest"
REST_URL = "http://127.0.0.1:6820"
IMAGE = "localhost/busybox"


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


def podman(*args, input=None, timeout=120, runtime=RUNTIME):
    return as_user(["podman", "--runtime", runtime] + list(args), input=input, timeout=timeout)


DOCKER_ROOT = "/var/run/docker/runtime-runc/moby"


def docker(*args, input=None, timeout=120):
    """Docker runs the runtime as root, which submits as Slurm user root."""
    argv = ["/usr/bin/docker"] + list(args)
    if args and args[0] == "run":
        argv[2:2] = ["--runtime", "scrun-rest"]
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, cwd="/tmp")


def docker_available():
    return subprocess.run(["/usr/bin/docker", "info"], capture_output=True).returncode == 0


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
