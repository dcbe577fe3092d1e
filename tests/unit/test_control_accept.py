"""The control socket keeps answering kill, exec and start whatever its
accept runs into (issue 15 item 2): it pauses, it neither spins nor ends."""
import asyncio
import errno
import os
import socket
import time

from scrun_rest.anchor import control
from scrun_rest.anchor.control_server import ControlServer
from scrun_rest.anchor.supervisor import Supervisor


class FakeAnchor:
    def __init__(self, loop):
        self.loop = loop
        self.failures = []
        self.tasks = Supervisor(loop, lambda code, text: self.failures.append(text))
        self.signals = []

    def kill(self, signal):
        self.signals.append(signal)


class FailingAccept:
    """The listener's accept fails with each errno of `errors` in turn, then works."""

    def __init__(self, monkeypatch, fd, errors):
        real = socket.socket.accept
        self.errors = list(errors)
        self.calls = 0

        def accept(sock):
            if sock.fileno() == fd:
                self.calls += 1
                if self.errors:
                    code = self.errors.pop(0)
                    raise OSError(code, os.strerror(code))
            return real(sock)

        monkeypatch.setattr(socket.socket, "accept", accept)


def test_the_control_socket_survives_what_accept_and_a_client_throw(monkeypatch, tmp_path):
    """An accept error other than EMFILE made the accept loop retry without
    yielding (the anchor froze while it lasted), and a client whose
    credentials could not be read ended the control socket's task, and with
    it the container."""
    path = str(tmp_path / "ctl.sock")
    listener = control.bind(path)
    listener.setblocking(False)
    failing = FailingAccept(monkeypatch, listener.fileno(),
                            [errno.EMFILE] * 3 + [errno.EINVAL] * 1000)
    real_peer_uid = control.peer_uid
    broken = {"left": 1}

    def peer_uid(sock):
        if broken["left"]:
            broken["left"] -= 1
            raise OSError(errno.ENOTCONN, "credentials gone")
        return real_peer_uid(sock)

    monkeypatch.setattr(control, "peer_uid", peer_uid)

    async def scenario():
        loop = asyncio.get_running_loop()
        anchor = FakeAnchor(loop)
        server = ControlServer(anchor)
        serving = anchor.tasks.start(server.serve(listener), "control socket")
        waiting = socket.socket(socket.AF_UNIX)
        waiting.connect(path)  # makes the listener readable
        ticks = 0
        began = time.monotonic()
        while time.monotonic() - began < 1.0:
            await asyncio.sleep(0.05)
            ticks += 1
        calls_in_a_second = failing.calls
        failing.errors = []
        # The first client meets the broken credentials and is dropped...
        waiting.settimeout(5)
        assert await loop.run_in_executor(None, waiting.recv, 10) == b""
        waiting.close()
        # ...and the next one is served.
        reply = await loop.run_in_executor(None, lambda: control.request(
            path, "kill", timeout=5, signal=15))
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        return calls_in_a_second, ticks, reply, anchor

    calls, ticks, reply, anchor = asyncio.run(scenario())
    listener.close()
    assert ticks >= 15  # the loop kept running
    assert 2 <= calls <= 15, calls
    assert reply["ok"] and anchor.signals == [15]
    assert anchor.failures == []
