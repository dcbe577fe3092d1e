"""One task of a container step: dials the anchor and runs the runtime.

srun starts this on every node of the step. It connects to the anchor on its
own (no srun I/O forwarding in the data path), hands the stream sockets to the
OCI runtime as its stdio, passes signals and window sizes on, and reports
the exit status. Python 3.6+, stdlib only.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading

from scrun_rest import conf_lines
from scrun_rest.agent import (bundle_fetch, detached, leftovers, node_cache, oci_conf,
                              pipes, pty_streams, runtime_hooks, task_bundle)
from scrun_rest.tunnel import messages, wire

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT, signal.SIGCONT)
# How long to keep dialling the anchor when it drops or refuses us (it may
# be busy turning away a flood of bogus connections).
DIAL_PATIENCE = 20.0
# What a container that ignores Slurm's SIGTERM leaves us of KillWait to
# kill it, remove it and report its end before Slurm's SIGKILL.
CLEANUP_SHARE = 2.5


def log(text):
    sys.stderr.write("scrun-rest task: %s\n" % text)
    sys.stderr.flush()


def exit_status(returncode):
    """A Popen returncode as a shell would report it."""
    return 128 - returncode if returncode < 0 else returncode


class Task:
    def __init__(self, spec):
        self.host, self.port = spec["host"], int(spec["port"])
        # The control link proves the step's one-use ticket; its setup brings
        # the task key the streams prove (anchor/sessions.py).
        self.key = bytes.fromhex(spec["ticket"])
        self.tls_pin = spec.get("tls")
        self.anchor_place = spec.get("place")
        env = os.environ
        self.identity = {
            "session": spec["session"],
            "task": int(env.get("SLURM_PROCID", "0")),
            "node": env.get("SLURMD_NODENAME") or socket.gethostname(),
            "step": env.get("SLURM_STEP_ID", ""),
            "job": env.get("SLURM_JOB_ID", ""),
        }
        self.control = None
        self.send_lock = threading.Lock()
        self.process = None
        self.master_fd = None
        self.output_pump = None
        self.settings = {}
        self.workdir = None
        self.workdir_lock = None
        self.window = None
        # What to run (task_bundle.Plan): its start is set in create/start
        # mode (detached.py); None runs RunTimeRun.
        self.plan = None
        self.pipes = []
        self.streams = {}
        self.anchor_gone = threading.Event()
        # This node's copies of the container's files (bundle_fetch.py).
        self.copies = None
        self.container_removed = False
        self.cleaned = False
        self.ending = False

    def role(self, kind, **extra):
        role = dict(self.identity, kind=kind, **extra)
        messages.check_role(role)
        return role

    def dial(self, kind, **extra):
        # Keepalive lets the control link notice an anchor that became
        # unreachable, so _control_loop stops and removes the container
        # before Slurm kills this task.
        return wire.dial_patiently(DIAL_PATIENCE, self.host, self.port, self.key,
                                   self.role(kind, **extra), tls_pin=self.tls_pin,
                                   keepalive=(kind == "task"),
                                   anchor_place=self.anchor_place)

    def send(self, kind, **fields):
        message = messages.make(messages.TASK_TO_ANCHOR, kind, **fields)
        with self.send_lock:
            try:
                wire.send(self.control, message)
            except OSError:
                pass

    def run(self):
        try:
            self.control = self.dial("task")
            setup = wire.recv(self.control)
        except (OSError, wire.TunnelError) as exc:
            log("cannot reach the anchor at %s:%d: %s" % (self.host, self.port, exc))
            return 1
        if setup is None:
            log("the anchor sent no setup")
            return 1
        try:
            messages.check(messages.ANCHOR_TO_TASK, setup)
            if setup["t"] != "setup":
                _out_of_turn(setup)
            self.key = _task_key(setup)
        except messages.ProtocolError as exc:
            _log_protocol_error(exc)
            return 1
        self.settings = oci_conf.merge(setup["settings"], oci_conf.read_node_conf())
        scratch = self.settings.get("NodeScratch") or None
        leftovers.sweep(
            lambda values: runtime_hooks.run(self.settings, "RunTimeDelete", values), scratch)
        try:
            self.workdir, self.workdir_lock = leftovers.claim(scratch)
        except OSError as exc:
            text = "cannot make a scratch dir in %s on node %s: %s" % (
                scratch or "the temp dir", self.identity["node"], exc.strerror or exc)
            self.send("exit", status=126, error=text)
            return 126
        # Until the container runs, Slurm ending the step just ends us; the
        # exception unwinds through the cleanup below.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            return self._run(setup)
        except SystemExit as exc:
            return exc.code
        finally:
            self._cleanup()

    def _run(self, setup):
        self.copies = bundle_fetch.NodeCopies(setup.get("bundle") or [], self.workdir,
                                              self.identity["node"],
                                              node_cache.from_settings(self.settings))
        try:
            self.copies.fetch(self.dial, self.send, self._receive)
            setup = dict(setup, config=self.copies.localize(setup["config"]))
        except bundle_fetch.TransferFailed as exc:
            self._cleanup()
            self.send("exit", status=126, error=str(exc))
            return 126
        try:
            self.plan, problem = task_bundle.prepare(setup, self.settings, self.workdir)
        except (OSError, ValueError, KeyError, oci_conf.PatternError) as exc:
            self.plan, problem = None, (126, "cannot prepare the container: %s" % exc)
        if problem is None:
            problem = task_bundle.check_runtime(self.plan.command)
        if problem is None and self._removes_container():
            leftovers.record_container(self.workdir, self.plan.values)
        if problem:
            code, text = problem
            self._cleanup()
            self.send("exit", status=code, error=text)
            return code
        streams = self.streams = {name: self.dial("data", stream=name)
                                  for name in setup["streams"]}
        relays = self._relays(streams)
        # Ready to go: the anchor reports "created" once every task says so,
        # and `start` only has to send one message.
        self.send("prepared")
        if not self._wait_for_go():
            for sock in streams.values():
                sock.close()
            self._cleanup()
            return 0
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self._forward_signal)
        try:
            self._spawn(self.plan.command, streams, setup)
        except OSError as exc:
            text = "cannot run %s: %s" % (self.plan.command, exc)
            self._cleanup()
            self.send("exit", status=127, error=text)
            return 127
        runtime_hooks.wait_until_running(self.settings, self.plan, self.process)
        self.send("started", pid=self.process.pid, container=self.plan.values.get("container"),
                  root=self.plan.values.get("R"), rootfs=self.copies.local_rootfs())
        threading.Thread(target=self._control_loop, daemon=True).start()
        status = exit_status(self.process.wait())
        # Clean up before waiting for the streams to drain: Slurm may be
        # ending the step, and its SIGKILL must not find the container.
        self._remove_container()
        if not self.anchor_gone.is_set():
            for line in self.copies.write_back(self.dial, self.send):
                log(line)
        self._cleanup()
        if self.output_pump is not None:
            # The terminal's last output must leave before the status does.
            self.output_pump.join(5)
        for pipe in self.pipes:
            pipe.join(30)
        for relay in relays:
            if self.anchor_gone.is_set():
                break
            relay.flushed.wait(30)
        self.send("exit", status=status)
        return 0

    def _relays(self, streams):
        """The TLS relays behind the stream sockets (none without TLS)."""
        if not self.tls_pin:
            return []
        from scrun_rest.tunnel import tls
        return [r for r in (tls.relay_of(s) for s in streams.values()) if r is not None]

    # -- messages from the anchor, by phase ------------------------------------
    def _dispatch_next(self, dispatch):
        """Receive one message and dispatch it: the handler's result, or
        False when the link ended or the anchor broke the protocol (logged)."""
        try:
            message = wire.recv(self.control)
        except (OSError, wire.TunnelError):
            return False
        if message is None:
            return False
        try:
            return dispatch(message)
        except messages.ProtocolError as exc:
            _log_protocol_error(exc)
            return False

    def _receive(self, timeout=None):
        """The anchor's next message, checked; None when the link ended (or,
        with a timeout, when nothing came in time: the task then ends)."""
        try:
            self.control.settimeout(timeout)
            message = wire.recv(self.control)
            return None if message is None else messages.check(messages.ANCHOR_TO_TASK,
                                                               message)
        except (OSError, wire.TunnelError, messages.ProtocolError):
            return None
        finally:
            self.control.settimeout(None)

    def _wait_for_go(self):
        """True at go; False at abort or when the link ends."""
        waiting = messages.Dispatcher(messages.ANCHOR_TO_TASK, {
            "setup": _out_of_turn,
            "bundle_sent": _out_of_turn,
            "go": self._on_go,
            "abort": lambda message: False,
            # The window size comes with go; signals wait for the runtime.
            "signal": _ignore,
            "resize": _ignore,
        })
        outcome = None
        while outcome is None:
            outcome = self._dispatch_next(waiting)
        return outcome

    def _on_go(self, message):
        if message.get("rows") and message.get("cols"):
            self.window = (message["rows"], message["cols"])
        return True

    def _control_loop(self):
        # setup, go and abort come once each, before the runtime runs.
        running = messages.Dispatcher(messages.ANCHOR_TO_TASK, {
            "setup": _out_of_turn,
            "bundle_sent": _out_of_turn,
            "go": _out_of_turn,
            "abort": _out_of_turn,
            "signal": self._on_signal,
            "resize": self._on_resize,
        })
        while self._dispatch_next(running) is not False:
            pass
        # The anchor is gone (or talks nonsense): nobody will read the
        # output or the status. Kill the container and drop the streams, so
        # that no pump waits on a dead link and cleanup runs before Slurm
        # ends the step.
        self.anchor_gone.set()
        self._signal_runtime(signal.SIGKILL)
        for sock in self.streams.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _on_signal(self, message):
        self._signal_runtime(message["signal"])

    def _on_resize(self, message):
        if self.master_fd is not None:
            pty_streams.set_window_size(self.master_fd, message["rows"], message["cols"])
            self._signal_runtime(signal.SIGWINCH)

    # -- running ------------------------------------------------------------
    def _spawn(self, command, streams, setup):
        argv = ["/bin/sh", "-c", "exec " + command]
        if "tty" in streams:
            self._spawn_with_terminal(argv, streams["tty"], setup)
            return
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            if self.plan.start is not None:
                self.pipes = [pipes.OutputPipe(streams["stdout"]),
                              pipes.OutputPipe(streams["stderr"])]
                if "stdin" in streams:
                    self.pipes.insert(0, pipes.InputPipe(streams["stdin"]))
                stdio = [pipe.fd for pipe in self.pipes]
                stdin, stdout, stderr = [devnull] * (3 - len(stdio)) + stdio
                self.process = detached.create_and_start(
                    argv, self.plan.start, stdin=stdin, stdout=stdout, stderr=stderr,
                    cwd=self.workdir, start_new_session=True)
            else:
                stdin = streams["stdin"].fileno() if "stdin" in streams else devnull
                self.process = subprocess.Popen(
                    argv, stdin=stdin, stdout=streams["stdout"].fileno(),
                    stderr=streams["stderr"].fileno(), cwd=self.workdir,
                    start_new_session=True)
        finally:
            # The runtime (or the container) holds the sockets or pipes now;
            # our copies would keep the streams open past its exit.
            os.close(devnull)
            for pipe in self.pipes:
                pipe.given()
            for sock in streams.values():
                sock.close()

    def _spawn_with_terminal(self, argv, sock, setup):
        rows, cols = self.window or (setup.get("rows"), setup.get("cols"))
        master, slave = pty_streams.open_pty(rows, cols)
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, cwd=self.workdir,
            start_new_session=True, preexec_fn=pty_streams.make_controlling_terminal)
        os.close(slave)
        self.master_fd = master
        self.output_pump = pty_streams.start_pumps(master, sock)

    def _forward_signal(self, signum, frame):
        self._signal_runtime(signum)
        if signum == signal.SIGTERM and not self.ending:
            # Slurm is ending the step (cancel, time limit, node failure) and
            # SIGKILLs everything KillWait seconds from now. If the container
            # ignores SIGTERM, kill it before that, with time left to remove
            # it and report its end on a busy node.
            self.ending = True
            timer = threading.Timer(kill_delay(_kill_wait()), self._signal_runtime,
                                    (signal.SIGKILL,))
            timer.daemon = True
            timer.start()

    def _signal_runtime(self, signum):
        if self.process is None or self.process.poll() is not None:
            return
        if signum == signal.SIGKILL:
            # runc cannot pass SIGKILL on; ask the runtime to kill the container.
            self._run_hook("RunTimeKill", "KILL")
        try:
            self.process.send_signal(signum)
        except OSError:
            pass

    def _removes_container(self):
        """Only the container's own task removes it (an exec merely joined
        it), unless oci.conf's DisableCleanup keeps it for a look."""
        if self.plan is None or self.plan.mode != "run" or "container" not in self.plan.values:
            return False
        return (self.settings.get("DisableCleanup") or "").lower() not in ("yes", "true", "1")

    def _run_hook(self, key, *extra):
        if self.plan is not None and "container" in self.plan.values:
            runtime_hooks.run(self.settings, key, self.plan.values, *extra)

    def _remove_container(self):
        if self.container_removed:
            return
        self.container_removed = True
        if self.process is not None and self._removes_container():
            self._run_hook("RunTimeDelete")

    def _cleanup(self):
        """Remove the runtime's container and our files; safe to call twice."""
        self._remove_container()
        if self.cleaned:
            return
        self.cleaned = True
        if self.workdir:
            leftovers.remove_tree(self.workdir)
            os.close(self.workdir_lock)


def _task_key(setup):
    try:
        return bytes.fromhex(setup["key"])
    except ValueError:
        raise messages.ProtocolError("the task key is not hex")


def _out_of_turn(message):
    raise messages.ProtocolError("%r is not expected now" % message["t"])


def _ignore(message):
    return None


def _log_protocol_error(exc):
    log("the anchor broke the protocol (%s); ending the task" % exc)


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def kill_delay(kill_wait):
    """Seconds from Slurm's SIGTERM to our SIGKILL of the container: all
    of KillWait but the cleanup's share (2.5 s, or half of a short one)."""
    return kill_wait - min(CLEANUP_SHARE, kill_wait / 2.0)


def _kill_wait():
    """Slurm's KillWait (seconds from SIGTERM to SIGKILL), from slurm.conf."""
    try:
        with open(os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf") as handle:
            value = conf_lines.by_lowercase_key(handle.read()).get("killwait", "")
        # slurm.conf may hold several Key=Value pairs on a line.
        return max(1, int(value.split()[0]))
    except (OSError, UnicodeDecodeError, ValueError, IndexError):
        return 30


def run_task():
    try:
        spec = json.loads(os.environ.pop("SCRUN_REST_TASK"))
    except (KeyError, ValueError):
        log("SCRUN_REST_TASK is missing or malformed")
        return 2
    code = Task(spec).run()
    if spec.get("tls"):
        # Whatever the relays still hold must leave before we exit.
        from scrun_rest.tunnel import tls
        tls.drain(5.0)
    return code
