"""scrun.lua: loading, stage_in/stage_out and the `slurm` table (scrun(1) SCRUN.LUA)."""
import concurrent.futures
import logging
import os
import re
import textwrap

import pytest

pytest.importorskip("lupa")

from scrun_rest.errors import UserError  # noqa: E402
from scrun_rest.log import LEVELS  # noqa: E402
from scrun_rest.lua.staging import Staging  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "lua")
PASS_STAGE_OUT = """
function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path, spool_dir,
                               config_file, jobid, user_id, group_id)
  return slurm.SUCCESS
end
"""
PASS_STAGE_IN = """
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id,
                              job_env)
  return slurm.SUCCESS
end
"""


class FakeSpool:
    def __init__(self, path):
        self.dir = path
        self.socket_path = os.path.join(path, "control.sock")


# Who the job runs as, as the agent reports it.
IDENTITY = {"SCRUN_REST_USER": "alice", "SCRUN_REST_USER_ID": "1234",
            "SCRUN_REST_GROUP": "staff", "SCRUN_REST_GROUP_ID": "567"}


class FakeSetup:
    """The attributes Staging uses from AnchorSetup."""

    def __init__(self, tmp_path):
        self.container_id = "ctr1"
        self.bundle = str(tmp_path / "bundle")
        self.config_file = os.path.join(self.bundle, "config.json")
        self.rootfs = os.path.join(self.bundle, "rootfs")
        self.spool = FakeSpool(str(tmp_path / "spool"))
        self.reloads = []

    def output_env(self, job_env=None):
        env = {"SCRUN_CONTAINER_ID": self.container_id, "SCRUN_BUNDLE": self.bundle,
               "SCRUN_SPOOL_DIR": self.spool.dir, "SCRUN_ROOT": None}
        if job_env and job_env.get("SCRUN_REST_USER_ID"):
            env["SCRUN_USER_ID"] = job_env["SCRUN_REST_USER_ID"]
        return env

    def reload_bundle(self, bundle, root_path=None):
        self.reloads.append((bundle, root_path))
        self.bundle = bundle


class Remote:
    """A recording remote_command."""

    def __init__(self, status=0, output="node1\nnode2\n"):
        self.calls = []
        self.result = (status, output)

    def __call__(self, script):
        self.calls.append(script)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def setup(tmp_path):
    return FakeSetup(tmp_path)


def write(tmp_path, source, name="scrun.lua"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def load(tmp_path, setup, stage_in=PASS_STAGE_IN, stage_out=PASS_STAGE_OUT, extra=""):
    source = textwrap.dedent(extra) + textwrap.dedent(stage_in) + textwrap.dedent(stage_out)
    return Staging.load(write(tmp_path, source + "\nreturn slurm.SUCCESS\n"), setup)


def lua(staging, code):
    return staging.runtime.run(code)


def single_line(exc):
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text and "stack traceback" not in text
    return text


# -- loading -------------------------------------------------------------------
def test_man_page_minimal_script_loads_and_runs(setup):
    staging = Staging.load(os.path.join(FIXTURES, "minimal.lua"), setup)
    staging.stage_in(1, {}, Remote(), IDENTITY)
    staging.stage_out(1, Remote(), IDENTITY)
    assert setup.reloads == []
    assert lua(staging, "return _VERSION") in (b"Lua 5.4", b"Lua 5.3", b"Lua 5.2", b"Lua 5.1")


@pytest.mark.parametrize("source,expected", [
    ("x = = 1\nreturn slurm.SUCCESS\n", r"scrun.lua has a syntax error: .*scrun.lua:1: .*'='"),
    ("\n\nfunction f(\nreturn slurm.SUCCESS\n", r"syntax error: .*scrun.lua:\d+: "),
    ("local a = 1\nerror('boom')\n", r"scrun.lua failed while loading: .*scrun.lua:2: boom"),
    ("local t = nil\nreturn t.x\n", r"failed while loading: .*scrun.lua:2: attempt to index"),
    (PASS_STAGE_IN + PASS_STAGE_OUT + "return slurm.ERROR\n",
     r"scrun.lua must end with `return slurm.SUCCESS` but returned number -1"),
    (PASS_STAGE_IN + PASS_STAGE_OUT, r"must end with `return slurm.SUCCESS` but returned nil"),
    (PASS_STAGE_IN + PASS_STAGE_OUT + "return 'yes'\n", r"but returned string yes"),
    (PASS_STAGE_IN + "return slurm.SUCCESS\n",
     r"scrun.lua does not define slurm_scrun_stage_out\(\)$"),
    (PASS_STAGE_OUT + "return slurm.SUCCESS\n", r"does not define slurm_scrun_stage_in\(\)$"),
    ("return slurm.SUCCESS\n",
     r"does not define slurm_scrun_stage_in\(\) and slurm_scrun_stage_out\(\)$"),
    ("slurm_scrun_stage_in = 1\n" + PASS_STAGE_OUT + "return slurm.SUCCESS\n",
     r"does not define slurm_scrun_stage_in\(\)$"),
])
def test_load_failures_are_one_line(tmp_path, setup, source, expected):
    with pytest.raises(UserError) as exc:
        Staging.load(write(tmp_path, source), setup)
    assert re.search(expected, single_line(exc)), str(exc.value)


def test_missing_or_unreadable_script(tmp_path, setup):
    with pytest.raises(UserError) as exc:
        Staging.load(str(tmp_path / "nope.lua"), setup)
    assert "cannot read scrun.lua" in single_line(exc) and "nope.lua" in str(exc.value)
    with pytest.raises(UserError) as exc:
        Staging.load(str(tmp_path), setup)
    assert "cannot read scrun.lua" in single_line(exc)


def test_shebang_and_top_level_logging_work(tmp_path, setup, caplog):
    caplog.set_level(1, logger="scrun_rest.lua")
    path = write(tmp_path, "#!/usr/bin/lua\nslurm.log_info('initialized %s', 'scrun.lua')\n"
                 + PASS_STAGE_IN + PASS_STAGE_OUT + "return slurm.SUCCESS\n")
    Staging.load(path, setup)
    assert ("scrun_rest.lua", logging.INFO, "initialized scrun.lua") in caplog.record_tuples


# -- stage_in ------------------------------------------------------------------
RECORD_STAGE_IN = """
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id,
                              job_env)
  seen = {id = id, bundle = bundle, spool_dir = spool_dir, config_file = config_file,
          job_id = job_id, job_id_type = math.type(job_id), user_id = user_id,
          group_id = group_id, env_len = #job_env, env_zero = job_env[0], first = job_env[1],
          ipairs_count = 0, pairs_count = 0, env = {}}
  for _, entry in ipairs(job_env) do
    seen.ipairs_count = seen.ipairs_count + 1
    local key, value = string.match(entry, "^([^=]*)=(.*)$")
    seen.env[key] = value
  end
  for _ in pairs(job_env) do seen.pairs_count = seen.pairs_count + 1 end
  return slurm.SUCCESS
end
"""


def test_stage_in_arguments(tmp_path, setup):
    staging = load(tmp_path, setup, stage_in=RECORD_STAGE_IN)
    job_env = {"SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NNODES": "2"}
    staging.stage_in("42", job_env, Remote(), IDENTITY)
    got = lua(staging, "return seen.id, seen.bundle, seen.spool_dir, seen.config_file, "
                       "seen.job_id, seen.job_id_type, seen.user_id, seen.group_id")
    assert got == (b"ctr1", setup.bundle.encode(), setup.spool.dir.encode(),
                   setup.config_file.encode(), 42, b"integer", 1234, 567)
    count, total, length, zero = lua(
        staging, "return seen.ipairs_count, seen.pairs_count, seen.env_len, seen.env_zero")
    # indexed from 1: ipairs sees every variable (scrun's 0-based table loses the first)
    assert count == total == length == 3 + 4 and zero is None
    env = lua(staging, "return seen.env")
    env = {k.decode(): v.decode() for k, v in env.items()}
    assert env == {"SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "node[1-2]",
                   "SLURM_NNODES": "2", "SCRUN_CONTAINER_ID": "ctr1",
                   "SCRUN_BUNDLE": setup.bundle, "SCRUN_SPOOL_DIR": setup.spool.dir,
                   "SCRUN_USER_ID": "1234"}
    assert lua(staging, "return seen.first") == b"SLURM_JOB_ID=42"


def test_ids_fall_back_to_zero(tmp_path, setup):
    staging = load(tmp_path, setup, stage_in=RECORD_STAGE_IN)
    staging.stage_in(None, {}, Remote(), identity=None)
    assert lua(staging, "return seen.job_id, seen.user_id, seen.group_id") == (0, 0, 0)


def test_bundle_and_root_overrides_reload_after_stage_in(tmp_path, setup):
    staging = load(tmp_path, setup, stage_in="""
        function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id,
                                      group_id, job_env)
          returned_bundle = slurm.set_bundle_path("/new/bundle//")
          returned_root = slurm.set_root_path("/new/bundle/rootfs")
          calls_seen = #reloads_before
          return slurm.SUCCESS
        end
        reloads_before = {}
    """, stage_out="""
        function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path,
                                       spool_dir, config_file, jobid, user_id, group_id)
          out = {id, bundle, orig_bundle, root_path, orig_root_path, spool_dir, config_file,
                 jobid, user_id, group_id}
          return slurm.SUCCESS
        end
    """)
    orig_bundle, orig_config = setup.bundle, setup.config_file
    staging.stage_in(7, {}, Remote(), IDENTITY)
    assert lua(staging, "return returned_bundle, returned_root") == (
        orig_bundle.encode(), setup.rootfs.encode())
    assert setup.reloads == [("/new/bundle", "/new/bundle/rootfs")]
    staging.stage_out(7, Remote(), IDENTITY)
    out = lua(staging, "return out")
    assert [out[i] for i in range(1, 11)] == [
        b"ctr1", b"/new/bundle//", orig_bundle.encode(), b"/new/bundle/rootfs",
        setup.rootfs.encode(), setup.spool.dir.encode(), orig_config.encode(), 7, 1234, 567]


def test_root_override_alone_reloads_the_current_bundle(tmp_path, setup):
    staging = load(tmp_path, setup, stage_in="""
        function slurm_scrun_stage_in(...)
          slurm.set_root_path("/elsewhere/rootfs")
          return slurm.SUCCESS
        end
    """)
    bundle = setup.bundle
    staging.stage_in(7, {}, Remote(), IDENTITY)
    assert setup.reloads == [(bundle, "/elsewhere/rootfs")]


def test_stage_out_without_overrides_gets_the_original_paths(tmp_path, setup):
    staging = load(tmp_path, setup, stage_out="""
        function slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path, ...)
          same = (bundle == orig_bundle) and (root_path == orig_root_path)
          return slurm.SUCCESS
        end
    """)
    staging.stage_in(7, {}, Remote(), IDENTITY)
    staging.stage_out(7, Remote(), IDENTITY)
    assert lua(staging, "return same") is True and setup.reloads == []


@pytest.mark.parametrize("body,expected", [
    ("return slurm.ERROR", r"^scrun.lua stage_in returned -1, not slurm.SUCCESS$"),
    ("return 5", r"^scrun.lua stage_in returned 5, not slurm.SUCCESS$"),
    ("return '-1'", r"^scrun.lua stage_in returned -1, not slurm.SUCCESS$"),
    ("return 0/0", r"^scrun.lua stage_in returned -?nan, not slurm.SUCCESS$"),
    ("local x = nil\n  return x.y",
     r"^scrun.lua stage_in failed: .*scrun.lua:\d+: attempt to index"),
    ("error('no space left')", r"^scrun.lua stage_in failed: .*scrun.lua:\d+: no space left$"),
    ("error({})", r"^scrun.lua stage_in failed: table: "),
    ("slurm.set_bundle_path(nil)", r"stage_in failed: .*slurm.set_bundle_path: expected a string"),
    ("slurm.set_bundle_path('')", r"stage_in failed: .*slurm.set_bundle_path: empty path"),
])
def test_stage_in_failures(tmp_path, setup, body, expected):
    staging = load(tmp_path, setup, stage_in="""
        function slurm_scrun_stage_in(...)
          slurm.set_bundle_path("/never/applied")
          %s
        end
    """ % body)
    with pytest.raises(UserError) as exc:
        staging.stage_in(3, {}, Remote(), IDENTITY)
    assert re.search(expected, single_line(exc)), str(exc.value)
    assert setup.reloads == []


def test_non_numeric_return_is_success_as_in_scrun(tmp_path, setup, caplog):
    caplog.set_level(logging.INFO, logger="scrun_rest.lua")
    staging = load(tmp_path, setup, stage_in="function slurm_scrun_stage_in() end\n",
                   stage_out="function slurm_scrun_stage_out() return '0' end\n")
    staging.stage_in(3, {}, Remote(), IDENTITY)
    staging.stage_out(3, Remote(), IDENTITY)
    assert any("returned nil, not a number" in r.getMessage() for r in caplog.records)


def test_stage_out_failure(tmp_path, setup):
    staging = load(tmp_path, setup, stage_out="""
        function slurm_scrun_stage_out(...) return slurm.FAILURE end
    """)
    staging.stage_in(3, {}, Remote(), IDENTITY)
    with pytest.raises(UserError) as exc:
        staging.stage_out(3, Remote(), IDENTITY)
    assert single_line(exc) == "scrun.lua stage_out returned -1, not slurm.SUCCESS"


def test_stages_run_from_a_worker_thread(tmp_path, setup):
    staging = load(tmp_path, setup, stage_in=RECORD_STAGE_IN)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(staging.stage_in, 9, {"SLURM_JOB_ID": "9"}, Remote()).result()
        pool.submit(staging.stage_out, 9, Remote()).result()
    assert lua(staging, "return seen.job_id") == 9


# -- remote_command and allocator_command ---------------------------------------
COMMANDS = """
function slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id,
                              job_env)
  results = {}
  for _, script in ipairs(scripts) do
    local status, output = slurm[which](script)
    results[#results + 1] = {status, output}
  end
  return slurm.SUCCESS
end
"""


def run_commands(tmp_path, setup, which, scripts, remote=None, job_env=None):
    staging = load(tmp_path, setup, stage_in=COMMANDS)
    table = staging.runtime.lua.table_from([s.encode() for s in scripts])
    staging.runtime.lua.globals()[b"scripts"] = table
    staging.runtime.lua.globals()[b"which"] = which.encode()
    staging.stage_in(11, job_env or {}, remote or Remote(), IDENTITY)
    results = lua(staging, "return results")
    return [(results[i][1], results[i][2]) for i in range(1, len(results) + 1)]


def test_remote_command_goes_to_the_anchor(tmp_path, setup):
    remote = Remote(3, "node1: fail\nnode2: ok\n")
    got = run_commands(tmp_path, setup, "remote_command", ["hostname", "mkdir -p /x"],
                       remote=remote)
    assert remote.calls == ["hostname", "mkdir -p /x"]
    assert got == [(3, b"node1: fail\nnode2: ok\n")] * 2


def test_remote_command_failure_is_a_status(tmp_path, setup):
    remote = Remote()
    remote.result = RuntimeError("agent gone")
    got = run_commands(tmp_path, setup, "remote_command", ["true"], remote=remote)
    assert got[0][0] == 1 and b"agent gone" in got[0][1]


def test_remote_command_outside_a_stage(tmp_path, setup):
    staging = Staging.load(write(tmp_path, PASS_STAGE_IN + PASS_STAGE_OUT + """
        status, output = slurm.remote_command("hostname")
        return slurm.SUCCESS
    """), setup)
    status, output = lua(staging, "return status, output")
    assert status == 1 and b"only inside stage_in and stage_out" in output


def test_allocator_command_status_and_output(tmp_path, setup):
    got = run_commands(tmp_path, setup, "allocator_command", [
        "echo out; echo err >&2; exit 3",
        "printf '%s' \"$SLURM_JOB_ID $SCRUN_CONTAINER_ID $SCRUN_USER_ID\"",
        "test -n \"$PATH\" && echo path",
        "printf '\\377\\376'",
        "kill -9 $$",
        "true",
    ], job_env={"SLURM_JOB_ID": "11"})
    assert got[0] == (3, b"out\nerr\n")
    assert got[1] == (0, b"11 ctr1 1234")
    assert got[2] == (0, b"path\n")
    assert got[3] == (0, b"\xff\xfe")
    assert got[4][0] == 128 + 9
    assert got[5] == (0, b"")


def test_allocator_command_checks_its_argument(tmp_path, setup):
    staging = load(tmp_path, setup, stage_in="""
        function slurm_scrun_stage_in(...)
          slurm.allocator_command({})
        end
    """)
    with pytest.raises(UserError) as exc:
        staging.stage_in(1, {}, Remote(), IDENTITY)
    assert "slurm.allocator_command: expected a string, got table" in single_line(exc)


# -- logging ---------------------------------------------------------------------
def test_logging_functions(tmp_path, setup, caplog):
    caplog.set_level(1, logger="scrun_rest.lua")
    staging = load(tmp_path, setup, stage_in="""
        function slurm_scrun_stage_in(...)
          slurm.log_error("e %d", 1)
          slurm.error("plain error")
          slurm.log_info("i %s", "x")
          slurm.log_verbose("v")
          slurm.log_debug("d")
          slurm.log_debug2("d2")
          slurm.log_debug3("d3")
          slurm.log_debug4("d4")
          slurm.log("man page order", 2)
          slurm.log(3, "C order")
          slurm.log(0, "level zero")
          slurm.log(4, "level four")
          slurm.log(9, "above four")
          slurm.log(-1, "never")
          slurm.log("alone")
          slurm.log_info("100%")
          slurm.log_info("100%%")
          return slurm.SUCCESS
        end
    """)
    staging.stage_in(1, {}, Remote(), IDENTITY)
    records = [(r.levelno, r.getMessage()) for r in caplog.records
               if r.name == "scrun_rest.lua" and not r.getMessage().startswith("scrun.lua")]
    assert records == [
        (LEVELS["error"], "e 1"), (LEVELS["error"], "plain error"), (LEVELS["info"], "i x"),
        (LEVELS["verbose"], "v"), (LEVELS["debug"], "d"), (LEVELS["debug2"], "d2"),
        (LEVELS["debug3"], "d3"), (LEVELS["debug4"], "d4"),
        (LEVELS["debug"], "man page order"), (LEVELS["debug2"], "C order"),
        (LEVELS["info"], "level zero"), (LEVELS["debug3"], "level four"),
        (LEVELS["debug4"], "above four"), (LEVELS["info"], "alone"),
        (LEVELS["info"], "100%"), (LEVELS["info"], "100%"),
    ]


def test_bad_format_arguments_fail_at_the_callers_line(tmp_path, setup):
    staging = load(tmp_path, setup, stage_in="""
        function slurm_scrun_stage_in(...)
          slurm.log_info("%d", "not a number")
        end
    """)
    with pytest.raises(UserError) as exc:
        staging.stage_in(1, {}, Remote(), IDENTITY)
    assert re.search(r"scrun.lua:3: bad argument #2 to '(string\.)?format'", single_line(exc))


# -- time_str2mins ---------------------------------------------------------------
@pytest.mark.parametrize("text,minutes", [
    ("2-", 2 * 1440),                 # days-
    ("2-3", 2 * 1440 + 180),          # days-hours
    ("2-3:04", 2 * 1440 + 184),       # days-hours:minutes
    ("2-3:04:05", 2 * 1440 + 185),    # days-hours:minutes:seconds (seconds round up)
    ("1:02:03", 63),                  # hours:minutes:seconds
    ("45", 45),                       # minutes
    ("5:30", 6),                      # minutes:seconds
    ("0:00", 0),
    ("-1", -1), ("INFINITE", -1), ("UNLIMITED", -1), ("infinite", -1), ("unlimited", -1),
    ("bogus", -2), ("1:2:3:4", -2), ("", -2),   # Slurm's NO_VAL through a C int
])
def test_time_str2mins(tmp_path, setup, text, minutes):
    staging = load(tmp_path, setup)
    assert lua(staging, "return slurm.time_str2mins('%s')" % text) == minutes


def test_time_str2mins_odd_arguments(tmp_path, setup):
    staging = load(tmp_path, setup)
    assert lua(staging, "return slurm.time_str2mins(90)") == 90
    assert lua(staging, "return slurm.time_str2mins(nil)") == -2
    assert lua(staging, "return slurm.time_str2mins({})") == -2


def test_constants(tmp_path, setup):
    staging = load(tmp_path, setup)
    assert lua(staging, "return slurm.SUCCESS, slurm.ERROR, slurm.FAILURE, slurm.NO_VAL") == (
        0, -1, -1, 4294967294)


# -- the sandbox -------------------------------------------------------------------
def test_no_way_into_python(tmp_path, setup):
    staging = load(tmp_path, setup)
    assert lua(staging, "return python, package.loaded.python") == (None, None)
    # The upvalue probed below is the Python logger (a userdata in Lua), not
    # some Lua value whose attributes fail anyway.
    assert lua(staging, """
        local name, callback = debug.getupvalue(slurm.error, 1)
        return name, type(callback)""") == (b"py_log", b"userdata")
    ok, err = lua(staging, """
        local _, callback = debug.getupvalue(slurm.error, 1)
        return pcall(function() return callback.__globals__ end)""")
    assert ok is False
    ok, err = lua(staging, """
        local _, callback = debug.getupvalue(slurm.error, 1)
        return pcall(function() return callback.__class__.__subclasses__ end)""")
    assert ok is False


def test_normal_lua_libraries_stay(tmp_path, setup):
    target = tmp_path / "written.txt"
    staging = load(tmp_path, setup)
    got = lua(staging, """
        local f = io.open("%s", "w"); f:write("x"); f:close()
        return type(os.getenv), string.upper("a"), table.concat({1, 2}, ","), type(require)
    """ % target)
    assert got == (b"function", b"A", b"1,2", b"function") and target.read_text() == "x"
