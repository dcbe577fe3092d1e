"""The agent's side of the message table (tunnel/messages.py).

The job agent takes only the anchor's messages that the table allows;
anything else (an unknown type, a missing field, a field of the wrong
type) ends the link with one line on stderr and no traceback. What it
sends is checked too.
"""
import socket
import subprocess
import sys

import pytest

from scrun_rest.agent import job
from scrun_rest.anchor import job_script
from scrun_rest.tunnel import messages, wire

SECRET = "00" * 32
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
        wire.send(conn, {"t": "launch", "session": 0})
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
