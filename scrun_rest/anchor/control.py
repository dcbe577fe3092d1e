"""The anchor's unix control socket: binding it, and the client half.

Commands and replies are CLIENT_TO_ANCHOR / ANCHOR_TO_CLIENT in
tunnel/messages.py; the anchor's half is control_server.py. The client half
is stdlib-only so `kill` and `delete` stay light. Only processes of the
anchor's own uid are served (SO_PEERCRED); the socket lives in the 0700
spool dir as a second fence.
"""
import os
import socket
import struct

from scrun_rest import fd_passing
from scrun_rest.tunnel import messages, wire

# sun_path holds 108 bytes; deeper spool dirs are reached relative to them.
MAX_SUN_PATH = 100


class AnchorGone(Exception):
    """Nobody listens on the control socket any more."""


def _short_path(path):
    """A name for path that fits sun_path, via /proc when it is too long."""
    if len(path.encode()) <= MAX_SUN_PATH:
        return path, None
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    return "/proc/self/fd/%d/%s" % (fd, os.path.basename(path)), fd


def bind(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    short, fd = _short_path(path)
    old_umask = os.umask(0o177)
    try:
        sock.bind(short)
    finally:
        os.umask(old_umask)
        if fd is not None:
            os.close(fd)
    sock.listen(16)
    return sock


def peer_uid(sock):
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def connect(path, timeout=None):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        short, fd = _short_path(path)
    except OSError as exc:
        sock.close()
        raise AnchorGone(str(exc))
    try:
        sock.connect(short)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise AnchorGone(str(exc))
    except OSError:
        sock.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return sock


def send(sock, kind, fds=(), **fields):
    """One command (and fds for exec) to the anchor."""
    message = messages.make(messages.CLIENT_TO_ANCHOR, kind, **fields)
    fd_passing.send(sock, wire.encode(message), fds)


def receive(sock):
    """The anchor's next reply; None when it hung up."""
    reply = wire.recv(sock)
    return None if reply is None else messages.check(messages.ANCHOR_TO_CLIENT, reply)


def request(path, kind, timeout=None, **fields):
    """Send one command and return the anchor's single reply."""
    sock = connect(path, timeout)
    try:
        send(sock, kind, **fields)
        reply = receive(sock)
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise AnchorGone(str(exc))
    finally:
        sock.close()
    if reply is None:
        raise AnchorGone("the anchor closed the connection")
    return reply
