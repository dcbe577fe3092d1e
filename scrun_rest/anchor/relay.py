"""Byte pumps between local fds (conmon's pipes, a pty) and tunnel sockets.

Each destination fd has one Sink that queues what several sources write, so
task outputs interleave in whole chunks and a slow reader (conmon, a full
pipe) pauses the sources instead of growing memory without bound.

Between a socket and a pipe (the usual case: a task's stream socket and
conmon's pipes) the bytes move with splice(2) and never enter Python, and
after a bulk read a source rests a moment, so the anchor wakes once per
pipeful: 0.1 s of CPU per 500 MB where reading and writing every 32 KiB
piece took 0.5 s (README, Performance). No splice here waits: every fd is
non-blocking (a waiting splice would hold the pipe's lock against conmon).
"""
import errno
import os
import select
import socket
import stat
import threading
from collections import deque

from scrun_rest import pipe_size

CHUNK = 1 << 20
# Sources pause while this much is queued for a sink.
HIGH_WATER = 4 << 20
# At most this much moves per wake-up, so one busy stream cannot starve the
# others (or the tunnel's control messages) on the event loop.
BURST = 8 << 20
# A wake-up that moved this much is part of a bulk stream: the next read
# waits BULK_PAUSE seconds so it finds a pipeful instead of one write's worth.
BULK_READ = 16 << 10
BULK_PAUSE = 0.002
SOCKET_BUFFER = 4 << 20
SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


def set_nonblocking(fd):
    os.set_blocking(fd, False)


def enlarge_socket_buffer(fd, option):
    """A fixed 4 MiB socket buffer: autotuning grows it only as fast as the
    reader drains it, and our reader rests between bulk reads."""
    if not _is_socket(fd):
        return
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
    except OSError:
        pass
    finally:
        sock.close()


def _is_fifo(fd):
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def _is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def can_splice(src_fd, dst_fd):
    """splice(2) needs a pipe on one side; we use it for pipe<->socket only."""
    if not hasattr(os, "splice"):
        return False
    return (_is_socket(src_fd) and _is_fifo(dst_fd)) or \
        (_is_fifo(src_fd) and _is_socket(dst_fd))


def writable_now(fd):
    """Whether a write to fd would not block (poll with no wait)."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(0))


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
        enlarge_socket_buffer(fd, socket.SO_SNDBUF)
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

    def when_writable(self, callback):
        """Call back once the fd takes more (a splicing source waits so)."""
        if self.broken:
            callback()
            return
        self.waiters.append(callback)
        if not self.queue:
            # _writable with nothing queued just reports the drain.
            self.loop.add_writer(self.fd, self._writable)

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
        self.splicing = transform is None and can_splice(fd, sink.fd)
        self.sink_is_socket = self.splicing and _is_socket(sink.fd)
        # Room for what arrives while we rest between bulk reads.
        pipe_size.widen(fd)
        enlarge_socket_buffer(fd, socket.SO_RCVBUF)
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
        if self.splicing and not self.sink.queue and not self.sink.broken:
            self._splice()
            return
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
        bulk = len(data) >= BULK_READ
        if self.transform is not None:
            data = self.transform(data)
        if not self.sink.write(data):
            self._pause()
            self.sink.when_drained(self._resume)
        elif bulk:
            self._rest_a_moment()

    def _rest_a_moment(self):
        """In the middle of a bulk stream, let more arrive before the next read.

        The writer (runc's copy loop, conmon) hands over 8-32 KiB at a time;
        waking for each piece cost the anchor more CPU than the bytes. Short
        output (a prompt, a log line) never waits: only big reads rest.
        """
        self._pause()
        self.loop.call_later(BULK_PAUSE, self._resume)

    def _splice(self):
        """Move what the fd holds straight into the sink's fd, in the kernel."""
        moved_total = 0
        while moved_total < BURST:
            try:
                moved = os.splice(self.fd, self.sink.fd, CHUNK, flags=SPLICE_FLAGS)
            except BlockingIOError:
                # Either our fd is empty (wait for it, as we do) or the sink
                # is full: then wait for the sink instead, after a rest, so
                # that its reader (conmon takes 8 KiB at a time) has made
                # room for more than one piece when we wake.
                if not writable_now(self.sink.fd):
                    self._pause()
                    self.loop.call_later(BULK_PAUSE, self.sink.when_writable, self._resume)
                elif moved_total >= BULK_READ:
                    self._rest_a_moment()
                return
            except OSError as exc:
                if not self._splice_failed(exc):
                    return
                moved = 0
            if not moved:
                self.finish()
                return
            moved_total += moved

    def _splice_failed(self, exc):
        """Sort out a splice error; True means our side reached its end."""
        sink_side = (errno.EPIPE, errno.ECONNRESET) if self.sink_is_socket else (errno.EPIPE,)
        if exc.errno in sink_side:
            # The reader is gone: the sink drops what follows, as write() does.
            self.sink._break(exc)
            self.splicing = False
            return False
        if exc.errno in (errno.EIO, errno.ECONNRESET, errno.EPIPE):
            return True
        if exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            # This pair of fds cannot splice after all: copy through Python.
            self.splicing = False
            return False
        raise exc

    def stop(self):
        """Read no more and never call on_eof (a pending rest or drain
        callback must not start reading an fd that is closed meanwhile)."""
        self._pause()
        self.done = True

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


# The longest unfinished line a labeller holds: output without newlines
# must not grow the anchor's memory (the container picks what it writes).
MAX_LABELLED_LINE = 64 << 10


class LineLabeller:
    """Prefix every line with the task id, as `srun --label` does. A line
    longer than MAX_LABELLED_LINE goes out in labelled pieces of that size."""

    def __init__(self, task):
        self.prefix = ("%d: " % task).encode()
        self.partial = b""

    def __call__(self, data):
        head, sep, self.partial = (self.partial + data).rpartition(b"\n")
        lines = head.split(b"\n") if sep else []
        while len(self.partial) >= MAX_LABELLED_LINE:
            lines.append(self.partial[:MAX_LABELLED_LINE])
            self.partial = self.partial[MAX_LABELLED_LINE:]
        return b"".join(self.prefix + line + b"\n" for line in lines)

    def flush(self):
        rest, self.partial = self.partial, b""
        return self.prefix + rest if rest else b""


def copy_in_thread(src_fd, sock, on_done):
    """For a source epoll cannot watch (a regular file): plain blocking copy."""
    def run():
        out = socket.socket(fileno=os.dup(sock.fileno()))
        out.setblocking(True)
        try:
            _send_file(src_fd, out)
            out.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            out.close()
            on_done()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _send_file(src_fd, out):
    """sendfile(2) from a regular file, a read/send loop for anything else."""
    try:
        while os.sendfile(out.fileno(), src_fd, None, CHUNK):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS):
            raise
    while True:
        data = os.read(src_fd, CHUNK)
        if not data:
            break
        out.sendall(data)
