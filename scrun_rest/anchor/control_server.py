"""The anchor's side of its control socket: one connection per command.

Commands and replies are CLIENT_TO_ANCHOR / ANCHOR_TO_CLIENT in
tunnel/messages.py; the client half is anchor/control.py. Only processes
of the anchor's own uid are served (SO_PEERCRED).
"""
import asyncio
import collections
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


class ControlInbox:
    """What one control connection receives: its commands in order, and the
    fds passed with them until someone takes them.

    One FrameReader for the whole connection, so frames that arrive in one
    read are all kept. An fd rides on a byte, not a frame: only exec takes
    the fds received with it; the rest are closed (drop_fds).
    """

    def __init__(self, loop, sock):
        self._loop = loop
        self._sock = sock
        self._reader = wire.FrameReader()
        self._pending = collections.deque()
        self._fds = []
        self._ended = False

    async def next(self):
        """The next checked command; None at the end of the stream."""
        while not self._pending:
            if self._ended:
                return None
            await _readable(self._loop, self._sock)
            try:
                data, received = fd_passing.receive(self._sock, 1 << 16, MAX_FDS)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data, received = b"", []
            self._fds.extend(received)
            if not data:
                self._ended = True
                continue
            self._pending.extend(self._reader.feed(data))
        return messages.check(messages.CLIENT_TO_ANCHOR, self._pending.popleft())

    def take_fds(self):
        """The fds received so far, now the caller's to close."""
        fds, self._fds = self._fds, []
        return fds

    def drop_fds(self):
        _close_all(self.take_fds())


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
        inbox = ControlInbox(self.loop, sock)
        try:
            message = await inbox.next()
            if message is None:
                return
            await self.carry_out(message, sock, inbox)
        except (wire.TunnelError, messages.ProtocolError) as exc:
            log.warning("a control client broke the protocol: %s", exc)
            _send(sock, "reply", ok=False, error="protocol error: %s" % exc)
        except UserError as exc:
            _send(sock, "reply", ok=False, error=str(exc))
        finally:
            inbox.drop_fds()  # whatever no exec session took over
            sock.close()

    async def carry_out(self, message, sock, inbox):
        kind = message["t"]
        if kind == "exec":
            await self.serve_exec(sock, message, inbox)
            return
        inbox.drop_fds()  # only exec hands fds on
        if kind == "start":
            await self.anchor.start()
            _send(sock, "reply", ok=True)
        elif kind == "kill":
            self.anchor.kill(message["signal"])
            _send(sock, "reply", ok=True)
        elif kind == "delete":
            code = await self.anchor.delete()
            _send(sock, "reply", ok=True, exit_code=code)
        else:
            raise messages.ProtocolError("%s is not a command" % kind)

    async def serve_exec(self, sock, message, inbox):
        """An exec client passed us its stdio; it waits here for the exit code."""
        names = ["tty"] if message["tty"] else ["stdin", "stdout", "stderr"]
        fds = inbox.take_fds()
        try:
            if len(fds) != len(names):
                raise UserError("exec needs %d file descriptors, got %d"
                                % (len(names), len(fds)))
            window = message.get("window")
            session = await self.new_exec_session(
                message["process"], dict(zip(names, fds)), tuple(window) if window else None)
            fds = []  # the session owns them now
        finally:
            _close_all(fds)
        _send(sock, "reply", ok=True, session=session.number)
        listener = asyncio.ensure_future(self._exec_client_messages(inbox, session))
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

    async def _exec_client_messages(self, inbox, session):
        """Window sizes and signals that the exec client forwards."""
        while not session.exit_future.done():
            message = await inbox.next()
            inbox.drop_fds()  # resize and signal carry none
            if message is None:
                return
            if message["t"] == "resize":
                session.window = (message["rows"], message["cols"])
                session.send_all(task_message("resize", rows=message["rows"],
                                              cols=message["cols"]))
            elif message["t"] == "signal":
                session.send_all(task_message("signal", signal=message["signal"]))
