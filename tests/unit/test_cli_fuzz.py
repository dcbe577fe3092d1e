"""Property tests: whatever argv holds, the user gets an exit code and at most
one line on stderr, never a traceback. main() runs in-process against a
private --root holding two fake containers (one whose anchor is gone, one
stopped) and a config whose slurmrestd refuses connections at once.
"""
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrun_rest.cli import main as cli
from scrun_rest.rest import transport

# A pid that certainly belongs to nobody: a child we started and reaped.
_child = subprocess.Popen([sys.executable, "-c", "pass"])
_child.wait()
DEAD_PID = _child.pid

FAKES = {"gone-anchor": "running", "done": "stopped"}
COMMANDS = ["create", "start", "state", "kill", "delete", "exec", "ps", "features",
            "check", "run", "spec", "pause", "restore", "update", "list", ""]
GLOBAL_OPTIONS = ["--root", "--log", "--log-format", "--log-format=json", "-f", "--debug",
                  "--debug=false", "--debug=maybe", "--systemd-cgroup", "--cgroup-manager",
                  "--criu", "-v", "-vvv", "--rootless", "--rootless=true", "-V",
                  "--version", "--usage", "--help", "-h", "--", "-", "--bogus", "-x"]
COMMAND_OPTIONS = ["--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds",
                   "--no-pivot", "--no-new-keyring", "--all", "-a", "--force", "-f",
                   "--format", "--format=json", "--format=yaml", "--process", "-p",
                   "--detach", "-d", "--tty", "-t", "--env", "-e", "--user", "-u",
                   "--user=1:x", "--cwd", "--cap", "--additional-gids", "--signal",
                   "--force=yes", "--all=1", "--no-such-flag", "-Z", "--"]
SIGNALS = ["SIGFOO", "999", "0", "-1", "65", "64", "1", "KILL", "kill", "sigterm", "SIG",
           "SIG_DFL", "SIGRTMIN+1", "", " 15 ", "1e3", "\u0661\u0665", "\u00b2", "TERM\n",
           "9" * 40, "NSIG", "SIGKILL\x00"]
IDS = ["gone-anchor", "done", "missing", "a/b", "..", ".", "../done", "x\x00y", "x" * 1000,
       "x" * 2000, "-", "id with space", "\u00e9t\u00e9", "ok.id+1", "\u202e"]
BUNDLES = ["/", "/nonexistent", "/etc/passwd", "/proc/self/fd/0", ".", "nobundle", ""]


def _path_text():
    # Paths the runtime may create (logs, roots, pid files): relative to the
    # scratch dir we run in, never absolute and never climbing out of it.
    return st.text(st.characters(blacklist_characters="\x00/", blacklist_categories=("Cs",)),
                   min_size=1, max_size=12).filter(lambda t: t not in (".", ".."))


JUNK = st.one_of(st.text(max_size=30), st.sampled_from(["\n", "\t", "=", "==", "-=", "--="]))
# exec(2) cannot pass a NUL: only the id tests below (which call main()
# directly, as no real caller can) put one in argv.
TOKEN = st.one_of(
    st.sampled_from(COMMANDS), st.sampled_from(GLOBAL_OPTIONS),
    st.sampled_from(COMMAND_OPTIONS), st.sampled_from([t for t in SIGNALS if "\x00" not in t]),
    st.sampled_from([t for t in IDS if "\x00" not in t]),
    st.sampled_from(BUNDLES), _path_text(),
    st.builds(lambda o, v: o + "=" + v, st.sampled_from(GLOBAL_OPTIONS + COMMAND_OPTIONS),
              st.one_of(_path_text(), st.sampled_from(SIGNALS + BUNDLES))
              ).filter(lambda t: "\x00" not in t),
    JUNK.filter(lambda t: not t.startswith("/") and ".." not in t and "\x00" not in t),
)


def fuzz(examples):
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def world():
    """A scratch dir to run in, a root with fake containers, a refusing config."""
    saved_cwd, saved_env = os.getcwd(), dict(os.environ)
    saved_retry = transport.BACKOFF, transport.RETRY_BUDGET
    base = tempfile.mkdtemp(prefix="scrun-cli-fuzz-")
    token = _fake_token()
    with open(os.path.join(base, "jwt"), "w") as handle:
        handle.write(token)
    os.chmod(os.path.join(base, "jwt"), 0o600)
    with open(os.path.join(base, "scrun-rest.conf"), "w") as handle:
        # Port 9 (discard) refuses at once: nothing ever reaches a real slurmrestd.
        handle.write("RestUrl=http://127.0.0.1:9\nJwtFile=%s/jwt\nLuaScript=\n" % base)
    os.environ.clear()
    os.environ.update({"PATH": saved_env.get("PATH", "/usr/bin:/bin"), "HOME": base,
                       "XDG_RUNTIME_DIR": base,
                       "SCRUN_REST_CONF": os.path.join(base, "scrun-rest.conf")})
    transport.BACKOFF, transport.RETRY_BUDGET = (), 1.0
    work = os.path.join(base, "work")
    os.mkdir(work)
    os.chdir(work)
    try:
        yield base
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        transport.BACKOFF, transport.RETRY_BUDGET = saved_retry
        shutil.rmtree(base, ignore_errors=True)


def _fake_token():
    import base64
    import time

    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return "%s.%s.%s" % (part({"alg": "HS256", "typ": "JWT"}),
                         part({"sun": "nobody", "exp": int(time.time()) + 86400}), "c2ln")


def _reset(world):
    """Fake containers as before every example; the rest of the root goes."""
    root = os.path.join(world, "scrun-rest")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root, mode=0o700)
    for cid, status in FAKES.items():
        os.mkdir(os.path.join(root, cid), 0o700)
        with open(os.path.join(root, cid, "state.json"), "w") as handle:
            json.dump({"ociVersion": "1.0.2", "id": cid, "status": status, "pid": DEAD_PID,
                       "bundle": "/nonexistent", "job_id": None}, handle)
    work = os.path.join(world, "work")
    for name in os.listdir(work):
        path = os.path.join(work, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    os.environ["SCRUN_REST_CONF"] = os.path.join(world, "scrun-rest.conf")


def run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


# What a failing `check` prints, all on stdout: what it found, then one line
# per problem.
CHECK_REPORT = re.compile(r"slurmrestd URL: .*\n(?:[a-zA-Z ]+: .*\n)*(?:problem: .+\n)+\Z")


def check_outcome(argv, code, out, err):
    assert isinstance(code, int) and not isinstance(code, bool), (argv, code)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    if not err:
        # A failure says why on stderr, but for the usage (no command) and
        # check's report, which names its problems on stdout.
        assert code == 0 or out.startswith("usage:") or CHECK_REPORT.match(out), (argv, code, out)
        return
    # Whatever the exit code, stderr holds at most one line.
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n") and lines[0].strip(), (argv, err)
    assert len(lines[0]) <= 500, (argv, lines[0][:100])
    assert all(c.isprintable() for c in lines[0]), (argv, ascii(lines[0]))


def rooted(argv, world):
    return ["--root", os.path.join(world, "scrun-rest")] + list(argv)


@fuzz(1300)
@given(st.lists(TOKEN, min_size=0, max_size=8))
def test_any_argv_gives_one_line(world, argv):
    _reset(world)
    for args in (argv, rooted(argv, world)):
        code, out, err = run_main(args)
        check_outcome(args, code, out, err)


@fuzz(400)
@given(st.sampled_from(IDS), st.one_of(st.sampled_from(SIGNALS), st.text(max_size=12)),
       st.booleans())
def test_kill_with_any_signal(world, cid, signal_text, all_flag):
    _reset(world)
    argv = rooted(["kill"] + (["--all"] if all_flag else []) + [cid, signal_text], world)
    code, out, err = run_main(argv)
    check_outcome(argv, code, out, err)
    if signal_text.strip().upper() in ("SIGFOO", "999", "0", "65", "SIG"):
        assert code != 0 and "invalid signal" in err


@fuzz(300)
@given(st.sampled_from(["state", "start", "kill", "delete", "delete --force", "ps", "exec"]),
       st.one_of(st.sampled_from(IDS), st.text(min_size=1, max_size=40),
                 st.text(min_size=250, max_size=1100)))
def test_any_container_id(world, command, cid):
    _reset(world)
    argv = rooted(command.split() + [cid] + (["true"] if command == "exec" else []), world)
    code, out, err = run_main(argv)
    check_outcome(argv, code, out, err)
    if cid not in FAKES:
        assert code != 0 or command == "delete --force", (argv, out)
    if command == "state" and code == 0:
        assert json.loads(out)["id"] == cid


@pytest.mark.parametrize("cid,words", [
    ("a/b", "contains '/'"), ("..", "not allowed"), ("x\x00y", "contains '\\x00'"),
    ("x" * 1025, "too long"), ("", "must not be empty"),
])
def test_bad_ids_are_refused_by_every_command(world, cid, words):
    for command in (["create", "--bundle", "/nonexistent"], ["start"], ["state"], ["kill"],
                    ["delete", "--force"], ["ps"]):
        _reset(world)
        code, out, err = run_main(rooted(command + [cid], world))
        assert code != 0 and words in err and err.count("\n") == 1, (command, err)


def test_a_1000_character_id_is_simply_unknown(world):
    _reset(world)
    for command in (["state"], ["kill"], ["start"], ["ps"]):
        code, out, err = run_main(rooted(command + ["x" * 1000], world))
        assert code != 0 and "does not exist" in err, (command, err)
        assert len(err) < 300
    assert run_main(rooted(["delete", "--force", "x" * 1000], world))[0] == 0


@pytest.mark.parametrize("argv,words", [
    (["kill", "done", "SIGFOO"], "invalid signal SIGFOO"),
    (["kill", "done", "999"], "invalid signal 999"),
    (["kill", "done", "\u00b2"], "invalid signal"),
    (["kill"], "missing container id"),
    (["create", "--bundle"], "needs a value"),
    (["--root"], "needs a value"),
    (["state", "--bogus", "done"], "unknown option --bogus"),
    (["frobnicate", "x"], "unknown command"),
    (["delete", "done", "extra"], "unexpected argument"),
])
def test_named_mistakes(world, argv, words):
    _reset(world)
    code, out, err = run_main(rooted(argv, world))
    assert code != 0 and words in err and err.count("\n") == 1, err


def test_check_reports_on_stdout_only(world):
    """The one command exempt from the one line on stderr, and only when it runs."""
    _reset(world)
    code, out, err = run_main(rooted(["check"], world))
    assert (code, err) == (1, "") and CHECK_REPORT.match(out), (code, out, err)
    assert "problem: slurmrestd at http://127.0.0.1:9 is unreachable" in out
    code, out, err = run_main(rooted(["check", "done"], world))
    assert code != 0 and out == "" and err == "check: unexpected argument done\n"


def test_a_container_whose_anchor_is_gone_reads_as_stopped(world):
    _reset(world)
    code, out, err = run_main(rooted(["state", "gone-anchor"], world))
    assert code == 0 and json.loads(out)["status"] == "stopped"
    code, out, err = run_main(rooted(["exec", "gone-anchor", "true"], world))
    assert code != 0 and "not running" in err


def test_an_anchor_that_vanished_mid_command(world):
    """state.json says running and the pid lives (it is ours), but nobody listens."""
    _reset(world)
    path = os.path.join(world, "scrun-rest", "gone-anchor", "state.json")
    with open(path) as handle:
        state = json.load(handle)
    state["pid"] = os.getpid()
    with open(path, "w") as handle:
        json.dump(state, handle)
    for command in (["kill"], ["start"], ["exec"], ["ps"]):
        argv = rooted(command + ["gone-anchor"] + (["true"] if command == ["exec"] else []),
                      world)
        code, out, err = run_main(argv)
        check_outcome(argv, code, out, err)
        if command != ["ps"]:
            assert code != 0 and "gone-anchor" in err, (command, err)
