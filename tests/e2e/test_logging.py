"""Errors as podman and docker show them; logs kept off the container's output."""
import json
import os
import re
import shutil
import socket
import subprocess
import threading

import pytest

from . import testbed
from .testbed import IMAGE, podman
from .user_config import user_config

RUN = ("run", "--rm", "--network=none")
UNHELPFUL = ("unable to retrieve OCI runtime error", "no logs from conmon")


@pytest.fixture
def user_dir():
    path = "/tmp/scrun-e2e-log-%s-%d" % (testbed.USER, os.getpid())
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    os.chmod(path, 0o755)
    subprocess.run(["chown", testbed.USER, path], check=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def read(path):
    with open(path) as handle:
        return handle.read()


@pytest.mark.parametrize("variable,shown", [
    # refused by slurmctld, reported by the anchor
    ("SCRUN_PARTITION=nosuch", "Invalid partition name specified"),
    # refused by create itself
    ("SCRUN_NTASKS=-2", "SCRUN_NTASKS=-2 is invalid"),
])
def test_a_failing_create_shows_our_reason(engine, variable, shown):
    """podman shows create's stderr; docker the last error line of log.json."""
    result = engine(*RUN, "-e", variable, IMAGE, "true")
    error = result.stderr.decode()
    assert result.returncode in (125, 126), error
    assert shown in error
    assert not any(text in error for text in UNHELPFUL), error


# podman hands `--log FILE --log-format=json` only to runtimes it lists in
# runtime_supports_json, and then reads FILE as one JSON object. The wrapper
# silences stderr, so the reason can only come from the file.
WRAPPER = """#!/bin/sh
%s "$@" 2>/dev/null
code=$?
for arg in "$@"; do
  [ "$previous" = --log ] && cp "$arg" %s/oci-log 2>/dev/null
  previous=$arg
done
exit $code
"""
CONTAINERS_CONF = """[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "e2e-json"]

[engine.runtimes]
e2e-json = ["%s"]
"""


@pytest.mark.parametrize("variable,shown", [
    ("SCRUN_PARTITION=nosuch", "Invalid partition name specified"),
    ("SCRUN_NTASKS=-2", "SCRUN_NTASKS=-2 is invalid"),
])
def test_podman_reads_the_reason_from_the_json_log(user_dir, variable, shown):
    wrapper = user_dir + "/runtime"
    with open(wrapper, "w") as handle:
        handle.write(WRAPPER % (testbed.RUNTIME, user_dir))
    os.chmod(wrapper, 0o755)
    conf = user_dir + "/containers.conf"
    with open(conf, "w") as handle:
        handle.write(CONTAINERS_CONF % wrapper)
    result = testbed.as_user(["podman", "--runtime", "e2e-json", *RUN, "-e", variable,
                              IMAGE, "true"], env={"CONTAINERS_CONF": conf})
    error = result.stderr.decode()
    assert result.returncode == 126, error
    assert "OCI runtime error: e2e-json: " in error and shown in error
    # One object, as podman's json.Unmarshal needs, with docker's fields too.
    entry = json.loads(read(user_dir + "/oci-log"))
    assert entry["level"] == "error" and shown in entry["msg"] and entry["time"]


@pytest.mark.parametrize("variable", ["SCRUN_DEBUG", "SCRUN_STDERR_DEBUG",
                                      "SCRUN_SYSLOG_DEBUG", "SCRUN_FILE_DEBUG"])
def test_an_invalid_level_names_the_variable(variable):
    # Log settings come from scrun-rest.conf (or create's environment), never
    # from the container's.
    with user_config(**{variable: "loud"}):
        result = podman(*RUN, IMAGE, "true")
    assert result.returncode == 126
    assert "%s=loud is not one of quiet|fatal|error|info" % variable in result.stderr.decode()


SHOW = ("sh", "-c", "echo out; echo err >&2")


@pytest.mark.parametrize("podman_flags,settings,debug_lines", [
    ((), {}, False),
    ((), {"SCRUN_DEBUG": "debug5"}, True),
    ((), {"SCRUN_FILE_DEBUG": "debug"}, True),
    (("--runtime-flag", "debug"), {}, True),  # podman passes --debug to the runtime
])
def test_logs_go_to_the_log_file_never_to_the_container(user_dir, podman_flags, settings,
                                                        debug_lines):
    log_file = user_dir + "/anchor.log"
    name = "e2e-logs-%s" % testbed.USER
    podman("rm", "-f", name)
    with user_config(SCRUN_LOG_FILE=log_file, **settings):
        result = testbed.as_user(["podman", *podman_flags, "--runtime", testbed.RUNTIME,
                                  "run", "--name", name, "--network=none", IMAGE, *SHOW])
    # What conmon recorded from the very start, before podman attached.
    logs = podman("logs", name)
    podman("rm", "-f", name)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert (logs.stdout, logs.stderr) == (b"out\n", b"err\n")
    log = read(log_file) if os.path.exists(log_file) else ""
    assert (" DEBUG scrun_rest.anchor: job request: " in log) == debug_lines, log
    assert ("submitted job" in log) == debug_lines


def run_and_log(**setting):
    """podman run SHOW with setting in scrun-rest.conf; (the run, what conmon
    recorded)."""
    name = "e2e-log-variable-%s" % testbed.USER
    podman("rm", "-f", name)
    with user_config(**setting):
        result = podman("run", "--name", name, "--network=none", IMAGE, *SHOW)
    logs = podman("logs", name)
    podman("rm", "-f", name)
    return result, logs


def test_stderr_debug_is_the_one_way_into_the_containers_stderr():
    result, logs = run_and_log(SCRUN_STDERR_DEBUG="info")
    assert result.returncode == 0, result.stderr
    assert result.stdout == logs.stdout == b"out\n"
    lines = logs.stderr.decode().splitlines()
    assert "err" in lines
    assert any(" INFO scrun_rest.anchor: submitted job " in line for line in lines), lines


SYSLOG_SAVED = "/dev/log.saved-by-tests"


@pytest.fixture
def syslog(unavailable):
    """A stand-in for the system logger: a datagram socket at /dev/log that
    keeps what arrives. The anchor logs to /dev/log and nowhere else, so a
    system logger's socket there (the testbed runs none) is moved aside for
    the test, gets every message passed on, and is put back after."""
    if os.path.lexists(SYSLOG_SAVED):  # a run that died half way
        os.replace(SYSLOG_SAVED, "/dev/log")
    moved = os.path.lexists("/dev/log")
    if moved:
        try:
            os.rename("/dev/log", SYSLOG_SAVED)
        except OSError as exc:  # a mount point, or /dev read-only
            unavailable("cannot move the system logger's /dev/log aside: %s" % exc)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/dev/log")
    os.chmod("/dev/log", 0o666)
    relay = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    received = []

    def collect():
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                return
            received.append(data.decode("utf-8", "replace"))
            if moved:
                try:
                    relay.sendto(data, SYSLOG_SAVED)
                except OSError:
                    pass
    threading.Thread(target=collect, daemon=True).start()
    try:
        yield received
    finally:
        os.unlink("/dev/log")
        if moved:
            os.replace(SYSLOG_SAVED, "/dev/log")
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        relay.close()


def test_syslog_debug_sends_the_anchors_log_to_syslog_only(syslog):
    result, logs = run_and_log(SCRUN_SYSLOG_DEBUG="info")
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    assert (logs.stdout, logs.stderr) == (b"out\n", b"err\n")
    assert testbed.wait_until(lambda: any("submitted job" in m for m in syslog), 5), syslog
    # Others log here too (runuser's PAM): ours carry our tag and the
    # anchor's pid after the priority, as syslog(3) writes it.
    ours = [m for m in syslog if "scrun-rest" in m]
    assert all(re.match(r"<\d+>scrun-rest\[\d+\]: ", m) for m in ours), ours
    assert not any("job request" in m for m in ours), ours  # a DEBUG line
    with open(testbed.HOME + "/.config/scrun-rest/jwt") as handle:
        token = handle.read().strip()
    assert not any(token in m for m in syslog)
