"""Terminals for containers and exec sessions: a raw pty pair whose master
goes to the caller's console socket, and window sizes."""
import fcntl
import os
import pty
import socket
import struct
import termios
import tty

from scrun_rest import fd_passing
from scrun_rest.errors import UserError


def open_for(console_socket, size=None):
    """A raw pty; its master is sent to console_socket, the slave returned.
    size: (rows, cols) it starts with (console_size)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    if size:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(console_socket)
        fd_passing.send(sock, b"pty-master", [master])
    except OSError as exc:
        os.close(slave)
        raise UserError("cannot send the terminal to %s: %s" % (
            console_socket, exc.strerror or exc))
    finally:
        sock.close()
        os.close(master)
    return slave


def console_size(process):
    """(rows, cols) of an OCI process's consoleSize, or None. docker gives
    its terminal's size there and resizes the pty only after start: without
    it the container's first moments see a 0x0 terminal."""
    size = (process or {}).get("consoleSize") or {}
    rows, cols = size.get("height"), size.get("width")
    if isinstance(rows, int) and isinstance(cols, int) and 0 < rows < 65536 and 0 < cols < 65536:
        return rows, cols
    return None


def window_size(fd):
    """(rows, cols) of the terminal on fd, or None when unknown."""
    if fd is None:
        return None
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return (rows, cols) if rows and cols else None


def make_controlling(fd):
    """Make fd our controlling terminal (we must lead a session)."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
