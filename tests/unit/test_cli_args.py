"""runc-style command lines."""
import pytest

from scrun_rest.cli import args
from scrun_rest.cli.common import parse_signal
from scrun_rest.cli.create import SPEC as CREATE
from scrun_rest.cli.exec_ import SPEC as EXEC
from scrun_rest.errors import UserError


def test_globals_stop_at_the_command():
    parsed = args.parse(["--root=/r", "--log", "/l", "-vv", "--rootless", "true",
                         "--systemd-cgroup", "create", "--bundle", "b", "x"],
                        args.GLOBAL, stop_at_command=True)
    assert parsed.get("--root") == "/r" and parsed.get("--log") == "/l"
    assert len(parsed.get("-v")) == 2
    assert parsed.positionals == ["create", "--bundle", "b", "x"]


def test_create_accepts_both_value_forms():
    parsed = args.parse(["--bundle=b", "--pid-file", "p", "--no-pivot", "--preserve-fds", "2",
                         "id1"], CREATE, "create")
    assert parsed.get("--bundle") == "b" and parsed.get("--pid-file") == "p"
    assert parsed.positionals == ["id1"]


@pytest.mark.parametrize("argv,fragment", [
    (["--bogus", "x"], "unknown option --bogus"),
    (["--bundle"], "needs a value"),
    ([], "missing container id"),
    (["a", "b"], "unexpected argument b"),
])
def test_bad_command_lines(argv, fragment):
    with pytest.raises(UserError, match=fragment):
        args.parse(argv, CREATE, "create")


def test_exec_stops_options_at_the_command():
    parsed = args.parse(["-t", "cid", "sh", "-c", "echo -n"], EXEC, "exec")
    assert parsed.get("--tty") and parsed.positionals == ["cid", "sh", "-c", "echo -n"]


@pytest.mark.parametrize("text,number", [("TERM", 15), ("SIGKILL", 9), ("usr1", 10), ("2", 2)])
def test_signals(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGFOO", "999", "0", "", "-1", "SIG"])
def test_bad_signals(text):
    with pytest.raises(UserError, match="invalid signal"):
        parse_signal(text)
