"""The batch-job agent: dials the anchor and runs steps when it asks.

It is the whole batch script of a scrun-rest job. It does no I/O relaying:
each task of a step dials the anchor itself (see task.py), so container
output never rides srun's forwarding or this process. Python 3.6+, stdlib.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from scrun_rest.agent import task_boot
from scrun_rest.tunnel import messages, wire

# Signals Slurm sends to the batch script when the job is cancelled, hits
# its time limit or is preempted; the anchor is told so it can explain.
REPORTED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                    signal.SIGUSR1, signal.SIGUSR2)
KILL_GRACE = 5.0
# Tasks that lost the anchor need a moment to remove their containers.
STEP_GRACE = 10.0


def log(text):
    sys.stderr.write("scrun-rest agent: %s\n" % text)
    sys.stderr.flush()


class JobAgent:
    def __init__(self, params, sources):
        self.params = params
        self.address = "%s:%s" % (params["host"], params["port"])
        self.sources = sources
        self.secret = bytes.fromhex(params["secret"])
        self.heartbeat = float(params.get("heartbeat", 5))
        self.sock = None
        self.send_lock = threading.Lock()
        self.steps = {}
        self.steps_lock = threading.Lock()
        self.last_heard = time.monotonic()
        self.finished = threading.Event()
        self.exit_code = 0
        self._code_blob = None
        self.settings = {}
        self.dispatch = messages.Dispatcher(messages.ANCHOR_TO_AGENT, {
            "welcome": self._on_welcome,
            "ping": self._on_ping,
            "pong": self._on_pong,
            "launch": self._on_launch,
            "remote": self._on_remote,
            "signal_step": self._on_signal_step,
            "shutdown": self._on_shutdown,
        })

    # -- connection -------------------------------------------------------
    def role(self):
        role = {"kind": "agent", "job": os.environ.get("SLURM_JOB_ID", ""),
                "host": socket.gethostname()}
        messages.check_role(role)
        return role

    def connect(self):
        host, port = self.params["host"], int(self.params["port"])
        # Refused, or dropped by an anchor busy with others' junk connections:
        # try again until the deadline.
        return wire.dial_patiently(float(self.params.get("dial_timeout", 30)), host, port,
                                   self.secret, self.role(), timeout=5,
                                   tls_pin=self.params.get("tls"),
                                   anchor_place=self.params.get("place"))

    def send(self, kind, **fields):
        message = messages.make(messages.AGENT_TO_ANCHOR, kind, **fields)
        with self.send_lock:
            try:
                wire.send(self.sock, message)
            except OSError:
                pass

    def end_link(self):
        """Tell the anchor at once that this link is over."""
        self.finished.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- main loop --------------------------------------------------------
    def run(self):
        try:
            self.sock = self.connect()
        except (OSError, wire.TunnelError) as exc:
            log("cannot reach the anchor at %s: %s" % (self.address, exc))
            return 1
        for signum in REPORTED_SIGNALS:
            signal.signal(signum, self._report_job_signal)
        self.send("started", nodelist=os.environ.get("SLURM_JOB_NODELIST"),
                  python=sys.version.split()[0],
                  env={k: v for k, v in os.environ.items() if k.startswith("SLURM_")},
                  identity=_identity())
        threading.Thread(target=self._heartbeat, daemon=True).start()
        if not self._read_loop():
            self.exit_code = 1
        self._stop_steps()
        return self.exit_code

    def _read_loop(self):
        """Dispatch messages until shutdown; False when the link ended first.

        Why it ended is logged here, once: a lost tunnel, or a message the
        table refuses (which ends the link, as nothing after it can be
        trusted).
        """
        while not self.finished.is_set():
            try:
                message = wire.recv(self.sock)
            except (OSError, wire.TunnelError) as exc:
                message, lost = None, str(exc) or exc.__class__.__name__
            else:
                lost = "connection closed"
            if message is None:
                return self._link_ended("lost the tunnel to the anchor at %s: %s" % (
                    self.address, lost))
            self.last_heard = time.monotonic()
            try:
                self.dispatch(message)
            except messages.ProtocolError as exc:
                return self._link_ended("the anchor at %s broke the protocol (%s)" % (
                    self.address, exc))
        return True

    def _link_ended(self, why):
        log("%s; ending the container" % why)
        self.end_link()
        return False

    def _heartbeat(self):
        limit = max(4 * self.heartbeat, 10.0)
        while not self.finished.wait(self.heartbeat):
            self.send("ping")
            if time.monotonic() - self.last_heard > limit:
                log("no word from the anchor for %.0f s" % limit)
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return

    def _report_job_signal(self, signum, frame):
        self.send("job_signal", signal=signum)

    # -- messages from the anchor -----------------------------------------
    def _on_ping(self, message):
        self.send("pong")

    def _on_pong(self, message):
        pass

    def _on_welcome(self, message):
        self.settings = message["settings"]

    def _on_launch(self, message):
        threading.Thread(target=self._run_step, args=(message,), daemon=True).start()

    def _on_remote(self, message):
        threading.Thread(target=self._run_remote, args=(message,), daemon=True).start()

    def _on_signal_step(self, message):
        with self.steps_lock:
            process = self.steps.get(message["session"])
        if process is not None:
            try:
                process.send_signal(message["signal"])
            except OSError:
                pass

    def _on_shutdown(self, message):
        self.exit_code = message["code"] & 0xFF
        self.finished.set()

    # -- steps ------------------------------------------------------------
    def _code_for_tasks(self):
        if self._code_blob is None:
            self._code_blob = task_boot.pack_sources(self.sources)
        return self._code_blob

    def _srun(self, extra_args):
        srun = self.settings.get("SrunPath") or "srun"
        args = [srun, "--jobid=%s" % os.environ.get("SLURM_JOB_ID", ""), "--overlap"]
        args += (self.settings.get("SrunArgs") or "").split()
        return args + list(extra_args)

    def _step_env(self, message):
        env = dict(os.environ)
        env.update(message["env"])
        return env

    def _run_step(self, message):
        session = message["session"]
        env = self._step_env(message)
        env[task_boot.CODE_ENV] = self._code_for_tasks()
        # Only the step's one-use ticket: the environment of srun and of every
        # task keeps it for their lifetime, where anyone who may read
        # /proc/PID/environ finds it, and by then it opens nothing.
        env["SCRUN_REST_TASK"] = json.dumps({
            "host": self.params["host"], "port": self.params["port"],
            "ticket": message["ticket"], "session": session, "tls": self.params.get("tls"),
            "place": self.params.get("place")})
        command = self._srun(["--input=none"] + message["srun_args"]
                             + ["--"] + task_boot.task_argv(sys.executable))
        try:
            process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as exc:
            self.send("step_exit", session=session, status=127,
                      error="cannot run srun: %s" % exc)
            return
        with self.steps_lock:
            self.steps[session] = process
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.send("step_output", session=session, line=line[:4096])
        status = process.wait()
        with self.steps_lock:
            self.steps.pop(session, None)
        self.send("step_exit", session=session, status=status)

    def _run_remote(self, message):
        nodes = os.environ.get("SLURM_JOB_NUM_NODES", "1")
        command = self._srun(["--input=none", "--nodes=%s" % nodes,
                              "--ntasks=%s" % nodes, "--ntasks-per-node=1",
                              "--", "/bin/sh", "-c", message["script"]])
        try:
            result = subprocess.run(command, env=self._step_env(message),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
            status, output = result.returncode, result.stdout.decode("utf-8", "replace")
        except OSError as exc:
            status, output = 127, "cannot run srun: %s" % exc
        self.send("remote_done", id=message["id"], status=status, output=output[-(1 << 20):])

    def _stop_steps(self):
        """End what still runs, after its tasks had time to end by themselves.

        A task that lost the anchor stops and removes its container on its
        own; srun would turn our SIGTERM into SIGKILL for every task ("forcing
        job termination") and leave the runtime's state behind on the nodes.
        """
        with self.steps_lock:
            running = list(self.steps.values())
        deadline = time.monotonic() + STEP_GRACE
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in running:
            if process.poll() is None:
                _signal_quietly(process, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # srun needs two interrupts in a row to abort at once.
                _signal_quietly(process, signal.SIGKILL)


def _signal_quietly(process, signum):
    try:
        process.send_signal(signum)
    except OSError:
        pass


def _identity():
    """Who the job runs as, as Slurm resolved the token's user."""
    import grp
    import pwd
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return {"SCRUN_REST_USER": user, "SCRUN_REST_USER_ID": str(uid),
            "SCRUN_REST_GROUP": group, "SCRUN_REST_GROUP_ID": str(gid)}


def run_job_agent(params, sources):
    code = JobAgent(params, sources).run()
    if params.get("tls"):
        # Whatever the relays still hold must leave before we exit.
        from scrun_rest.tunnel import tls
        tls.drain(5.0)
    return code
