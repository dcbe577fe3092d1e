"""The agent's node-side helpers (oci.conf patterns, config edits) and its job script."""
import os
import subprocess
import sys

import pytest

from scrun_rest.agent import node_config, oci_conf, task_boot
from scrun_rest.anchor import job_script


def test_pattern_letters():
    values = {"@": "'a' 'b c'", "b": "/b", "e": "/e", "j": "7", "m": "/m", "n": "n1",
              "p": "42", "r": "/r", "s": "0", "t": "1", "u": "u", "U": "1000"}
    pattern = "runc --root=/run/user/%U/ run %n.%u.%j.%s.%t -b %b %% %@"
    # Each value is quoted; sh joins '1000' into the word around it.
    assert oci_conf.expand(pattern, values) == \
        "runc --root=/run/user/'1000'/ run 'n1'.'u'.'7'.'0'.'1' -b '/b' % 'a' 'b c'"
    with pytest.raises(oci_conf.PatternError, match="unknown %x"):
        oci_conf.expand("run %x", values)
    with pytest.raises(oci_conf.PatternError):
        oci_conf.expand("run %", values)


def test_a_bind_source_the_node_lacks_is_an_error_naming_it(podman_like_config):
    # It used to be dropped: the container then saw nothing there.
    podman_like_config["mounts"][1]["source"] = "/nonexistent/hosts"
    with pytest.raises(ValueError, match="/nonexistent/hosts of the bind mount at /etc/hosts"):
        node_config.adapt(podman_like_config, 2000, 2000, {}, False)


def test_node_oci_conf_replaces_our_runtime_commands():
    node = oci_conf.parse('# site\nRunTimeCreate="crun create %n"\nRunTimeStart=crun start %n\n')
    merged = oci_conf.merge({"RunTimeRun": "runc run", "RunTimeKill": "runc kill",
                             "SrunPath": "srun"}, node)
    assert "RunTimeRun" not in merged and "RunTimeKill" not in merged
    assert merged["RunTimeCreate"] == "crun create %n" and merged["SrunPath"] == "srun"


def test_adapt_makes_a_rootless_config(podman_like_config):
    config = node_config.adapt(podman_like_config, 2000, 2000, {"SLURM_JOB_ID": "5",
                                                                   "HOME": "/other"}, False)
    linux = config["linux"]
    assert {"type": "user"} in linux["namespaces"]
    assert {"type": "network"} in linux["namespaces"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 2000, "size": 1}]
    assert "cgroupsPath" not in linux and "resources" not in linux and "sysctl" not in linux
    assert "hooks" not in config
    assert config["mounts"][0]["options"] == ["nosuid", "newinstance", "mode=0620"]
    assert config["mounts"][1]["source"] == podman_like_config["mounts"][1]["source"]
    assert "additionalGids" not in config["process"]["user"]
    # The container's own variables win over the job's.
    assert config["process"]["env"] == ["PATH=/bin", "HOME=/root", "SLURM_JOB_ID=5"]
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert config["process"]["rlimits"][0]["hard"] <= hard or hard == resource.RLIM_INFINITY


def test_job_script_runs_the_agent_from_its_own_sources(tmp_path):
    """The script must carry everything: run it with no scrun_rest installed."""
    script = job_script.build("cid", "127.0.0.1", 9, "00" * 32, python=sys.executable,
                              dial_timeout=0)
    path = tmp_path / "job.py"
    path.write_text(script)
    result = subprocess.run([sys.executable, "-S", "-I", str(path)], capture_output=True,
                            text=True, timeout=30, cwd=str(tmp_path))
    assert result.returncode == 1
    assert "cannot reach the anchor at 127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_task_boot_decodes_sources_from_the_environment(tmp_path):
    env = {task_boot.CODE_ENV: task_boot.pack_sources(job_script.agent_sources()),
           "PATH": os.environ["PATH"]}
    result = subprocess.run(task_boot.task_argv(sys.executable), env=env, capture_output=True, text=True, timeout=30,
                            cwd=str(tmp_path))
    assert result.returncode == 2
    assert "SCRUN_REST_TASK is missing" in result.stderr


@pytest.mark.parametrize("module", sorted(job_script.AGENT_MODULES) + ["@boot"])
def test_agent_modules_parse_as_python_3_6(module):
    """Compute nodes may have an old python3: keep the grammar to 3.6."""
    import ast
    source = job_script.agent_sources()[module]
    ast.parse(source, feature_version=(3, 6))
    for banned in ("capture_output=", "text=True", ":=", "removeprefix", "asyncio.run("):
        assert banned not in source, "%s uses %s (not in Python 3.6)" % (module, banned)
