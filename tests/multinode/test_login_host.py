"""The login host reaches slurmrestd and nothing else of Slurm."""
import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from . import cluster
from .cluster import IMAGE, MN, podman
from e2e.testbed import OTHER_USER

RUN = ("run", "--rm", "--network=none")


def test_no_slurm_command_works_on_the_login_host():
    # The Slurm packages are installed on this machine, but neither the
    # default slurm.conf nor this cluster's own lets a client reach slurmctld.
    # (sinfo retries for 9 s before it gives up: the four run side by side.)
    calls = [(argv, env) for env in ({}, {"SLURM_CONF": MN["MN_CONF"]})
             for argv in (["scontrol", "ping"], ["sinfo", "-h"])]
    with ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(lambda call: cluster.on_login(call[0], env=call[1]), calls))
    for call, result in zip(calls, results):
        assert result.returncode != 0, (call, result.stdout)
    # The same commands from the controller's side do work: the test can fail.
    assert cluster.slurm("scontrol", "ping").returncode == 0


def test_the_login_config_names_only_slurmrestd_the_tunnel_and_a_token():
    with open(cluster.user_conf()) as handle:
        keys = [line.split("=", 1)[0].strip().lower() for line in handle
                if line.strip() and not line.lstrip().startswith("#")]
    assert sorted(keys) == ["jwtfile", "resturl", "tunnelhost"]


def test_a_container_runs_through_rest_alone():
    result = podman(*RUN, IMAGE, "sh", "-c", "echo hello from $SLURM_TOPOLOGY_ADDR; exit 3")
    assert result.returncode == 3, result.stderr
    assert re.fullmatch(rb"hello from n[12]\n", result.stdout), result.stdout
    job = cluster.last_job()
    assert job >= int(MN["MN_FIRST_JOB_ID"])
    assert cluster.job_state(job) in ("COMPLETED", "FAILED")


def test_the_anchor_listens_on_tunnel_host_and_both_nodes_dial_it():
    started = podman("run", "-d", "--network=none", "-e", "SCRUN_JOB_NUM_NODES=2",
                     "-e", "SCRUN_NTASKS=2", IMAGE, "sleep", "60")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    login = MN["MN_LOGIN_ADDR"]
    try:
        listening = cluster.wait_until(lambda: _anchor_listeners(), 10)
        assert listening and all(address.startswith(login + ":") for address in listening)
        port = listening[0].rsplit(":", 1)[1]

        def peers():
            out = cluster.in_ns("login", ["ss", "-Htn", "state", "established",
                                          "sport", "= :%s" % port], text=True).stdout
            return {line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines()}
        # The agent and task 0 dial from n1, task 1 from n2.
        wanted = {MN["MN_N1_ADDR"], MN["MN_N2_ADDR"]}
        assert cluster.wait_until(lambda: peers() >= wanted, 10), peers()
    finally:
        podman("rm", "-f", "-t", "0", cid)


def test_without_tunnel_host_the_anchor_uses_the_address_that_reaches_slurmrestd():
    # The login host's name resolves to 127.0.0.1 here, as on Debian, which
    # no node could dial.
    with cluster.user_dir() as scratch:
        with cluster.login_runtime(scratch, {"TunnelHost": None}) as runtime:
            started = podman("run", "-d", "--network=none", IMAGE, "sleep", "60",
                             runtime=runtime)
            assert started.returncode == 0, started.stderr
            cid = started.stdout.decode().strip()
            try:
                listening = cluster.wait_until(_anchor_listeners, 10)
                assert listening == [MN["MN_LOGIN_ADDR"] + ":" + listening[0].rsplit(":", 1)[1]]
                assert podman("kill", cid, runtime=runtime).returncode == 0
                assert podman("wait", cid, runtime=runtime).stdout.strip() == b"137"
            finally:
                podman("rm", "-f", "-t", "0", cid, runtime=runtime)


def _anchor_listeners():
    out = cluster.in_ns("login", ["ss", "-Htlnp"], text=True).stdout
    return [line.split()[3] for line in out.splitlines() if '"scrun-anchor"' in line]


def test_a_single_node_job_can_be_pinned_with_a_feature():
    # Features=n1/n2 stand in for required_nodes, which v0.0.38 rejects.
    for node in ("n2", "n1"):
        result = podman(*RUN, "-e", "SCRUN_CONSTRAINT=%s" % node, IMAGE,
                        "sh", "-c", "echo $SLURM_TOPOLOGY_ADDR")
        assert result.returncode == 0, result.stderr
        assert result.stdout == node.encode() + b"\n"


LOOPBACK_PORTS = (29360, 29369)  # below the ephemeral range


def test_a_node_refuses_a_loopback_tunnel_address():
    """TunnelHost=127.0.0.1 on the login host: on n1, 127.0.0.1:P is n1's
    own, where another user may listen. The agent refuses it without
    dialling, and the container fails with a line that says what to set."""
    squatter = "/tmp/scrun-squatter-mn-%d.py" % os.getpid()
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "e2e", "squatter.py"), squatter)
    os.chmod(squatter, 0o644)
    listening = subprocess.Popen(
        ["nsenter", "--net=/run/netns/n1", "runuser", "-u", OTHER_USER, "--", "python3",
         squatter, "127.0.0.1", "-", str(LOOPBACK_PORTS[0]), str(LOOPBACK_PORTS[1]),
         "120"], stdout=subprocess.PIPE, cwd="/tmp")
    try:
        assert json.loads(listening.stdout.readline())["held"]
        with cluster.user_dir() as scratch:
            settings = {"TunnelHost": "127.0.0.1",
                        "TunnelPortRange": "%d-%d" % LOOPBACK_PORTS}
            with cluster.login_runtime(scratch, settings) as runtime:
                result = podman(*RUN, "-e", "SCRUN_CONSTRAINT=n1", IMAGE, "true",
                                runtime=runtime, timeout=90)
        listening.terminate()
        heard = json.loads(listening.communicate(timeout=30)[0])
    finally:
        if listening.poll() is None:
            listening.kill()
            listening.communicate()
        os.unlink(squatter)
    assert heard["connections"] == 0, heard
    assert result.returncode != 0
    text = result.stderr.decode()
    assert "without its agent reaching the anchor at 127.0.0.1:" in text, text
    assert "a loopback address" in text and "set TunnelHost" in text, text
