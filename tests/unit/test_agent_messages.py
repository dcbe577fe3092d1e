"""The agent's side of the message table (tunnel/messages.py).

The job agent and a task each take only the anchor's messages that the
table allows in their phase; anything else (an unknown type, a missing
field, a field of the wrong type, a type out of turn) ends the link with
one line on stderr and no traceback. What they send is checked too.
"""
import signal
import socket
import subprocess
import sys

import pytest

from scrun_rest.agent import job, task
from scrun_rest.anchor import job_script
from scrun_rest.tunnel import messages, wire

SECRET = "00" * 32
SETUP = {"t": "setup", "mode": "run", "config": {}, "key": SECRET,
         "streams": ["stdout", "stderr"], "env": {}, "settings": {}}
REFUSED_BY_THE_AGENT = [
    {"t": "bogus"},
    {"t": "launch", "session": 0, "env": {}},
    {"t": "shutdown", "code": "0"},
    {"t": "welcome", "task_key": "ab", "settings": {}, "extra": 1},
]


@pytest.fixture
def link():
    """(ours, the anchor's end) of a connected pair."""
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    yield ours, theirs
    ours.close()
    theirs.close()


def stderr_lines(capsys):
    return capsys.readouterr().err.splitlines()


def job_agent(sock):
    agent = job.JobAgent({"host": "127.0.0.1", "port": 9, "secret": SECRET}, {})
    agent.sock = sock
    return agent


def test_the_agent_answers_a_ping_and_shuts_down_when_told(link, capsys):
    ours, theirs = link
    agent = job_agent(ours)
    wire.send(theirs, {"t": "ping"})
    wire.send(theirs, {"t": "shutdown", "code": 3})
    assert agent._read_loop() is True
    assert agent.exit_code == 3
    assert messages.check(messages.AGENT_TO_ANCHOR, wire.recv(theirs))["t"] == "pong"
    assert stderr_lines(capsys) == []


@pytest.mark.parametrize("message", REFUSED_BY_THE_AGENT, ids=lambda m: m["t"])
def test_the_agent_ends_the_link_at_a_message_the_table_refuses(link, capsys, message):
    ours, theirs = link
    agent = job_agent(ours)
    wire.send(theirs, message)
    assert agent._read_loop() is False
    assert agent.exit_code == 0  # no handler ran
    assert theirs.recv(1) == b""  # the anchor sees the link end
    lines = stderr_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("scrun-rest agent: the anchor at 127.0.0.1:9 broke the protocol")
    assert "Traceback" not in lines[0]


def test_a_lost_tunnel_is_logged_once(link, capsys):
    ours, theirs = link
    agent = job_agent(ours)
    theirs.close()
    assert agent._read_loop() is False
    assert stderr_lines(capsys) == [
        "scrun-rest agent: lost the tunnel to the anchor at 127.0.0.1:9: connection closed;"
        " ending the container"]


def test_the_agent_sends_only_what_the_table_holds(link):
    agent = job_agent(link[0])
    with pytest.raises(messages.ProtocolError):
        agent.send("started", python="3.6", env={}, identity={}, num_nodes="1")
    agent.send("step_exit", session=1, status=0, error=None)
    assert wire.recv(link[1]) == {"t": "step_exit", "session": 1, "status": 0}


def test_the_job_script_speaks_the_table_to_an_anchor(tmp_path):
    """The shipped agent, as Slurm runs it, against a bare-bones anchor."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(30)
    port = server.getsockname()[1]
    path = tmp_path / "job.py"
    path.write_text(job_script.build("cid", "127.0.0.1", port, SECRET, python=sys.executable,
                                     dial_timeout=10))
    agent = subprocess.Popen([sys.executable, "-S", "-I", str(path)], cwd=str(tmp_path),
                             stderr=subprocess.PIPE, universal_newlines=True)
    try:
        conn, _ = server.accept()
        conn.settimeout(30)
        role = wire.server_handshake(conn, lambda role: bytes.fromhex(SECRET))
        assert messages.check_role(role) == "agent"
        assert messages.check(messages.AGENT_TO_ANCHOR, wire.recv(conn))["t"] == "started"
        wire.send(conn, {"t": "ping"})
        assert wire.recv(conn) == {"t": "pong"}
        wire.send(conn, {"t": "launch", "session": 0, "ticket": "ab"})
        assert wire.recv(conn) is None
        conn.close()
        stderr = agent.communicate(timeout=30)[1]
    finally:
        agent.kill()
        server.close()
    assert agent.returncode == 1
    assert stderr.splitlines() == [
        "scrun-rest agent: the anchor at 127.0.0.1:%d broke the protocol (message 'launch'"
        " lacks 'srun_args'); ending the container" % port]


def test_roles_match_the_table(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_PROCID", "2")
    agent = job_agent(None)
    assert messages.check_role(agent.role()) == "agent"
    shim = make_task(None)
    assert messages.check_role(shim.role("task")) == "task"
    assert messages.check_role(shim.role("data", stream="stdout")) == "data"


class FakeRuntime:
    """What Task needs of the runtime's Popen."""

    def __init__(self):
        self.signals = []

    def poll(self):
        return None

    def send_signal(self, signum):
        self.signals.append(signum)


def make_task(sock):
    shim = task.Task({"host": "127.0.0.1", "port": 9, "ticket": SECRET, "session": 0})
    shim.control = sock
    return shim


def test_a_task_waits_for_go_past_signals_and_resizes(link, capsys):
    ours, theirs = link
    shim = make_task(ours)
    for message in ({"t": "resize", "rows": 1, "cols": 2}, {"t": "signal", "signal": 15},
                    {"t": "go", "rows": 24, "cols": 80}):
        wire.send(theirs, message)
    assert shim._wait_for_go() is True
    assert shim.window == (24, 80)
    wire.send(theirs, {"t": "abort"})
    assert shim._wait_for_go() is False
    assert stderr_lines(capsys) == []


@pytest.mark.parametrize("message", [
    SETUP, {"t": "bogus"}, {"t": "go", "rows": "24"}, {"t": "signal"},
], ids=["setup-again", "unknown", "wrong-type", "missing-field"])
def test_a_task_waiting_for_go_ends_at_a_message_out_of_the_table(link, capsys, message):
    ours, theirs = link
    wire.send(theirs, message)
    assert make_task(ours)._wait_for_go() is False
    assert_one_protocol_line(capsys)


def test_a_running_task_passes_signals_on_until_the_anchor_is_gone(link, capsys):
    ours, theirs = link
    shim = make_task(ours)
    shim.process = FakeRuntime()
    wire.send(theirs, {"t": "signal", "signal": int(signal.SIGUSR1)})
    theirs.close()
    shim._control_loop()
    assert shim.anchor_gone.is_set()
    assert shim.process.signals == [signal.SIGUSR1, signal.SIGKILL]
    assert stderr_lines(capsys) == []


@pytest.mark.parametrize("message", [
    {"t": "go"}, {"t": "setup"}, {"t": "bogus"}, {"t": "resize", "rows": 1},
    {"t": "signal", "signal": "TERM"},
], ids=["go-again", "setup-again", "unknown", "missing-field", "wrong-type"])
def test_a_running_task_treats_a_message_out_of_the_table_as_the_anchor_gone(
        link, capsys, message):
    ours, theirs = link
    shim = make_task(ours)
    shim.process = FakeRuntime()
    stream, stream_peer = socket.socketpair()
    shim.streams = {"stdout": stream}
    wire.send(theirs, message)
    shim._control_loop()
    assert shim.anchor_gone.is_set()
    assert shim.process.signals == [signal.SIGKILL]
    stream_peer.settimeout(5)
    assert stream_peer.recv(1) == b""  # the streams are dropped
    stream.close()
    stream_peer.close()
    assert_one_protocol_line(capsys)


@pytest.mark.parametrize("message", [
    {"t": "go"}, dict(SETUP, settings=None), dict(SETUP, streams="stdout"),
], ids=["not-setup", "missing-field", "wrong-type"])
def test_a_task_refuses_a_setup_out_of_the_table(link, capsys, monkeypatch, message):
    ours, theirs = link
    monkeypatch.setattr(task.Task, "dial", lambda self, kind, **extra: ours)
    wire.send(theirs, message)
    assert make_task(None).run() == 1
    assert_one_protocol_line(capsys)


def assert_one_protocol_line(capsys):
    lines = stderr_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("scrun-rest task: the anchor broke the protocol")
    assert "Traceback" not in lines[0]


def test_a_task_sends_only_what_the_table_holds(link):
    shim = make_task(link[0])
    with pytest.raises(messages.ProtocolError):
        shim.send("exit", status="1")
    shim.send("started", pid=5, container=None)
    assert wire.recv(link[1]) == {"t": "started", "pid": 5}
