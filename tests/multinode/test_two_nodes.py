"""One container as a 2-task step across n1 and n2, from the login host."""
import os

import pytest

from . import cluster
from .cluster import IMAGE, podman

TWO = ("-e", "SCRUN_JOB_NUM_NODES=2", "-e", "SCRUN_NTASKS=2")
RUN = ("run", "--rm", "--network=none") + TWO


def lines(data):
    return sorted(data.decode().splitlines())


def test_both_tasks_output_arrives_from_both_nodes():
    result = podman(*RUN, IMAGE, "sh", "-c",
                    "for i in 1 2 3; do echo $SLURM_PROCID-$i-$SLURM_TOPOLOGY_ADDR; done; "
                    "echo err-$SLURM_PROCID >&2")
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == ["0-%d-n1" % i for i in (1, 2, 3)] + \
        ["1-%d-n2" % i for i in (1, 2, 3)]
    assert lines(result.stderr) == ["err-0", "err-1"]


def test_stdin_goes_to_task_0_only():
    data = os.urandom(1 << 20)
    result = podman("run", "--rm", "-i", "--network=none", *TWO, IMAGE,
                    "sh", "-c", "echo $SLURM_PROCID $(wc -c)", input=data)
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == ["0 %d" % len(data), "1 0"]


@pytest.mark.parametrize("codes", [(5, 2), (2, 9), (0, 0)])
def test_exit_code_is_the_highest_task_exit_code(codes):
    script = "[ $SLURM_PROCID = 0 ] && exit %d; exit %d" % codes
    result = podman(*RUN, IMAGE, "sh", "-c", script)
    assert result.returncode == max(codes), result.stderr


def test_a_kill_reaches_every_task():
    started = podman("run", "-d", "--network=none", *TWO, IMAGE, "sh", "-c",
                     "trap 'echo $SLURM_PROCID got TERM; exit $((10 + SLURM_PROCID))' TERM; "
                     "echo $SLURM_PROCID up; while :; do sleep 0.1; done")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.decode().strip()
    try:
        assert cluster.wait_until(
            lambda: lines(podman("logs", cid).stdout) == ["0 up", "1 up"], 15)
        assert podman("kill", "-s", "TERM", cid).returncode == 0
        waited = podman("wait", cid)
        assert waited.stdout.strip() == b"11", waited
        assert lines(podman("logs", cid).stdout) == ["0 got TERM", "0 up", "1 got TERM", "1 up"]
    finally:
        podman("rm", "-f", "-t", "0", cid)


def test_labelio_prefixes_lines_as_srun_l_does():
    script = "printf 'one\\ntwo\\n'; echo err >&2"
    ours = podman(*RUN, "-e", "SCRUN_LABELIO=1", IMAGE, "sh", "-c", script)
    assert ours.returncode == 0, ours.stderr
    # The oracle: srun -l with the same tasks, run on the cluster itself.
    srun = cluster.slurm("srun", "-l", "-N2", "-n2", "sh", "-c", script, user=cluster.USER)
    assert srun.returncode == 0, srun.stderr
    assert lines(ours.stdout) == sorted(srun.stdout.splitlines()) == \
        ["0: one", "0: two", "1: one", "1: two"]
    assert lines(ours.stderr) == sorted(srun.stderr.splitlines()) == ["0: err", "1: err"]


LUA = """
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id,
                              group_id, job_env)
  local status, output = slurm.remote_command("echo ran on $SLURMD_NODENAME")
  local f = io.open("%(out)s", "w")
  f:write("status=" .. tostring(status) .. "\\n" .. output)
  f:close()
  return slurm.SUCCESS
end
function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path,
                               spool_dir, config_file, job_id, user_id, group_id)
  return slurm.SUCCESS
end
return slurm.SUCCESS
"""


def test_lua_remote_command_runs_on_both_nodes():
    with cluster.user_dir() as scratch:
        out = os.path.join(scratch, "remote.out")
        script = os.path.join(scratch, "scrun.lua")
        with open(script, "w") as handle:
            handle.write(LUA % {"out": out})
        os.chmod(script, 0o644)
        with cluster.login_runtime(scratch, {"LuaScript": script}) as runtime:
            result = podman(*RUN, IMAGE, "echo", "hi", runtime=runtime)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"hi\nhi\n"
        with open(out) as handle:
            text = handle.read().splitlines()
    assert text[0] == "status=0"
    assert sorted(text[1:]) == ["ran on n1", "ran on n2"]
