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


def open_for(console_socket):
    """A raw pty; its master is sent to console_socket, the slave returned."""
    master, slave = pty.openpty()
    tty.setraw(slave)
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
