"""oci.conf's RunTimeQuery, RunTimeKill and RunTimeDelete, as a task runs them.

Each is a site pattern expanded with the task's values (every value one
quoted word, oci_conf.expand) and run through /bin/sh, never for longer
than HOOK_TIMEOUT. Python 3.6+, stdlib only.
"""
import json
import subprocess
import sys
import time

from scrun_rest.agent import oci_conf

HOOK_TIMEOUT = 30
QUERY_TIMEOUT = 10
# How long `runc run` may take to start the user's program before we stop
# asking whether it has.
START_PATIENCE = 10.0


def log(text):
    sys.stderr.write("scrun-rest task: %s\n" % text)
    sys.stderr.flush()


def _shell(pattern, values, extra=(), capture=False, timeout=HOOK_TIMEOUT):
    """The expanded pattern's stdout (capture) or exit status."""
    command = " ".join([oci_conf.expand(pattern, values)] + list(extra))
    done = subprocess.run(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=timeout)
    return done.stdout if capture else done.returncode


def run(settings, key, values, *extra):
    """Run oci.conf's `key` (if the site set it); a failure is logged, not raised."""
    pattern = settings.get(key)
    if not pattern:
        return
    try:
        _shell(pattern, values, extra)
    except (OSError, oci_conf.PatternError, subprocess.TimeoutExpired) as exc:
        log("%s failed: %s" % (key, exc))


def queried_status(pattern, values):
    """The status in RunTimeQuery's JSON state, or None."""
    try:
        out = _shell(pattern, values, capture=True, timeout=QUERY_TIMEOUT)
        return json.loads(out.decode()).get("status")
    except (OSError, ValueError, AttributeError, oci_conf.PatternError,
            subprocess.TimeoutExpired):
        return None


def wait_until_running(settings, plan, process):
    """The container is "running" once the user's program runs. After
    RunTimeStart it does; `runc run` gives no sign, so ask RunTimeQuery
    until the runtime says so (or the run ends, or patience runs out).
    A query that keeps failing (another runtime's container) cannot tell:
    go on after a second; the runtime's state may take a moment to appear."""
    pattern = settings.get("RunTimeQuery")
    if plan.start is not None or not pattern or "container" not in plan.values:
        return
    began = time.monotonic()
    while process.poll() is None and time.monotonic() < began + START_PATIENCE:
        status = queried_status(pattern, plan.values)
        if status not in (None, "creating", "created"):
            return
        if status is None and time.monotonic() > began + 1.0:
            return
        time.sleep(0.01)
