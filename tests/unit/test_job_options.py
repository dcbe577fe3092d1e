"""SCRUN_* variables become job fields and srun options, or clear errors."""
import pytest

from scrun_rest import job_options, slurm_time
from scrun_rest.errors import UserError


def parse(**values):
    return job_options.parse(values)


def test_config_json_wins_over_create_environment_which_wins_over_the_file():
    values, ignored = job_options.collect(
        {"SCRUN_PARTITION": "fromfile", "SCRUN_ACCOUNT": "a"},
        {"SCRUN_PARTITION": "debug", "PATH": "/x"},
        ["SCRUN_PARTITION=other", "HOME=/root", "SCRUN_QOS=high"])
    assert values == {"SCRUN_PARTITION": "other", "SCRUN_QOS": "high", "SCRUN_ACCOUNT": "a"}
    assert ignored == []


HOST_SIDE = ["SCRUN_PROLOG", "SCRUN_EPILOG", "SCRUN_TASK_PROLOG", "SCRUN_TASK_EPILOG",
             "SCRUN_BURST_BUFFER", "SCRUN_WORKING_DIR", "SCRUN_OPEN_MODE", "SCRUN_PROFILE",
             "SCRUN_SLURMD_DEBUG", "SCRUN_DEBUG", "SCRUN_FILE_DEBUG", "SCRUN_STDERR_DEBUG",
             "SCRUN_SYSLOG_DEBUG", "SCRUN_LOG_FILE"]


@pytest.mark.parametrize("name", HOST_SIDE)
def test_the_image_cannot_set_what_acts_outside_the_container(name):
    """An image's ENV lands in process.env: it may shape the job, no more."""
    values, ignored = job_options.collect({}, {}, ["%s=/home/u/.bashrc" % name,
                                                   "SCRUN_PARTITION=debug"])
    assert values == {"SCRUN_PARTITION": "debug"} and ignored == [name]


@pytest.mark.parametrize("name", HOST_SIDE)
def test_create_environment_and_the_file_may_set_what_acts_outside(name):
    assert job_options.collect({name: "1"}, {}, [])[0] == {name: "1"}
    assert job_options.collect({}, {name: "2"}, [])[0] == {name: "2"}
    # config.json cannot override what create's environment said either.
    assert job_options.collect({}, {name: "2"}, ["%s=3" % name]) == ({name: "2"}, [name])


def test_an_ignored_variable_is_named_once():
    assert job_options.collect({}, {}, ["SCRUN_DEBUG=debug", "SCRUN_DEBUG=info"])[1] == \
        ["SCRUN_DEBUG"]


def test_the_container_may_set_the_documented_job_shaping_variables():
    """The allow-list names only table rows, and none of the host-side ones."""
    assert job_options.FROM_CONTAINER <= set(job_options.TABLE)
    assert not job_options.FROM_CONTAINER & set(HOST_SIDE)
    assert set(job_options.INPUT_VARIABLES) - job_options.FROM_CONTAINER == set(HOST_SIDE)


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


def test_every_man_page_variable_is_in_the_table(man_page):
    section = man_page.split("JOB INPUT ENVIRONMENT VARIABLES")[1].split("OUTPUT ENVIRONMENT")[0]
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


def test_every_job_field_has_a_rest_rule():
    """rest/versions.py must know every field the table names, for some version."""
    from scrun_rest.rest.versions import FIELD_RULES, NEWEST_FIRST, supports
    for name, (field, _, _) in job_options.TABLE.items():
        if field is None:
            continue
        assert field in FIELD_RULES, "%s maps to %r, which FIELD_RULES lacks" % (name, field)
        assert any(supports(version, field) for version in NEWEST_FIRST), name


def test_every_variable_reaches_slurm_or_is_ours():
    """No variable is parsed and then dropped without a word in the table."""
    silent = {"SCRUN_LABELIO", "SCRUN_OVERLAP", "SCRUN_UNBUFFEREDIO"}
    for name, (field, option, _) in job_options.TABLE.items():
        assert field or option or name in silent, name


def test_working_dir_must_be_absolute():
    assert parse(SCRUN_WORKING_DIR="/home/x").fields == {"current_working_directory": "/home/x"}
    with pytest.raises(UserError, match="SCRUN_WORKING_DIR"):
        parse(SCRUN_WORKING_DIR="relative/dir")


def test_log_settings_are_taken_from_create_environment_but_not_other_variables():
    values, _ = job_options.collect({}, {"SCRUN_DEBUG": "debug", "SCRUN_LOG_FILE": "/tmp/x.log",
                                         "SCRUN_NOT_A_THING": "1", "LD_PRELOAD": "/evil.so"}, [])
    assert values == {"SCRUN_DEBUG": "debug", "SCRUN_LOG_FILE": "/tmp/x.log"}
    options = job_options.parse(values)
    assert options.settings == values and not options.fields and not options.step_args


def test_a_field_the_api_version_lacks_is_refused_by_the_request_check():
    from scrun_rest.rest.errors import UnsupportedField
    from scrun_rest.rest.versions import submit_body
    fields = job_options.parse({"SCRUN_CLUSTERS": "c1"}).fields
    request = dict(fields, script="#!/bin/sh\n", environment={"A": "1"})
    with pytest.raises(UnsupportedField):
        submit_body("v0.0.38", request)
    assert submit_body("v0.0.40", request)["job"]["clusters"] == "c1"


def test_the_anchor_log_names_each_ignored_variable_once(tmp_path):
    from scrun_rest import log
    from scrun_rest.anchor.daemon import warn_about_ignored
    path = tmp_path / "anchor.log"
    _, ignored = job_options.collect({}, {}, ["SCRUN_TASK_PROLOG=/x", "SCRUN_LOG_FILE=/y",
                                              "SCRUN_TASK_PROLOG=/z", "SCRUN_QOS=high"])
    logger = log.LogSettings(str(path), verbosity=1).apply()
    try:
        warn_about_ignored(ignored)
        for handler in logger.handlers:
            handler.flush()
    finally:
        log.LogSettings().apply()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(" WARNING " in line for line in lines), lines
    assert "ignored SCRUN_TASK_PROLOG from config.json's process.env" in lines[0]
    assert "ignored SCRUN_LOG_FILE from" in lines[1]
