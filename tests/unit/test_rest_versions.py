"""The version table: submit bodies per API version and normalised job results."""
import json
import pathlib

import pytest

from scrun_rest.rest import versions
from scrun_rest.rest.errors import InvalidField, UnsupportedField
from scrun_rest.rest.model import JobState

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "rest"
ALL = versions.NEWEST_FIRST
NEW = [v for v in ALL if v != "v0.0.38"]


def fixture(version, name):
    return json.loads((FIXTURES / version / (name + ".json")).read_text())


def fixture_versions(name):
    return [v for v in ALL if (FIXTURES / v / (name + ".json")).exists()]


BASE = {"script": "#!/bin/sh\ntrue\n", "environment": {"PATH": "/bin", "A": "b=c"}}


def body(version, **fields):
    return versions.submit_body(version, dict(BASE, **fields))


# -- submit bodies -------------------------------------------------------------------

def test_environment_dict_for_v38_list_after():
    assert body("v0.0.38")["job"]["environment"] == {"PATH": "/bin", "A": "b=c"}
    for version in NEW:
        assert body(version)["job"]["environment"] == ["PATH=/bin", "A=b=c"]
        assert body(version)["script"] == BASE["script"]


@pytest.mark.parametrize("environment", [None, {}, {"A": 1}, {"A=B": "x"}, ["A=B"]])
def test_environment_must_be_a_dict_of_strings(environment):
    with pytest.raises(InvalidField) as info:
        versions.submit_body("v0.0.38", {"script": "x", "environment": environment})
    assert info.value.field == "environment"


def test_script_is_required():
    with pytest.raises(InvalidField, match="script"):
        versions.submit_body("v0.0.44", {"environment": {"A": "b"}})


def test_fields_every_version_takes_unchanged():
    fields = dict(name="n", partition="p", account="a", qos="q", tasks=2, cpus_per_task=3,
                  memory_per_node=1024, current_working_directory="/tmp", nodes="1-2",
                  standard_output="/o", standard_error="/e", standard_input="/dev/null",
                  container="/b", time_limit=5)
    for version in ALL:
        job = body(version, **fields)["job"]
        for key, value in fields.items():
            assert job[key] == value, (version, key)


def test_unlimited_time():
    assert body("v0.0.38", time_limit="INFINITE")["job"]["time_limit"] == "INFINITE"
    for version in NEW:
        assert body(version, time_limit="INFINITE")["job"]["time_limit"] == {
            "set": False, "infinite": True, "number": 0}


def test_requeue_false_needs_no_requeue_on_v38():
    # 22.05 sets requeue for "requeue" whatever its value is.
    assert body("v0.0.38", requeue=False)["job"] == dict(
        body("v0.0.38")["job"], no_requeue=True)
    assert body("v0.0.38", requeue=True)["job"]["requeue"] is True
    for version in NEW:
        assert body(version, requeue=False)["job"]["requeue"] is False


@pytest.mark.parametrize("value,v38,v39,v40", [
    (True, "exclusive", True, ["none"]),
    ("user", "user", "user", ["user"]),
    ("mcs", "mcs", "mcs", ["mcs"]),
])
def test_exclusive(value, v38, v39, v40):
    assert body("v0.0.38", exclusive=value)["job"]["exclusive"] == v38
    assert body("v0.0.39", exclusive=value)["job"]["exclusive"] == v39
    for version in ALL[:-2]:
        assert body(version, exclusive=value)["job"]["shared"] == v40
    assert "exclusive" not in body("v0.0.44", exclusive=False)["job"]


def test_gpu_fields_become_tres_after_v38():
    fields = dict(gpus="2", gpus_per_node="a100:1", gres="shard:2,gres/foo:1",
                  gpus_per_task="1", tres_per_task="cpu:2", cpus_per_gpu=4,
                  memory_per_gpu=2048, gpu_bind="closest", gpu_freq="low")
    v38 = body("v0.0.38", **{k: v for k, v in fields.items() if k != "tres_per_task"})["job"]
    assert v38["gpus"] == "2" and v38["gpu_binding"] == "closest" and v38["cpus_per_gpu"] == 4
    for version in NEW:
        job = body(version, **fields)["job"]
        assert job["tres_per_job"] == "gres/gpu:2"
        assert set(job["tres_per_node"].split(",")) == {
            "gres/gpu:a100:1", "gres/shard:2", "gres/foo:1"}
        assert set(job["tres_per_task"].split(",")) == {"gres/gpu:1", "cpu:2"}
        assert job["cpus_per_tres"] == "gres/gpu:4"
        assert job["memory_per_tres"] == "gres/gpu:2048"
        assert job["tres_bind"] == "gres/gpu:closest" and job["tres_freq"] == "gpu:low"


def test_flags_from_several_fields_are_merged():
    job = body("v0.0.44", spread_job=True, use_min_nodes=True, gres_flags="enforce-binding")["job"]
    assert sorted(job["flags"]) == ["GRES_BINDING_ENFORCED", "PREFER_MINIMUM_NODE_COUNT",
                                    "SPREAD_JOB"]
    assert "flags" not in body("v0.0.44", spread_job=False)["job"]
    v38 = body("v0.0.38", spread_job=True, use_min_nodes=True)["job"]
    assert v38["spread_job"] is True and v38["minimum_nodes"] is True


def test_gres_disable_binding_spelling():
    flags = lambda v: body(v, gres_flags="disable-binding")["job"]["flags"]  # noqa: E731
    assert flags("v0.0.39") == ["GRED_BINDING_DISABLED"]
    assert flags("v0.0.42") == ["GRES_BINDING_DISABLED"]
    with pytest.raises(UnsupportedField):
        body("v0.0.40", gres_flags="disable-binding")


def test_signal_becomes_kill_warning():
    assert body("v0.0.38", signal="B:USR1@90")["job"]["signal"] == "B:USR1@90"
    job = body("v0.0.41", signal="B:SIGUSR1@90")["job"]
    assert (job["kill_warning_signal"], job["kill_warning_delay"], job["kill_warning_flags"]) == (
        "USR1", 90, ["BATCH_JOB"])
    job = body("v0.0.44", signal="10")["job"]
    assert (job["kill_warning_signal"], job["kill_warning_delay"]) == ("10", 60)
    assert "kill_warning_flags" not in job
    with pytest.raises(InvalidField, match="signal"):
        body("v0.0.44", signal="@@")


def test_minute_fields_become_seconds_after_v38():
    assert body("v0.0.38", delay_boot=5)["job"]["delay_boot"] == 5
    assert body("v0.0.43", delay_boot=5, wait_for_switch=2)["job"]["delay_boot"] == 300
    assert body("v0.0.43", wait_for_switch=2)["job"]["wait_for_switch"] == 120


def test_other_renamed_and_reshaped_fields():
    v38 = body("v0.0.38", required_nodes="n[1-2]", excluded_nodes="n3", tasks_per_core=1,
               ntasks_per_gpu=2, open_mode="a", profile="task", hold=True)["job"]
    assert (v38["nodelist"], v38["exclude_nodes"], v38["ntasks_per_core"], v38["ntasks_per_gpu"],
            v38["open_mode"], v38["profile"], v38["hold"]) == (
        "n[1-2]", "n3", 1, 2, "append", "task", True)
    new = body("v0.0.42", required_nodes="n[1-2]", excluded_nodes="n3", tasks_per_core=1,
               ntasks_per_gpu=2, open_mode="truncate", profile="all", hold=True)["job"]
    assert (new["required_nodes"], new["excluded_nodes"], new["tasks_per_core"],
            new["ntasks_per_tres"], new["open_mode"], new["hold"]) == (
        "n[1-2]", "n3", 1, 2, ["TRUNCATE"], True)
    assert new["profile"] == ["ENERGY", "LUSTRE", "NETWORK", "TASK"]


@pytest.mark.parametrize("field,value,unsupported", [
    ("overcommit", True, ["v0.0.38"]),
    ("network", "sn_all", ["v0.0.38"]),
    ("clusters", "c2", ["v0.0.38"]),
    ("required_switches", 2, ["v0.0.38"]),
    ("tres_per_task", "cpu:2", ["v0.0.38"]),
    ("distribution", "block", ["v0.0.39", "v0.0.40"]),
    ("cores_per_socket", 4, ["v0.0.39", "v0.0.41", "v0.0.42", "v0.0.43", "v0.0.44"]),
    ("power", "level", [v for v in ALL if v != "v0.0.39"]),
])
def test_fields_a_version_cannot_express(field, value, unsupported):
    for version in ALL:
        if version in unsupported:
            with pytest.raises(UnsupportedField) as info:
                body(version, **{field: value})
            assert info.value.field == field and info.value.api_version == version
            assert field in str(info.value) and version in str(info.value)
            assert not versions.supports(version, field)
        else:
            body(version, **{field: value})
            assert versions.supports(version, field)


@pytest.mark.parametrize("field,value", [
    ("tasks", "many"), ("tasks", -1), ("tasks", True), ("nodes", "2-"), ("requeue", "no"),
    ("name", ""), ("name", "a\nb"), ("exclusive", "sometimes"), ("open_mode", "x"),
    ("profile", "disk"), ("time_limit", "soon"),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(InvalidField) as info:
        body("v0.0.44", **{field: value})
    assert info.value.field == field


def test_unknown_field_and_conflicts():
    with pytest.raises(InvalidField, match="not a job request field"):
        body("v0.0.38", colour="blue")
    with pytest.raises(InvalidField, match="conflicts"):
        body("v0.0.44", ntasks_per_gpu=1, ntasks_per_tres=2)


def test_none_values_are_left_out():
    assert body("v0.0.44", partition=None, time_limit=None)["job"] == body("v0.0.44")["job"]


def test_every_job_options_field_is_known():
    """Each SCRUN_* job field the runtime's table produces has a rule here."""
    job_options = pytest.importorskip("scrun_rest.job_options")
    fields = {entry[0] for entry in job_options.TABLE.values() if entry[0]}
    assert fields and fields <= set(versions.FIELD_RULES)


# -- answers ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", fixture_versions("job_completed_exit3"))
def test_exit_code_3(version):
    record = fixture(version, "job_completed_exit3")
    job_id = record["body"]["jobs"][0]["job_id"]
    info = versions.job_info(version, record["body"], job_id)
    assert info.state is JobState.FAILED and info.state.is_terminal
    assert (info.exit_status, info.exit_signal) == (3, None)
    assert info.job_id == job_id and info.raw["job_id"] == job_id
    assert info.start_time and info.end_time >= info.start_time


@pytest.mark.parametrize("version", fixture_versions("job_killed_sigterm"))
def test_killed_by_sigterm(version):
    record = fixture(version, "job_killed_sigterm")
    job_id = record["body"]["jobs"][0]["job_id"]
    info = versions.job_info(version, record["body"], job_id)
    assert info.state.is_terminal
    assert (info.exit_status, info.exit_signal) == (None, 15)


@pytest.mark.parametrize("version", fixture_versions("job_pending"))
def test_pending(version):
    record = fixture(version, "job_pending")
    job_id = record["body"]["jobs"][0]["job_id"]
    info = versions.job_info(version, record["body"], job_id)
    assert info.state is JobState.PENDING and not info.state.is_terminal
    assert info.exit_status is None and info.exit_signal is None
    assert info.start_time is None or info.start_time > 0


@pytest.mark.parametrize("version", fixture_versions("job_running"))
def test_running(version):
    record = fixture(version, "job_running")
    job_id = record["body"]["jobs"][0]["job_id"]
    info = versions.job_info(version, record["body"], job_id)
    assert info.state is JobState.RUNNING and info.nodes and info.partition
    assert info.user_name and info.name


@pytest.mark.parametrize("version", fixture_versions("job_cancelled"))
def test_cancelled(version):
    record = fixture(version, "job_cancelled")
    job_id = record["body"]["jobs"][0]["job_id"]
    assert versions.job_info(version, record["body"], job_id).state is JobState.CANCELLED


@pytest.mark.parametrize("version", fixture_versions("job_completing_exit3"))
def test_completing_is_not_terminal_but_has_the_exit_code(version):
    record = fixture(version, "job_completing_exit3")
    info = versions.job_info(version, record["body"], record["body"]["jobs"][0]["job_id"])
    assert info.state is JobState.COMPLETING and not info.state.is_terminal
    assert info.exit_status == 3


def test_other_job_in_answer_is_not_taken():
    record = fixture("v0.0.44", "job_running")
    assert versions.job_info("v0.0.44", record["body"], 999) is None
    assert versions.job_info("v0.0.44", {"jobs": "x"}, 43) is None


@pytest.mark.parametrize("value,state", [
    ("RUNNING", JobState.RUNNING), ("COMPLETING", JobState.COMPLETING),
    ("CONFIGURING", JobState.RUNNING), ("REQUEUE_HOLD", JobState.REQUEUED),
    ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY), ("STOPPED", JobState.SUSPENDED),
    (["CANCELLED", "COMPLETING"], JobState.COMPLETING),
    (["RUNNING", "CONFIGURING"], JobState.RUNNING),
    (["PENDING", "REQUEUED"], JobState.REQUEUED), (["TIMEOUT"], JobState.TIMEOUT),
    ("WEIRD", JobState.UNKNOWN), (None, JobState.UNKNOWN), ([], JobState.UNKNOWN),
])
def test_state_normalisation(value, state):
    assert versions._state(value) is state


@pytest.mark.parametrize("raw,result", [
    (0, (0, None)), (768, (3, None)), (15, (None, 15)), (9, (None, 9)),
    (0x8B, (None, 11)), (versions.NO_VAL, (None, None)), (None, (None, None)), ("x", (None, None)),
])
def test_wait_status(raw, result):
    assert versions._from_wait_status(raw) == result


@pytest.mark.parametrize("version", ALL)
def test_submit_answers(version):
    assert versions.submitted_job_id(version, fixture(version, "submit_ok")["body"]) > 0
    record = fixture(version, "submit_bad_partition")
    errors = versions.errors_of(version, record["body"])
    assert errors and errors[0][0] == 2000 and "partition" in errors[0][1].lower()


def test_v38_mixed_error_entries():
    payload = {"errors": [{"error": "environment must be set", "error_code": 2031},
                          {"description": "d", "error_number": 9001, "error": "e", "source": "s"},
                          "odd", {}]}
    assert versions.errors_of("v0.0.38", payload) == [
        (2031, "environment must be set"), (9001, "d; e"), (None, "odd"), (None, "unknown error")]
    assert versions.errors_of("v0.0.44", payload)[0] == (None, "environment must be set")


@pytest.mark.parametrize("version", ALL)
def test_release_and_ping(version):
    payload = fixture(version, "ping")["body"]
    release = versions.release_of(version, payload)
    assert release and release[:2].isdigit()
    controllers = versions.controllers(version, payload)
    assert controllers and all(c.up for c in controllers)


def test_delete_status_lists():
    payload = fixture("v0.0.42", "delete_unknown")["body"]
    assert versions.delete_failures("v0.0.42", payload) == [(2017, "Invalid job id specified")]
    assert versions.delete_failures("v0.0.41", {"errors": []}) == []
    # A status list is read whatever the version: it is the only place per-job
    # failures appear once slurm_kill_jobs() sends the signal (24.11+).
    assert versions.delete_failures("v0.0.41", payload) == [(2017, "Invalid job id specified")]
    done = {"status": [{"error": {"code": 2021, "message": "already done"}}]}
    assert versions.delete_failures("v0.0.44", done) == []


# -- v0.0.45 (Slurm 26.05) -------------------------------------------------------------

def test_v45_ping_has_no_pinged_or_mode():
    # PARSER_ARRAY(CONTROLLER_PING) in src/plugins/data_parser/v0.0.45/parsers.c
    # (26.05): hostname, responding, latency, primary, status; "pinged" and
    # "mode" are gone ("Remove fields that were deprecated in from v0.0.44",
    # CHANGELOG/slurm-26.05.md, 26.05.0).
    body = fixture("v0.0.45", "ping")["body"]
    assert "pinged" not in body["pings"][0] and "mode" not in body["pings"][0]
    [ctl] = versions.controllers("v0.0.45", body)
    assert (ctl.hostname, ctl.up, ctl.mode, ctl.status) == ("vm", True, "primary", "No error")
    [ctl] = versions.controllers("v0.0.45", fixture("v0.0.45", "ping_bad_token")["body"])
    assert not ctl.up and ctl.status == "Protocol authentication error"
    backup = {"pings": [{"hostname": "b", "responding": True, "primary": False}]}
    assert versions.controllers("v0.0.45", backup)[0].mode == "backup"


def test_v45_takes_cores_per_socket_again():
    # JOB_DESC_MSG of src/plugins/data_parser/v0.0.45/parsers.c (26.05) has
    # cores_per_socket; v0.0.44's has none ("slurmrestd - Add cores_per_socket
    # to job submission", CHANGELOG/slurm-26.05.md).
    assert body("v0.0.45", cores_per_socket=4)["job"]["cores_per_socket"] == 4
    assert versions.supports("v0.0.45", "cores_per_socket")
    assert not versions.supports("v0.0.44", "cores_per_socket")


def test_v45_job_descriptions_still_take_shared():
    # 26.05 deprecates "shared" in job *answers* (JOB_INFO); JOB_DESC_MSG of
    # v0.0.45 (and of master's v0.0.46) still parses "shared" with the
    # JOB_SHARED flags none/oversubscribe/user/mcs/topo, and has no
    # "oversubscribe" or "exclusive" key, so submissions keep writing "shared".
    assert body("v0.0.45", exclusive=True)["job"]["shared"] == ["none"]
    assert body("v0.0.45", exclusive="topo")["job"]["shared"] == ["topo"]
    assert "exclusive" not in body("v0.0.45", exclusive=True)["job"]


# -- /openapi/v3 -------------------------------------------------------------------------

def test_served_versions_from_paths():
    document = fixture("v0.0.38", "openapi")["body"]  # recorded from 22.05.8
    assert versions.served_versions(document) == ["v0.0.38", "v0.0.37"]
    assert versions.openapi_release(document) is None  # info.version is "0.0.38"


def test_served_versions_from_x_slurm():
    info = {"version": "Slurm-25.05.8&openapi/slurmctld&openapi/slurmdbd",
            "x-slurm": {"data_parsers": ["data_parser/v0.0.41", {"plugin": "data_parser/v0.0.43"},
                                         "data_parser/v0.0.42", "data_parser/v0.0.40"]}}
    paths = {"/slurm/v0.0.39/ping": {}}  # ignored when x-slurm names the parsers
    document = {"info": info, "paths": paths}
    assert versions.served_versions(document) == ["v0.0.43", "v0.0.42", "v0.0.41", "v0.0.40"]
    assert versions.openapi_release(document) == "25.05.8"
    info["x-slurm"]["release"] = "25.05.9"
    assert versions.openapi_release(document) == "25.05.9"
    assert versions.newer_than_known(["v0.0.47", "v0.0.46", "v0.0.45"]) == ("v0.0.47", "v0.0.46")


@pytest.mark.parametrize("document", [None, [], {}, {"info": "x", "paths": ["/slurm/v0.0.40/"]},
                                      {"info": {"x-slurm": 5}, "paths": {5: {}}}])
def test_odd_openapi_documents(document):
    assert versions.served_versions(document) == []
    assert versions.openapi_release(document) is None


# -- fixes from the source review --------------------------------------------------------

def test_gres_prefix_follows_the_release_not_the_api_version():
    # 23.02 parses GRES in TRES strings as "gres:gpu:N" only: its
    # gres_prepend_tres_type() (src/common/gres.h, slurm-23-02-7-1: 'Prepend
    # "gres:" to each gres for proper parsing with TRES functions') and
    # slurm_opt.c write that form; 23.11's src/interfaces/gres.c builds
    # "gres/gpu:%u" and parses "gres/". v0.0.39 is served by 23.02 and 23.11.
    fields = dict(gpus="2", gres="shard:1", cpus_per_gpu=4, memory_per_gpu=512,
                  gpu_bind="closest", gpu_freq="low", tres_per_task="gres/gpu:1,cpu:2")
    old = versions.submit_body("v0.0.39", dict(BASE, **fields), release="23.02.7")["job"]
    assert old["tres_per_job"] == "gres:gpu:2" and old["tres_per_node"] == "gres:shard:1"
    assert old["cpus_per_tres"] == "gres:gpu:4" and old["memory_per_tres"] == "gres:gpu:512"
    assert old["tres_bind"] == "gres:gpu:closest" and old["tres_freq"] == "gpu:low"
    assert old["tres_per_task"] == "gres:gpu:1,cpu:2"
    for release in ("23.11.10", "24.05.8", None):
        new = versions.submit_body("v0.0.39", dict(BASE, **fields), release=release)["job"]
        assert new["tres_per_job"] == "gres/gpu:2" and new["tres_per_task"] == "gres/gpu:1,cpu:2"
    assert versions.release_needed("v0.0.39", dict(BASE, gpus="1"))
    assert not versions.release_needed("v0.0.39", dict(BASE, tasks=2))
    assert not versions.release_needed("v0.0.40", dict(BASE, gpus="1"))


def test_bare_delete_answers_are_those_of_v40_v41_from_24_11():
    bare = fixture("v0.0.41", "delete_unknown_bare")["body"]
    assert versions.delete_answer_is_bare("v0.0.41", bare)
    assert versions.delete_answer_is_bare("v0.0.40", {"errors": []}, "25.05.8")
    before_24_11 = fixture("v0.0.41", "delete_ok_24.05")["body"]
    assert not versions.delete_answer_is_bare("v0.0.41", before_24_11)
    assert versions.delete_answer_is_bare("v0.0.41", fixture("v0.0.41", "delete_ok")["body"])
    assert not versions.delete_answer_is_bare("v0.0.41", dict(bare, status=[]))
    assert not versions.delete_answer_is_bare("v0.0.42", bare)
    assert not versions.delete_answer_is_bare("v0.0.39", bare)
