"""Pipes between a detached container and its stream sockets.

A container whose stdout is a socket cannot reopen it (`echo x > /dev/stderr`
fails with ENXIO), so a create/start container gets pipes, as under runc
run or conmon, and a thread per stream moves the bytes on, with splice(2)
where the interpreter has it (3.10+), so they never enter Python, else
with read and write.

splice(2) holds the pipe's lock while it waits (for data on the socket, or
room in it), and a container blocked on that lock sleeps uninterruptibly:
not even SIGKILL ends it. So no splice here ever waits: both ends are
non-blocking, and the waiting is done in poll().

Like the anchor's relay, a pump rests a moment after a big move, so it
wakes once per pipeful rather than once per write of the container.
Python 3.6+, stdlib only.
"""
import errno
import os
import select
import socket
import threading
import time

from scrun_rest import pipe_size

CHUNK = 1 << 20
BULK_READ = 16 << 10
BULK_PAUSE = 0.002
SOCKET_BUFFER = 4 << 20


def _pipe():
    read_end, write_end = os.pipe()
    pipe_size.widen(write_end)
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
            if not _splice_all(read_end, self.sock.fileno(), self.sock):
                _copy_all(read_end, self.sock.sendall)
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
        # The pump rests between big reads: the socket must hold what arrives
        # meanwhile, or it caps the stream (a 90 KiB buffer held 45 MB/s).
        _enlarge_buffer(self.sock, socket.SO_RCVBUF)
        self.fd, write_end = _pipe()
        threading.Thread(target=self._pump, args=(write_end,), daemon=True).start()

    def given(self):
        os.close(self.fd)

    def _pump(self, write_end):
        try:
            if not _splice_all(self.sock.fileno(), write_end, self.sock):
                _copy_all(self.sock.fileno(), _write_to(write_end))
        except OSError:
            pass  # the container closed its stdin or is gone
        finally:
            os.close(write_end)
            self.sock.close()

    def join(self, timeout):
        pass


def _enlarge_buffer(sock, option):
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
    except OSError:
        pass


def _splice_all(src, dst, sock):
    """Splice src into dst until EOF (sock is the end that is a socket, the
    other a pipe); False if splice cannot be used here."""
    if not hasattr(os, "splice"):
        return False
    sock.setblocking(False)
    while True:
        try:
            moved = os.splice(src, dst, CHUNK, flags=os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            # src is empty or dst full: wait for the one that is.
            if _ready(dst, select.POLLOUT, 0):
                _ready(src, select.POLLIN, None)
            else:
                _ready(dst, select.POLLOUT, None)
            continue
        except ConnectionResetError:
            if sock.fileno() == src:
                return True  # the anchor is gone: that ends our input
            raise
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                sock.setblocking(True)
                return False
            raise
        if not moved:
            return True
        if moved >= BULK_READ:
            time.sleep(BULK_PAUSE)


def _ready(fd, events, timeout):
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(timeout))


def _copy_all(src, write):
    """Read src to its end, write() each piece, resting after big reads."""
    while True:
        data = _read(src)
        if not data:
            return
        write(data)
        if len(data) >= BULK_READ:
            time.sleep(BULK_PAUSE)


def _read(fd):
    try:
        return os.read(fd, CHUNK)
    except ConnectionResetError:
        return b""


def _write_to(fd):
    def write(data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return write
