"""The anchor's side of its control socket: one connection per command.

Commands and replies are CLIENT_TO_ANCHOR / ANCHOR_TO_CLIENT in
tunnel/messages.py; the client half is anchor/control.py. Only processes
of the anchor's own uid are served (SO_PEERCRED).
"""
import asyncio
import logging
import os

from scrun_rest import fd_passing
from scrun_rest.anchor import control
from scrun_rest.anchor.accept_loop import AcceptLoop
from scrun_rest.anchor.sessions import Session
from scrun_rest.anchor.task_links import task_message
from scrun_rest.errors import UserError
from scrun_rest.tunnel import messages, wire

log = logging.getLogger("scrun_rest.anchor")
MAX_FDS = 4
# How long an exec waits for a container that start has just let go.
EXEC_WAITS_FOR_START = 30


async def _readable(loop, sock):
    fd = sock.fileno()
    future = loop.create_future()
    loop.add_reader(fd, lambda: future.done() or future.set_result(None))
    try:
        await future
    finally:
        loop.remove_reader(fd)


async def receive(loop, sock):
    """One checked command plus any fds passed with it; None at EOF."""
    reader = wire.FrameReader()
    fds = []
    while True:
        await _readable(loop, sock)
        try:
            data, received = fd_passing.receive(sock, 1 << 16, MAX_FDS)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            return None, fds
        fds.extend(received)
        if not data:
            return None, fds
        found = reader.feed(data)
        if found:
            return messages.check(messages.CLIENT_TO_ANCHOR, found[0]), fds


def _send(sock, kind, **fields):
    try:
        sock.setblocking(True)
        wire.send(sock, messages.make(messages.ANCHOR_TO_CLIENT, kind, **fields))
        sock.setblocking(False)
    except OSError:
        pass


def _close_all(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class ControlServer:
    def __init__(self, anchor):
        self.anchor = anchor
        self.loop = anchor.loop
        self.stopped = asyncio.Event()
        self.accepting = None

    async def serve(self, listener):
        """Accept commands until stop(): out of fds it pauses, it never ends."""
        self.accepting = AcceptLoop(self.loop, listener, self._accepted,
                                    "control socket").start()
        try:
            await self.stopped.wait()
        finally:
            self.accepting.stop()

    def stop(self):
        """Call before the listener closes: no reader may outlive its fd."""
        if self.accepting is not None:
            self.accepting.stop()
        self.stopped.set()

    def _accepted(self, client, _):
        uid = control.peer_uid(client)
        if uid != os.getuid():
            log.error("refused a control connection from uid %d", uid)
            client.close()
            return
        self.anchor.tasks.start(self.serve_client(client), "control command")

    async def serve_client(self, sock):
        sock.setblocking(False)
        fds = []
        try:
            message, fds = await receive(self.loop, sock)
            if message is None:
                return
            await self.carry_out(message, sock, fds)
        except (wire.TunnelError, messages.ProtocolError) as exc:
            log.warning("a control client broke the protocol: %s", exc)
            _send(sock, "reply", ok=False, error="protocol error: %s" % exc)
        except UserError as exc:
            _send(sock, "reply", ok=False, error=str(exc))
        finally:
            _close_all(fds)  # fds that no exec session took over
            sock.close()

    async def carry_out(self, message, sock, fds):
        kind = message["t"]
        if kind == "start":
            await self.anchor.start()
            _send(sock, "reply", ok=True)
        elif kind == "kill":
            self.anchor.kill(message["signal"])
            _send(sock, "reply", ok=True)
        elif kind == "delete":
            code = await self.anchor.delete()
            _send(sock, "reply", ok=True, exit_code=code)
        elif kind == "exec":
            await self.serve_exec(sock, message, fds)
        else:
            raise messages.ProtocolError("%s is not a command" % kind)

    async def serve_exec(self, sock, message, fds):
        """An exec client passed us its stdio; it waits here for the exit code."""
        names = ["tty"] if message["tty"] else ["stdin", "stdout", "stderr"]
        if len(fds) != len(names):
            raise UserError("exec needs %d file descriptors, got %d" % (len(names), len(fds)))
        window = message.get("window")
        session = await self.new_exec_session(
            message["process"], dict(zip(names, fds)), tuple(window) if window else None)
        del fds[:]  # the session owns them now
        _send(sock, "reply", ok=True, session=session.number)
        listener = asyncio.ensure_future(self._exec_client_messages(sock, session))
        code = await session.exit_future
        listener.cancel()
        try:
            await listener
        except (asyncio.CancelledError, wire.TunnelError, messages.ProtocolError):
            pass
        _send(sock, "exit", status=code)

    async def new_exec_session(self, process, stdio, window):
        anchor = self.anchor
        anchor.life.exec_request()
        main = anchor.main
        # `podman run -d` returns once start sent go; an exec right after it
        # waits the moment until runc has the container (or it failed).
        waits = [asyncio.ensure_future(main.started_event.wait()),
                 asyncio.ensure_future(main.ended.wait())]
        _, unfinished = await asyncio.wait(waits, timeout=EXEC_WAITS_FOR_START,
                                           return_when=asyncio.FIRST_COMPLETED)
        for waiting in unfinished:
            waiting.cancel()
        if not anchor.main_container_name() or anchor.life.ending:
            raise UserError("container %s has not started" % anchor.setup.container_id)
        number = anchor.next_session
        anchor.next_session += 1
        session = Session(self.loop, number, "exec", 1, stdio, process=process, window=window)
        anchor.sessions[number] = session
        anchor.launch(session, node=main.tasks[0].node)
        return session

    async def _exec_client_messages(self, sock, session):
        """Window sizes and signals that the exec client forwards."""
        while not session.exit_future.done():
            message, _ = await receive(self.loop, sock)
            if message is None:
                return
            if message["t"] == "resize":
                session.window = (message["rows"], message["cols"])
                session.send_all(task_message("resize", rows=message["rows"],
                                              cols=message["cols"]))
            elif message["t"] == "signal":
                session.send_all(task_message("signal", signal=message["signal"]))
