"""The anchor's unix control socket: the commands start, kill, delete, exec.

The client half is stdlib-only so `kill` and `delete` stay light. Only
processes of the anchor's own uid are served (SO_PEERCRED); the socket lives
in the 0700 spool dir as a second fence.
"""
import array
import os
import socket
import struct

from scrun_rest.tunnel import wire

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


def send_with_fds(sock, message, fds):
    data = wire.encode(message)
    if not fds:
        sock.sendall(data)
        return
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    sent = sock.sendmsg([data], ancillary)
    if sent < len(data):
        sock.sendall(data[sent:])


def request(path, message, fds=(), timeout=None):
    """Send one command and return the anchor's single reply."""
    sock = connect(path, timeout)
    try:
        send_with_fds(sock, message, fds)
        reply = wire.recv(sock)
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise AnchorGone(str(exc))
    finally:
        sock.close()
    if reply is None:
        raise AnchorGone("the anchor closed the connection")
    return reply
