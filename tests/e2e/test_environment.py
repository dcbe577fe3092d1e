"""SCRUN_* job input variables reach Slurm; Slurm's variables reach the container.

What Slurm recorded is read back through slurmrestd. Settings a running job
cannot show on this one-node testbed (a dependency, exclusive use, a
constraint, a reservation) are checked on a job kept pending on purpose.
"""
import json
import os
import re
import shutil
import socket
import subprocess

import pytest

from . import testbed
from .testbed import IMAGE, podman, rest_job, user_jobs, wait_until
from .user_config import user_config

RUN = ("run", "--rm", "--network=none")
# Names of the Slurm objects these tests add for a moment, per test user so
# parallel runs do not collide.
TAG = "e2e_" + testbed.USER


def env_args(**variables):
    args = []
    for key, value in variables.items():
        args += ["-e", "%s=%s" % (key, value)]
    return args


def lines_of(output):
    return output.decode().splitlines()


def scontrol(*args, check=True):
    return subprocess.run(["scontrol"] + list(args), capture_output=True, text=True,
                          check=check)


# -- a running job -----------------------------------------------------------
def test_a_running_job_carries_the_requested_settings():
    # The container's environment may not pick the job's working directory
    # (Slurm writes output files there): scrun-rest.conf may.
    with user_config(SCRUN_WORKING_DIR=testbed.HOME):
        result = podman(*RUN, *env_args(
            SCRUN_PARTITION="other", SCRUN_TIMELIMIT="5:00", SCRUN_JOB_NAME="e2e-settings",
            SCRUN_JOB_NUM_NODES="1", SCRUN_JOB_NODELIST="localhost", SCRUN_NTASKS="2",
            SCRUN_MEM_PER_NODE="100M", SCRUN_ACCOUNT="e2eacct", SCRUN_LABELIO="1"),
            IMAGE, "sh", "-c",
            "echo job=$SLURM_JOB_ID tasks=$SLURM_NTASKS part=$SLURM_JOB_PARTITION")
    assert result.returncode == 0, result.stderr
    lines = sorted(lines_of(result.stdout))
    # Two tasks, each line labelled with its task number (SCRUN_LABELIO).
    assert [line.split(":", 1)[0] for line in lines] == ["0", "1"], lines
    job_id = re.search(r"job=(\d+)", lines[0]).group(1)
    assert all(line.endswith("job=%s tasks=2 part=other" % job_id) for line in lines), lines
    job = rest_job(job_id)
    assert (job["partition"], job["time_limit"], job["name"]) == ("other", 5, "e2e-settings")
    assert (job["node_count"], job["tasks"], job["memory_per_node"]) == (1, 2, 100)
    assert (job["account"], job["required_nodes"]) == ("e2eacct", "localhost")
    assert job["current_working_directory"] == testbed.HOME


def test_the_job_runs_in_tmp_unless_asked():
    result = podman(*RUN, IMAGE, "sh", "-c", "echo $SLURM_JOB_ID")
    assert result.returncode == 0, result.stderr
    assert rest_job(result.stdout.decode().strip())["current_working_directory"] == "/tmp"


# -- a job kept pending --------------------------------------------------------
@pytest.fixture
def held_job():
    """A job of the test user that never runs: something to depend on."""
    out = testbed.as_user(["sbatch", "--parsable", "--hold", "-o", "/dev/null",
                           "--wrap", "true"])
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.decode().strip().split(";")[0]
    yield job_id
    subprocess.run(["scancel", job_id])


@pytest.fixture
def exclusive_partition():
    """The testbed's partitions force sharing, which hides --exclusive."""
    name = TAG + "_excl"
    scontrol("delete", "PartitionName=" + name, check=False)
    scontrol("create", "PartitionName=" + name, "Nodes=localhost", "OverSubscribe=NO",
             "MaxTime=INFINITE", "State=UP")
    yield name
    scontrol("delete", "PartitionName=" + name, check=False)


def _node_features():
    text = scontrol("show", "node", "localhost").stdout
    found = {}
    for key in ("AvailableFeatures", "ActiveFeatures"):
        value = re.search(key + r"=(\S*)", text).group(1)
        found[key] = [] if value in ("", "(null)") else value.split(",")
    return found


@pytest.fixture
def node_feature():
    """A feature on the node for SCRUN_CONSTRAINT; the node's own are kept."""
    name = TAG + "_feature"
    before = _node_features()
    scontrol("update", "NodeName=localhost",
             *["%s=%s" % (key, ",".join(values + [name])) for key, values in before.items()])
    yield name
    now = _node_features()
    scontrol("update", "NodeName=localhost",
             *["%s=%s" % (key, ",".join(v for v in values if v != name))
               for key, values in now.items()])


@pytest.fixture
def reservation():
    """A reservation so far ahead that it holds nobody's job up today."""
    name = TAG + "_resv"
    scontrol("delete", "ReservationName=" + name, check=False)
    scontrol("create", "reservation", "ReservationName=" + name, "Users=" + testbed.USER,
             "Nodes=localhost", "StartTime=now+400days", "Duration=1", "Flags=IGNORE_JOBS")
    yield name
    scontrol("delete", "ReservationName=" + name, check=False)


@pytest.fixture
def user_dir():
    path = "/tmp/scrun-e2e-%s-%d" % (testbed.USER, os.getpid())
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    subprocess.run(["chown", testbed.USER, path], check=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_pending_job_carries_dependency_exclusive_constraint_reservation(
        held_job, exclusive_partition, node_feature, reservation, user_dir):
    log_file = user_dir + "/anchor.log"
    # create returns after CreateTimeout while the job pends.
    with user_config(CreateTimeout="1", SCRUN_DEBUG="debug", SCRUN_LOG_FILE=log_file):
        started = podman("run", "-d", "--network=none", *env_args(
            SCRUN_DEPENDENCY="afterok:" + held_job, SCRUN_PARTITION=exclusive_partition,
            SCRUN_EXCLUSIVE="user", SCRUN_CONSTRAINT=node_feature,
            SCRUN_RESERVATION=reservation, SCRUN_CPUS_PER_TASK="2", SCRUN_QOS="e2eqos"),
            IMAGE, "true")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    try:
        job_id = wait_until(lambda: (testbed.container_state(cid) or {}).get("job_id"), 10)
        job = rest_job(job_id)
        assert job["job_state"] == "PENDING"
        assert job["dependency"].startswith("afterok:%s" % held_job), job["dependency"]
        assert job["shared"] == "user"
        assert job["features"] == node_feature
        assert job["resv_name"] == reservation
        assert job["minimum_cpus_per_node"] == 2  # slurmrestd 22.05 shows cpus_per_task null
        # Without accounting (this testbed) slurmctld drops the QOS; the
        # anchor's debug log shows what it submitted.
        with open(log_file) as handle:
            assert "('qos', 'e2eqos')" in handle.read()
    finally:
        removed = podman("rm", "-f", cid)
    assert removed.returncode == 0, removed.stderr
    assert wait_until(lambda: rest_job(job_id)["job_state"] == "CANCELLED", 10)


# -- refused settings ----------------------------------------------------------
@pytest.mark.parametrize("variable,value", [
    ("SCRUN_TIMELIMIT", "abc"), ("SCRUN_NTASKS", "-2"), ("SCRUN_MEM_PER_NODE", "lots"),
])
def test_a_malformed_value_fails_create_naming_the_variable(variable, value):
    before = user_jobs()
    result = podman(*RUN, "-e", "%s=%s" % (variable, value), IMAGE, "true")
    assert result.returncode == 126
    assert "%s=%s is invalid" % (variable, value) in result.stderr.decode()
    assert user_jobs() == before


def test_a_malformed_value_in_the_config_file_fails_create_too():
    with user_config(SCRUN_WORKING_DIR="relative"):
        result = podman(*RUN, IMAGE, "true")
    assert result.returncode == 126
    assert "SCRUN_WORKING_DIR=relative is invalid" in result.stderr.decode()


def test_the_containers_environment_cannot_act_outside_the_container(user_dir):
    """An image's ENV lands in process.env as `-e` does: a prolog there would
    run on the node as the user, a log file would be appended to."""
    witness, log_file = user_dir + "/prolog-ran", user_dir + "/chosen.log"
    prolog = user_dir + "/prolog"
    with open(prolog, "w") as handle:
        handle.write("#!/bin/sh\ntouch %s\n" % witness)
    os.chmod(prolog, 0o755)
    result = podman(*RUN, *env_args(SCRUN_TASK_PROLOG=prolog, SCRUN_PROLOG=prolog,
                                    SCRUN_LOG_FILE=log_file, SCRUN_DEBUG="debug5"),
                    IMAGE, "true")
    assert result.returncode == 0, result.stderr
    assert not os.path.exists(witness) and not os.path.exists(log_file)


def test_a_variable_the_api_cannot_express_is_an_error():
    # slurmrestd v0.0.38 (Slurm 22.05) has no field for --clusters.
    result = podman(*RUN, "-e", "SCRUN_CLUSTERS=elsewhere", IMAGE, "true")
    assert result.returncode == 126
    assert "SCRUN_CLUSTERS cannot be expressed by slurmrestd API v0.0.38" in \
        result.stderr.decode()


# -- where settings come from --------------------------------------------------
ROOTFS = "/var/lib/scrun-testbed/busybox-rootfs"


@pytest.fixture
def bundle():
    path = "/tmp/scrun-e2e-env-bundle-%s" % testbed.USER
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(ROOTFS, path + "/rootfs", symlinks=True)
    subprocess.run(["runc", "spec", "--rootless", "--bundle", path], check=True)
    subprocess.run(["chown", "-R", testbed.USER, path], check=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _set_process_env(bundle, entries):
    with open(bundle + "/config.json") as handle:
        config = json.load(handle)
    config["process"].update(terminal=False, args=["true"])
    config["process"]["env"] = config["process"].get("env", []) + entries
    with open(bundle + "/config.json", "w") as handle:
        json.dump(config, handle)


def _create(bundle, **env):
    return testbed.as_user([testbed.RUNTIME, "create", "--bundle", bundle, "e2e-env-source"],
                           env=env)


def test_create_takes_settings_from_its_environment(bundle):
    _set_process_env(bundle, [])
    result = _create(bundle, SCRUN_PARTITION="nosuch")
    assert result.returncode != 0
    assert "Invalid partition name specified" in result.stderr.decode()


def test_config_json_wins_over_the_environment_of_create(bundle):
    _set_process_env(bundle, ["SCRUN_PARTITION=nosuch"])
    result = _create(bundle, SCRUN_PARTITION="other")
    assert result.returncode != 0
    assert "Invalid partition name specified" in result.stderr.decode()


# -- inside the container ------------------------------------------------------
def test_slurms_variables_reach_the_container_beside_its_own(user_dir):
    cidfile = user_dir + "/cid"
    result = podman(*RUN, "--cidfile", cidfile, "-e", "SLURM_JOB_NAME=mine",
                    "-e", "OWN=value", IMAGE, "env")
    assert result.returncode == 0, result.stderr
    with open(cidfile) as handle:
        cid = handle.read().strip()
    env = dict(line.split("=", 1) for line in lines_of(result.stdout) if "=" in line)
    job = rest_job(env["SLURM_JOB_ID"])
    assert env["SLURM_JOB_NODELIST"] == job["nodes"] == "localhost"
    assert env["SLURM_JOB_NUM_NODES"] == "1"
    assert env["SLURM_JOB_PARTITION"] == job["partition"] == "debug"
    assert env["SLURM_NTASKS"] == "1"
    assert env["SLURM_CLUSTER_NAME"] == job["cluster"] == "testbed"
    assert env["SLURM_SUBMIT_HOST"] == socket.gethostname()
    assert env["SLURM_CONTAINER_ID"] == cid
    assert env["SLURM_CONTAINER"].endswith("/userdata")
    # The image's own environment and the caller's -e stay as they were.
    assert env["PATH"].startswith("/usr/local/sbin")
    assert env["OWN"] == "value" and env["SLURM_JOB_NAME"] == "mine"
    assert not [key for key in env if key.startswith("SCRUN_REST") or key == "SLURM_JWT"]
