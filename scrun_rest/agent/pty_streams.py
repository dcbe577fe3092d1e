"""The container's terminal on the node: a pty, and the pumps between its
master and the tty stream socket. Python 3.6+, stdlib only.
"""
import fcntl
import os
import pty
import socket
import struct
import termios
import threading

COPY_CHUNK = 1 << 20


def open_pty(rows, cols):
    """(master, slave) fds of a new pty of that size (when given)."""
    master, slave = pty.openpty()
    set_window_size(master, rows, cols)
    return master, slave


def set_window_size(fd, rows, cols):
    if rows and cols:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(rows), int(cols), 0, 0))


def make_controlling_terminal():
    """preexec_fn for the runtime: its stdin, the slave, becomes its terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def start_pumps(master, sock):
    """Move bytes both ways; returns the output pump's thread, which ends
    once the terminal's last output has left."""
    output = threading.Thread(target=_pump_fd_to_socket, args=(master, sock), daemon=True)
    output.start()
    threading.Thread(target=_pump_socket_to_fd, args=(sock, master), daemon=True).start()
    return output


def _pump_fd_to_socket(fd, sock):
    while True:
        try:
            data = os.read(fd, COPY_CHUNK)
        except OSError:
            data = b""
        if not data:
            break
        try:
            sock.sendall(data)
        except OSError:
            break
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _pump_socket_to_fd(sock, fd):
    while True:
        try:
            data = sock.recv(COPY_CHUNK)
        except OSError:
            data = b""
        if not data:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except OSError:
                return
            view = view[written:]
