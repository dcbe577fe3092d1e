"""Byte pumps between local fds (conmon's pipes, a pty) and tunnel sockets.

Each destination fd has one Sink that queues what several sources write, so
task outputs interleave in whole chunks and a slow reader (conmon, a full
pipe) pauses the sources instead of growing memory without bound.
"""
import errno
import os
import socket
import stat
import threading
from collections import deque

CHUNK = 1 << 20
# Sources pause while this much is queued for a sink.
HIGH_WATER = 4 << 20
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031


def set_nonblocking(fd):
    os.set_blocking(fd, False)


def enlarge_pipe(fd):
    """Bigger pipe buffers mean fewer wake-ups per megabyte."""
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            import fcntl
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


def pollable(fd):
    """epoll refuses regular files and /dev/null; those need another way."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


class Sink:
    def __init__(self, loop, fd, on_error=None):
        self.loop = loop
        self.fd = fd
        self.queue = deque()
        self.queued = 0
        self.waiters = []
        self.broken = False
        self.closing = None
        self.on_error = on_error

    def write(self, data):
        """Queue data; False means the caller should pause until drained."""
        if self.broken:
            return True
        if not self.queue:
            data = self._write_now(data)
            if not data:
                return True
            self.loop.add_writer(self.fd, self._writable)
        self.queue.append(data)
        self.queued += len(data)
        return self.queued < HIGH_WATER

    def _write_now(self, data):
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                return bytes(view)
            except OSError as exc:
                self._break(exc)
                return b""
            view = view[written:]
        return b""

    def _writable(self):
        while self.queue:
            head = self.queue.popleft()
            self.queued -= len(head)
            rest = self._write_now(head)
            if rest:
                self.queue.appendleft(rest)
                self.queued += len(rest)
                break
        if not self.queue:
            self.loop.remove_writer(self.fd)
            self._drained()

    def _drained(self):
        waiters, self.waiters = self.waiters, []
        for callback in waiters:
            callback()
        if self.closing is not None:
            closing, self.closing = self.closing, None
            closing()

    def _break(self, exc):
        self.broken = True
        self.queue.clear()
        self.queued = 0
        try:
            self.loop.remove_writer(self.fd)
        except (ValueError, OSError):
            pass
        if self.on_error is not None:
            self.on_error(exc)
        self._drained()

    def when_drained(self, callback):
        if self.queue:
            self.waiters.append(callback)
        else:
            callback()

    def close_after_drain(self, action):
        """Run action (shutdown, close) once everything queued is written."""
        if self.queue:
            self.closing = action
        else:
            action()


class Source:
    """Reads an fd and feeds a sink; calls on_eof once at the end."""

    def __init__(self, loop, fd, sink, on_eof, transform=None):
        self.loop = loop
        self.fd = fd
        self.sink = sink
        self.on_eof = on_eof
        self.transform = transform
        self.done = False
        self.reading = False
        self._resume()

    def _resume(self):
        if not self.done and not self.reading:
            self.loop.add_reader(self.fd, self._readable)
            self.reading = True

    def _pause(self):
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False

    def _readable(self):
        try:
            data = os.read(self.fd, CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO is how a pty says its other side closed.
            if exc.errno not in (errno.EIO, errno.ECONNRESET, errno.EPIPE):
                raise
            data = b""
        if not data:
            self.finish()
            return
        if self.transform is not None:
            data = self.transform(data)
        if not self.sink.write(data):
            self._pause()
            self.sink.when_drained(self._resume)

    def finish(self):
        if self.done:
            return
        self._pause()
        self.done = True
        if self.transform is not None and hasattr(self.transform, "flush"):
            rest = self.transform.flush()
            if rest:
                self.sink.write(rest)
        self.on_eof()


class LineLabeller:
    """Prefix every line with the task id, as `srun --label` does."""

    def __init__(self, task):
        self.prefix = ("%d: " % task).encode()
        self.partial = b""

    def __call__(self, data):
        data = self.partial + data
        head, sep, self.partial = data.rpartition(b"\n")
        if not sep:
            self.partial = data
            return b""
        return b"".join(self.prefix + line + b"\n" for line in head.split(b"\n"))

    def flush(self):
        rest, self.partial = self.partial, b""
        return self.prefix + rest if rest else b""


def copy_in_thread(src_fd, sock, on_done):
    """For a source epoll cannot watch (a regular file): plain blocking copy."""
    def run():
        out = socket.socket(fileno=os.dup(sock.fileno()))
        out.setblocking(True)
        try:
            while True:
                data = os.read(src_fd, CHUNK)
                if not data:
                    break
                out.sendall(data)
            out.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            out.close()
            on_done()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
