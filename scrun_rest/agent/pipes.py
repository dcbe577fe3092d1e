"""Pipes between a detached container and its stream sockets.

A container whose stdout is a socket cannot reopen it (`echo x > /dev/stderr`
fails with ENXIO), so a create/start container gets pipes, as under runc
run or conmon, and a thread per stream moves the bytes on: splice(2) where
the interpreter has it (3.10+), so they never enter Python, else read/send.
Like the anchor's relay, a pump rests a moment after a big move, so it
wakes once per pipeful rather than once per write of the container.
Python 3.6+, stdlib only.
"""
import errno
import os
import socket
import threading
import time

CHUNK = 1 << 20
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031
BULK_READ = 16 << 10
BULK_PAUSE = 0.002


def _pipe():
    read_end, write_end = os.pipe()
    try:
        import fcntl
        fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
    return read_end, write_end


class OutputPipe:
    """Container writes into `fd`; a thread moves it to the socket."""

    def __init__(self, sock):
        self.sock = socket.socket(fileno=os.dup(sock.fileno()))
        self.sock.setblocking(True)
        read_end, self.fd = _pipe()
        self.thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True)
        self.thread.start()

    def given(self):
        """The container holds the write end now: drop ours, so its exit is our EOF."""
        os.close(self.fd)

    def _pump(self, read_end):
        try:
            _move_all(read_end, self.sock.fileno(), _send_to(self.sock))
        except OSError:
            # Nobody reads any more: keep draining so the container never blocks.
            while _read(read_end):
                pass
        finally:
            os.close(read_end)
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.sock.close()

    def join(self, timeout):
        self.thread.join(timeout)


class InputPipe:
    """The socket's bytes go into a pipe the container reads as `fd`."""

    def __init__(self, sock):
        self.sock = socket.socket(fileno=os.dup(sock.fileno()))
        self.sock.setblocking(True)
        self.fd, write_end = _pipe()
        threading.Thread(target=self._pump, args=(write_end,), daemon=True).start()

    def given(self):
        os.close(self.fd)

    def _pump(self, write_end):
        try:
            _move_all(self.sock.fileno(), write_end, _write_to(write_end))
        except OSError:
            pass  # the container closed its stdin or is gone
        finally:
            os.close(write_end)
            self.sock.close()

    def join(self, timeout):
        pass


def _move_all(src, dst, write):
    """Until EOF on src: splice, or read and write, resting after big moves."""
    splice = getattr(os, "splice", None)
    while True:
        if splice is not None:
            try:
                moved = splice(src, dst, CHUNK)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # copy instead
                    raise
                splice = None
                continue
        else:
            data = _read(src)
            write(data)
            moved = len(data)
        if not moved:
            return
        if moved >= BULK_READ:
            time.sleep(BULK_PAUSE)


def _read(fd):
    try:
        return os.read(fd, CHUNK)
    except ConnectionResetError:
        return b""


def _send_to(sock):
    return sock.sendall


def _write_to(fd):
    def write(data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return write
