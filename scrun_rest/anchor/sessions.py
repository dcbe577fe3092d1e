"""A session is one process tree in the container: the container itself
(session 0, one or more tasks) or one `exec`. It owns the local end of the
stdio (conmon's pipes, a pty, or fds an exec client passed us) and wires
them to the tasks' stream sockets as those dial in.
"""
import asyncio
import logging
import os
import socket

from scrun_rest import pipe_size
from scrun_rest.anchor import relay

log = logging.getLogger("scrun_rest.anchor")
DRAIN_GRACE = 3.0
# srun's end can overtake a task's exit message (another connection): how
# long a still-connected task has to say how it ended.
EXIT_REPORT_GRACE = 5.0
# A task link that dropped without an exit: how long srun's or the agent's
# own account of the end may take before the task counts as lost.
TASK_LOST_GRACE = 2 * EXIT_REPORT_GRACE


class TaskLink:
    """What the anchor knows of one task: its control link and state."""

    def __init__(self, task_id, conn, role):
        self.id = task_id
        self.conn = conn
        self.node = role.get("node")
        self.said_prepared = False
        self.streams = set()
        self.expected_streams = ()
        self.container = None
        self.started = False               # its runtime runs the user's program
        self.runtime_root = None
        self.rootfs_copy = None            # its node's copy of the rootfs
        # Its bundle transfers (anchor/bundle_server.py), when it has items.
        self.transfer = None
        self.status = None
        self.error = None

    @property
    def prepared(self):
        # Stream sockets finish their handshake on another thread, so
        # "prepared" can overtake them: wait for both.
        return self.said_prepared and self.streams.issuperset(self.expected_streams)


class Session:
    def __init__(self, loop, number, kind, ntasks, stdio, labelio=False,
                 process=None, window=None):
        self.loop = loop
        self.number = number
        self.kind = kind
        self.ntasks = ntasks
        self.stdio = stdio
        self.labelio = labelio
        self.process = process
        self.window = window
        # What each task's control link authenticates with, good once per
        # task: the step's environment carries it on every node for the
        # task's lifetime (/proc/PID/environ), the task key never
        # (docs/security.md). The setup hands the task key over that link.
        self.ticket = os.urandom(32)
        self.tasks = {}
        self.sinks = {}
        self.open_outputs = 0
        self.go_sent = False
        self.step_status = None
        self.exit_grace_over = False
        self.step_output = []
        self.prepared_event = asyncio.Event()
        self.started_event = asyncio.Event()    # task 0 runs its process
        self.ended = asyncio.Event()
        self.drained = asyncio.Event()
        self.stdin_source = None
        # Input waits until the process may read it (go); the sockets are
        # kept so that they live as long as the session.
        self._pending_stdin = None
        self._pending_tty_input = None
        self._input_socks = []
        # An exec's exit status, for the client waiting on it.
        self.exit_future = loop.create_future() if number else None
        self._make_local_sinks()

    @property
    def terminal(self):
        return "tty" in self.stdio

    def streams_for(self, task_id):
        """Which stream sockets a task should open."""
        if self.terminal:
            return ["tty"]
        streams = ["stdout", "stderr"]
        if task_id == 0 and self.stdio.get("stdin") is not None:
            streams.insert(0, "stdin")
        return streams

    def _make_local_sinks(self):
        for name in ("stdout", "stderr", "tty"):
            fd = self.stdio.get(name)
            if fd is None:
                continue
            relay.set_nonblocking(fd)
            pipe_size.widen(fd)
            self.sinks[name] = relay.Sink(self.loop, fd)

    # -- tasks --------------------------------------------------------------
    def add_task(self, link):
        self.tasks[link.id] = link

    def ticket_for(self, task_id):
        """The key a task's control link must prove, or None once that task
        linked (or cannot be one of ours). Called from handshake threads: it
        only reads."""
        if self.ended.is_set() or task_id in self.tasks or not 0 <= task_id < self.ntasks:
            return None
        return self.ticket

    def all_prepared(self):
        return len(self.tasks) == self.ntasks and all(t.prepared for t in self.tasks.values())

    def all_started(self):
        return len(self.tasks) == self.ntasks and all(t.started for t in self.tasks.values())

    def exit_status(self):
        """srun's rule: the highest task exit status wins."""
        statuses = [t.status for t in self.tasks.values() if t.status is not None]
        if len(statuses) < self.ntasks and self.step_status is not None:
            statuses.append(self.step_status)
        return max(statuses) if statuses else None

    def all_exited(self):
        if len(self.tasks) == self.ntasks and all(
                t.status is not None for t in self.tasks.values()):
            return True
        if self.step_status is None:
            return False
        return self.exit_grace_over or all(
            t.status is not None or t.conn.closed for t in self.tasks.values())

    def first_error(self):
        for task_id in sorted(self.tasks):
            if self.tasks[task_id].error:
                return self.tasks[task_id].error, self.tasks[task_id].status
        return None, None

    # -- streams --------------------------------------------------------------
    def attach_stream(self, task_id, stream, sock):
        """Wire a task's authenticated stream socket to our side."""
        link = self.tasks.get(task_id)
        if link is not None:
            link.streams.add(stream)
        fd = sock.fileno()
        if stream == "stdin":
            self._attach_stdin(sock)
            return
        if stream == "tty":
            self._attach_terminal(sock)
            return
        sink = self.sinks.get(stream)
        if sink is None:
            sock.close()
            return
        transform = relay.LineLabeller(task_id) if self.labelio else None
        self.open_outputs += 1
        relay.Source(self.loop, fd, sink, lambda: self._output_closed(sock), transform)

    def _output_closed(self, sock):
        sock.close()
        self.open_outputs -= 1
        self.check_drained()

    def check_drained(self):
        if self.open_outputs <= 0 and self.all_exited():
            self.drained.set()

    def _attach_stdin(self, sock):
        fd = self.stdio.get("stdin")
        sink = relay.Sink(self.loop, sock.fileno())
        self._input_socks.append(sock)

        def close_stdin():
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        if fd is None:
            close_stdin()
            return
        self._pending_stdin = (fd, sock, sink, close_stdin)

    def start_input(self):
        """Only once the container runs may it read its stdin."""
        pending = self._pending_stdin
        if pending is None:
            return
        self._pending_stdin = None
        fd, sock, sink, close_stdin = pending
        if relay.pollable(fd):
            relay.set_nonblocking(fd)
            self.stdin_source = relay.Source(
                self.loop, fd, sink, lambda: sink.close_after_drain(close_stdin))
        else:
            relay.copy_in_thread(fd, sock, lambda: None)

    def _attach_terminal(self, sock):
        fd = self.stdio["tty"]
        remote = relay.Sink(self.loop, sock.fileno())
        self._input_socks.append(sock)
        self.open_outputs += 1
        relay.Source(self.loop, sock.fileno(), self.sinks["tty"],
                     lambda: self._output_closed(sock))
        self._pending_tty_input = (fd, remote)

    def start_terminal_input(self):
        pending = self._pending_tty_input
        if pending is None:
            return
        self._pending_tty_input = None
        fd, remote = pending
        self.stdin_source = relay.Source(self.loop, fd, remote, lambda: None)

    async def wait_drained(self):
        try:
            await asyncio.wait_for(self.drained.wait(), DRAIN_GRACE)
        except asyncio.TimeoutError:
            log.warning("session %d: output streams still open %.0f s after exit",
                        self.number, DRAIN_GRACE)

    async def flush_local(self, timeout=30.0):
        """Wait until conmon (or the exec client) has taken all our output."""
        for sink in self.sinks.values():
            if sink.queue:
                done = asyncio.Event()
                sink.when_drained(done.set)
                try:
                    await asyncio.wait_for(done.wait(), timeout)
                except asyncio.TimeoutError:
                    log.warning("session %d: nobody reads its output", self.number)

    def send_all(self, message):
        for link in self.tasks.values():
            link.conn.send(message)

    def close_local(self):
        """Stop reading local input; the session is over."""
        if self.stdin_source is not None:
            self.stdin_source.stop()
        for link in self.tasks.values():
            link.conn.close()
        if self.number:
            # An exec client's fds were passed to us: drop our copies so its
            # caller sees the end of the output.
            for fd in set(self.stdio.values()):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self.stdio = {}

    def write_local_error(self, text):
        """A line for the user on the container's stderr (or terminal)."""
        fd = self.stdio.get("stderr", self.stdio.get("tty"))
        if fd is None:
            return
        line = ("scrun-rest: %s\n" % text).encode("utf-8", "replace")
        if self.terminal:
            line = line.replace(b"\n", b"\r\n")
        sink = self.sinks.get("stderr") or self.sinks.get("tty")
        if sink is not None:
            sink.write(line)
        else:
            try:
                os.write(fd, line)
            except OSError:
                pass
