"""The anchor's control socket: every frame of a connection is read, and
every fd a client passes is handed on or closed (no anchor or Slurm needed:
the anchor is a stand-in, the socket is a real socketpair)."""
import asyncio
import os
import socket

import pytest

from scrun_rest import fd_passing
from scrun_rest.anchor import control_server
from scrun_rest.tunnel import messages, wire


class FakeAnchor:
    def __init__(self, loop):
        self.loop = loop
        self.signals = []

    def kill(self, signal):
        self.signals.append(signal)


class FakeSession:
    """An exec session that ends once it has been sent `wanted` messages."""

    def __init__(self, loop, stdio, wanted):
        self.number = 7
        self.stdio = stdio
        self.window = None
        self.sent = []
        self.exit_future = loop.create_future()
        self._wanted = wanted

    def send_all(self, message):
        self.sent.append(message)
        if len(self.sent) == self._wanted:
            self.exit_future.set_result(3)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def pair():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield client, server
    client.close()
    server.close()


def frame(kind, **fields):
    return wire.encode(messages.make(messages.CLIENT_TO_ANCHOR, kind, **fields))


def passed_pipes(count):
    """Read ends to pass, and the write ends that tell whether any read end is left."""
    pipes = [os.pipe() for _ in range(count)]
    return [r for r, _ in pipes], [w for _, w in pipes]


def all_closed(write_ends):
    """True when no process holds a read end any more (the write fails with EPIPE)."""
    closed = []
    for fd in write_ends:
        try:
            os.write(fd, b"x")
            closed.append(False)
        except BrokenPipeError:
            closed.append(True)
        os.close(fd)
    return all(closed)


def run_client(loop, server, sock, timeout=5):
    loop.run_until_complete(asyncio.wait_for(server.serve_client(sock), timeout))


def replies(client):
    client.settimeout(5)
    found = []
    while True:
        message = wire.recv(client)
        if message is None:
            return found
        found.append(messages.check(messages.ANCHOR_TO_CLIENT, message))


@pytest.mark.parametrize("data", [
    frame("kill", signal=15),
    wire.encode({"t": "kill", "signal": "TERM"}),      # a field of the wrong type
    wire.encode({"t": "frobnicate"}),                  # no such command
    wire.encode({"t": "resize", "rows": 1, "cols": 1}),  # not a first command
    wire.HEADER.pack(5) + b"[[[[[",                     # not JSON
], ids=["kill", "wrong-field", "unknown", "out-of-place", "garbage"])
def test_fds_passed_with_any_command_but_exec_are_closed(loop, pair, data):
    client, server_sock = pair
    readers, writers = passed_pipes(2)
    fd_passing.send(client, data, readers)
    for fd in readers:
        os.close(fd)
    client.shutdown(socket.SHUT_WR)
    anchor = FakeAnchor(loop)
    server = control_server.ControlServer(anchor)
    run_client(loop, server, server_sock)
    answer = replies(client)
    assert len(answer) == 1 and answer[0]["t"] == "reply"
    assert answer[0]["ok"] == (anchor.signals == [15])
    assert all_closed(writers)


def test_fds_passed_with_an_exec_that_fails_are_closed(loop, pair):
    client, server_sock = pair
    readers, writers = passed_pipes(2)  # three are needed without a tty
    fd_passing.send(client, frame("exec", process={"args": ["sh"]}, tty=False), readers)
    for fd in readers:
        os.close(fd)
    client.shutdown(socket.SHUT_WR)
    server = control_server.ControlServer(FakeAnchor(loop))
    run_client(loop, server, server_sock)
    assert replies(client) == [{"t": "reply", "ok": False,
                                "error": "exec needs 3 file descriptors, got 2"}]
    assert all_closed(writers)


def _exec_server(loop, wanted):
    server = control_server.ControlServer(FakeAnchor(loop))
    sessions = []

    async def new_exec_session(process, stdio, window):
        sessions.append(FakeSession(loop, stdio, wanted))
        return sessions[-1]

    server.new_exec_session = new_exec_session
    return server, sessions


def test_frames_that_arrive_together_are_all_handled(loop, pair):
    """exec, resize and signal in one write: the last two were lost."""
    client, server_sock = pair
    readers, writers = passed_pipes(3)
    data = (frame("exec", process={"args": ["sh"]}, tty=False)
            + frame("resize", rows=40, cols=100) + frame("signal", signal=2))
    fd_passing.send(client, data, readers)
    for fd in readers:
        os.close(fd)
    server, sessions = _exec_server(loop, wanted=2)
    run_client(loop, server, server_sock)
    (session,) = sessions
    assert [m["t"] for m in session.sent] == ["resize", "signal"]
    assert session.window == (40, 100) and session.sent[1]["signal"] == 2
    assert sorted(session.stdio) == ["stderr", "stdin", "stdout"]
    client.shutdown(socket.SHUT_WR)
    assert replies(client) == [{"t": "reply", "ok": True, "session": 7},
                               {"t": "exit", "status": 3}]
    for fd in session.stdio.values():  # the session's now; it closes them
        os.close(fd)
    assert all_closed(writers)


def test_fds_passed_while_an_exec_runs_are_closed(loop, pair):
    client, server_sock = pair
    stdio, _ = passed_pipes(3)
    fd_passing.send(client, frame("exec", process={"args": ["sh"]}, tty=False), stdio)
    extra, writers = passed_pipes(2)
    fd_passing.send(client, frame("signal", signal=10), extra[:1])
    fd_passing.send(client, frame("resize", rows=1, cols=2), extra[1:])
    for fd in stdio + extra:
        os.close(fd)
    server, sessions = _exec_server(loop, wanted=2)
    run_client(loop, server, server_sock)
    for fd in sessions[0].stdio.values():
        os.close(fd)
    assert all_closed(writers)
