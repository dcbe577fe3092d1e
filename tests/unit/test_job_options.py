"""SCRUN_* variables become job fields and srun options, or clear errors."""
import pytest

from scrun_rest import job_options, slurm_time
from scrun_rest.errors import UserError


def parse(**values):
    return job_options.parse(values)


def test_config_json_wins_over_create_environment():
    values = job_options.collect({"SCRUN_PARTITION": "debug", "PATH": "/x"},
                                 ["SCRUN_PARTITION=other", "HOME=/root", "SCRUN_QOS=high"])
    assert values == {"SCRUN_PARTITION": "other", "SCRUN_QOS": "high"}


def test_fields_and_step_options():
    options = parse(SCRUN_PARTITION="debug", SCRUN_TIMELIMIT="1-02:03:04",
                    SCRUN_JOB_NAME="x", SCRUN_JOB_NUM_NODES="2", SCRUN_NTASKS="4",
                    SCRUN_CPUS_PER_TASK="2", SCRUN_MEM_PER_NODE="2G", SCRUN_EXCLUSIVE="user",
                    SCRUN_LABELIO="1", SCRUN_CPU_BIND="cores")
    assert options.fields == {
        "partition": "debug", "time_limit": 26 * 60 + 3 + 1, "name": "x", "nodes": "2",
        "tasks": 4, "cpus_per_task": 2, "memory_per_node": 2048, "exclusive": "user"}
    assert options.ntasks == 4 and options.labelio
    assert sorted(options.step_args) == ["--cpu-bind=cores", "--cpus-per-task=2", "--nodes=2"]


@pytest.mark.parametrize("name,value", [
    ("SCRUN_TIMELIMIT", "abc"), ("SCRUN_NTASKS", "-2"), ("SCRUN_NTASKS", "0"),
    ("SCRUN_MEM_PER_NODE", "lots"), ("SCRUN_JOB_NUM_NODES", "3-1"), ("SCRUN_PARTITION", " "),
    ("SCRUN_LABELIO", "maybe"),
])
def test_malformed_values_name_the_variable(name, value):
    with pytest.raises(UserError, match=name):
        parse(**{name: value})


def test_every_man_page_variable_is_in_the_table():
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "reference",
                        "scrun.1.txt")
    if not os.path.exists(path):
        pytest.skip("shared/reference/scrun.1.txt is not beside this checkout")
    with open(path) as handle:
        text = handle.read()
    section = text.split("JOB INPUT ENVIRONMENT VARIABLES")[1].split("OUTPUT ENVIRONMENT")[0]
    import re
    names = set(re.findall(r"^\s{7}(S(?:CRUN|LURM)_[A-Z0-9_]+)\s*$", section, re.M))
    assert names and names <= set(job_options.TABLE)


@pytest.mark.parametrize("text,minutes", [
    ("10", 10), ("10:30", 11), ("1:00:00", 60), ("2-0", 2880), ("2-1:30", 2970),
    ("1-0:0:1", 1441), ("-1", -1), ("INFINITE", -1), ("unlimited", -1),
])
def test_time_strings(text, minutes):
    assert slurm_time.to_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "1-", "-2"])
def test_bad_time_strings(text):
    with pytest.raises(ValueError):
        slurm_time.to_minutes(text)
