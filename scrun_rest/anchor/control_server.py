"""Requests on the anchor's control socket, one connection per command."""
import array
import asyncio
import logging
import socket

from scrun_rest.errors import UserError
from scrun_rest.tunnel import wire

log = logging.getLogger("scrun_rest.anchor")
MAX_FDS = 4
KILL = 9


async def _readable(loop, sock):
    fd = sock.fileno()
    future = loop.create_future()
    loop.add_reader(fd, lambda: future.done() or future.set_result(None))
    try:
        await future
    finally:
        loop.remove_reader(fd)


async def receive(loop, sock):
    """One framed message plus any fds passed with it; None at EOF."""
    reader = wire.FrameReader()
    fds = []
    while True:
        await _readable(loop, sock)
        try:
            data, ancdata, _, _ = sock.recvmsg(1 << 16, socket.CMSG_SPACE(MAX_FDS * 4))
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            return None, fds
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[:len(payload) - len(payload) % 4])
                fds.extend(received)
        if not data:
            return None, fds
        messages = reader.feed(data)
        if messages:
            return messages[0], fds


def _reply(sock, message):
    try:
        sock.setblocking(True)
        wire.send(sock, message)
        sock.setblocking(False)
    except OSError:
        pass


async def handle_client(anchor, sock):
    loop = anchor.loop
    sock.setblocking(False)
    try:
        message, fds = await receive(loop, sock)
    except wire.TunnelError:
        sock.close()
        return
    if message is None:
        sock.close()
        return
    command = message.get("cmd")
    try:
        if command == "start":
            anchor.start()
            _reply(sock, {"ok": True})
        elif command == "kill":
            anchor.kill(int(message.get("signal", 15)))
            _reply(sock, {"ok": True})
        elif command == "delete":
            anchor.kill(KILL)
            code = await anchor.wait_stopped()
            _reply(sock, {"ok": True, "exit_code": code})
        elif command == "exec":
            await _serve_exec(anchor, sock, message, fds)
        else:
            _reply(sock, {"ok": False, "error": "unknown command %r" % command})
    except UserError as exc:
        _reply(sock, {"ok": False, "error": str(exc)})
    except Exception as exc:  # keep the anchor alive for the container's sake
        log.exception("control command %s failed", command)
        _reply(sock, {"ok": False, "error": "internal error: %s" % exc})
    finally:
        sock.close()


async def _serve_exec(anchor, sock, message, fds):
    """An exec client passed us its stdio; it waits here for the exit code."""
    names = ["tty"] if message.get("tty") else ["stdin", "stdout", "stderr"]
    if len(fds) != len(names):
        raise UserError("exec needs %d file descriptors, got %d" % (len(names), len(fds)))
    stdio = dict(zip(names, fds))
    window = message.get("window")
    session = await anchor.new_exec_session(message.get("process") or {}, stdio,
                                            tuple(window) if window else None)
    _reply(sock, {"ok": True, "session": session.number})
    listener = asyncio.ensure_future(_exec_client_messages(anchor, sock, session))
    code = await session.exit_future
    listener.cancel()
    try:
        await listener
    except asyncio.CancelledError:
        pass
    _reply(sock, {"exit": code})


async def _exec_client_messages(anchor, sock, session):
    """Window sizes and signals that the exec client forwards."""
    while not session.exit_future.done():
        message, _ = await receive(anchor.loop, sock)
        if message is None:
            return
        if message.get("t") == "resize":
            session.window = (message["rows"], message["cols"])
            session.send_all({"t": "resize", "rows": message["rows"], "cols": message["cols"]})
        elif message.get("t") == "signal":
            session.send_all({"t": "signal", "signal": int(message["signal"])})
