"""The anchor: one daemon per container, from job submission to exit status.

Lifecycle (never backwards): creating -> created -> running -> stopped.
The job's start and end are learned from the tunnel, not by polling REST;
REST is asked only to submit, to cancel, and to explain a fault.
"""
import asyncio
import logging
import os
import signal
import socket
import time

from scrun_rest.anchor import control, job_fate, job_script, spool as spoolmod
from scrun_rest.anchor.spool import remove_quietly, write_pid_file
from scrun_rest.anchor.framed import FramedConnection
from scrun_rest.anchor.remote_calls import RemoteCalls
from scrun_rest.anchor.sessions import EXIT_REPORT_GRACE, TASK_LOST_GRACE, Session, TaskLink
from scrun_rest.anchor.tunnel_server import TunnelServer
from scrun_rest.errors import UserError

log = logging.getLogger("scrun_rest.anchor")

# While the job pends nothing reaches us through the tunnel; a slow poll
# notices a job that ended without ever starting (cancelled, failed, or its
# agent could not dial back).
PENDING_POLL_DELAYS = (3, 5, 10, 20, 30)
# How long an exec waits for a container that start has just let go.
EXEC_WAITS_FOR_START = 30
# Signals whose default action ends a process: a kill before start stops the
# container with 128+N, as it would have died of it.
HARMLESS_SIGNALS = {signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH}


class Anchor:
    def __init__(self, setup):
        self.setup = setup
        self.spool = setup.spool
        self.loop = None
        self.status = spoolmod.CREATING
        self.job_id = None
        self.agent = None
        self.agent_claimed = False
        self.job_secret = os.urandom(32)
        self.task_key = os.urandom(32)
        self.sessions = {}
        self.next_session = 1
        self.start_requested = False
        self.create_reported = False
        self.stage_in_ran = False
        self.job_env = {}
        self.job_signal = None
        self.agent_heard = time.monotonic()
        self.agent_silence = None
        self.remote = None
        self.stop_waiters = []
        self.exit_code = None
        self.finishing = False
        self.rest = None
        self.tunnel = None
        self.control_sock = None
        self.done = None
        self.tls_pin = None
        self.agent_released = False

    # -- helpers ------------------------------------------------------------
    async def blocking(self, function, *args):
        return await self.loop.run_in_executor(None, function, *args)

    def rest_client(self):
        if self.rest is None:
            self.rest = self.setup.make_rest_client()
        return self.rest

    def write_state(self):
        state = {
            "ociVersion": self.setup.oci_version, "id": self.setup.container_id,
            "status": self.status, "pid": os.getpid(), "bundle": self.setup.bundle,
            "annotations": self.setup.annotations, "job_id": self.job_id,
            "exit_code": self.exit_code, "owner": os.getuid(),
            "created": self.setup.created,
        }
        self.spool.write_state(state)

    def set_status(self, status):
        if spoolmod.ORDER.index(status) > spoolmod.ORDER.index(self.status):
            self.status = status
            self.write_state()

    def report_to_create(self, line):
        """Tell the waiting `create` how it went; only the first word counts."""
        if self.create_reported:
            return
        self.create_reported = True
        fd, self.setup.status_fd = self.setup.status_fd, None
        if fd is None:
            return
        try:
            os.write(fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
        except OSError:
            pass
        os.close(fd)

    @property
    def main(self):
        return self.sessions.get(0)

    # -- the life of the container -------------------------------------------
    async def run(self):
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self.remote = RemoteCalls(self.loop, lambda: self.agent, self.setup.job_output_env)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(signum, self.interrupted, signum)
        self.loop.add_signal_handler(signal.SIGHUP, lambda: None)
        try:
            self._open_servers()
            self.sessions[0] = Session(self.loop, 0, "run", self.setup.ntasks,
                                       self.setup.stdio, labelio=self.setup.labelio,
                                       window=self.setup.window_size())
            if self.setup.terminal:
                self.loop.add_signal_handler(signal.SIGWINCH, self.forward_window_size)
            self.write_state()
            write_pid_file(self.setup.pid_file, os.getpid())
            await self.submit()
        except UserError as exc:
            self.finish(1, str(exc))
        except Exception as exc:  # the user must see why, not a silent death
            log.exception("anchor failed")
            self.finish(1, "internal error: %s" % exc)
        code = await self.done
        self._close_servers()
        return code

    def _open_servers(self):
        host = self.setup.tunnel_host
        tls_context = None
        if self.setup.tunnel_tls:
            from scrun_rest.anchor.tunnel_cert import make_server_context
            tls_context, self.tls_pin = make_server_context(self.spool.dir)
        self.tunnel = TunnelServer(self.loop, host, self.setup.port_range,
                                   self.key_for_role, self.on_tunnel_connection,
                                   tls_context=tls_context,
                                   # A task's control link stays quiet for
                                   # long; its node may be cut off unseen.
                                   keepalive_kinds=("task",))
        self.tunnel.start()
        self.control_sock = control.bind(self.spool.socket_path)
        self.control_sock.setblocking(False)
        self.loop.create_task(self.serve_control())
        log.info("tunnel listening on %s%s", self.tunnel.address,
                 " (TLS)" if tls_context is not None else "")

    def _close_servers(self):
        if self.tunnel is not None:
            self.tunnel.close()
        if self.control_sock is not None:
            self.control_sock.close()
            try:
                os.unlink(self.spool.socket_path)
            except OSError:
                pass

    async def submit(self):
        script = job_script.build(
            self.setup.container_id, self.tunnel_advertised_host(), self.tunnel.port,
            self.job_secret.hex(), python=self.setup.agent_python,
            heartbeat=self.setup.heartbeat, tls_pin=self.tls_pin)
        request = dict(self.setup.job_request, script=script)
        # Output variables name this process, which did not exist when
        # create built the request.
        request["environment"] = dict(request["environment"], **self.setup.output_env())
        # The script holds the agent's secret: never logged.
        log.debug("job request: %s", sorted(
            (key, value) for key, value in request.items()
            if key not in ("script", "environment") and value is not None))
        self.job_id = await self.blocking(self.rest_client().submit, request)
        log.info("submitted job %s", self.job_id)
        self.write_state()
        self.loop.call_later(self.setup.create_timeout, self.create_timed_out)
        self.loop.create_task(self.watch_pending())

    def tunnel_advertised_host(self):
        host = self.setup.tunnel_host
        if host in ("0.0.0.0", "::", ""):
            return socket.getfqdn()
        return host

    def create_timed_out(self):
        """The job still pends: let create return; start will wait for it."""
        if not self.create_reported and not self.finishing:
            log.info("job %s still pending after %d s; create returns", self.job_id,
                     self.setup.create_timeout)
            self.set_status(spoolmod.CREATED)
            self.report_to_create("ok pending")

    async def watch_pending(self):
        for delay in _poll_delays():
            await asyncio.sleep(delay)
            if self.agent_claimed or self.finishing:
                return
            try:
                info = await self.blocking(self.rest_client().job, self.job_id)
            except UserError as exc:
                log.warning("cannot query job %s: %s", self.job_id, exc)
                continue
            if self.agent_claimed or self.finishing:
                return
            if info.state.is_terminal:
                self.finish(1, "job %s ended as %s%s without its agent reaching the "
                               "anchor at %s" % (self.job_id, info.state.name,
                                                 job_fate.state_reason(info),
                                                 self.tunnel.address))
                return

    # -- tunnel connections ----------------------------------------------------
    def key_for_role(self, role):
        kind = role.get("kind")
        if kind == "agent":
            return None if self.agent_claimed else self.job_secret
        if kind in ("task", "data"):
            return self.task_key
        return None

    def on_tunnel_connection(self, sock, role, peer):
        kind = role.get("kind")
        if kind == "agent":
            if self.agent_claimed or self.finishing:
                log.error("refused a second agent connection from %s", peer[0])
                sock.close()
                return
            self.agent_claimed = True
            self.loop.create_task(self.serve_agent(sock))
        elif kind == "task":
            self.loop.create_task(self.serve_task(sock, role))
        elif kind == "data":
            session = self.sessions.get(role.get("session"))
            task = role.get("task")
            if session is None or task not in session.tasks or \
                    role.get("stream") not in session.streams_for(task) or \
                    role.get("stream") in session.tasks[task].streams:
                log.warning("refused an unexpected stream %r", role)
                sock.close()
                return
            session.attach_stream(task, role["stream"], sock)
            self.maybe_prepared(session)
        else:
            sock.close()

    async def serve_agent(self, sock):
        self.agent = await FramedConnection.open(sock)
        self.loop.create_task(self.heartbeat())
        while True:
            message = await self.agent.recv()
            if message is None:
                break
            self.agent_heard = time.monotonic()
            handler = getattr(self, "agent_" + str(message.get("t")), None)
            if handler is not None:
                try:
                    await handler(message)
                except UserError as exc:
                    self.finish(1, str(exc))
        self.agent.close()
        self.remote.fail_all("the job's agent disconnected")
        if not self.finishing:
            await self.agent_lost()

    async def heartbeat(self):
        beat = self.setup.heartbeat
        limit = max(4 * beat, 10)
        while not self.finishing:
            await asyncio.sleep(beat)
            if self.agent is None or self.agent.closed:
                return
            self.agent.send({"t": "ping"})
            if time.monotonic() - self.agent_heard > limit:
                log.warning("no word from the agent for %.0f s", limit)
                # Closing wakes serve_agent too: both report the same reason.
                self.agent_silence = limit
                self.agent.close()
                await self.agent_lost()
                return

    async def agent_started(self, message):
        self.job_env = message.get("env") or {}
        self.setup.job_identity = message.get("identity") or {}
        log.info("job %s started on %s (python %s)", self.job_id,
                 message.get("nodelist"), message.get("python"))
        self.agent.send({"t": "welcome", "task_key": self.task_key.hex(),
                         "settings": self.setup.settings})
        # Not awaited: stage_in may run remote commands, whose answers arrive
        # on this very connection.
        self.loop.create_task(self.stage_and_launch())

    async def stage_and_launch(self):
        try:
            if self.setup.staging is not None:
                await self.stage_in()
                if self.finishing:
                    return
            self.launch(self.main, srun_args=self.setup.step_args)
        except Exception as exc:  # the user must see why, not a silent hang
            log.exception("launching the container failed")
            self.finish(1, "internal error: %s" % exc)

    async def agent_ping(self, message):
        self.agent.send({"t": "pong"})

    async def agent_pong(self, message):
        pass

    async def agent_job_signal(self, message):
        self.job_signal = int(message.get("signal", 0))
        log.info("Slurm sent signal %d to job %s", self.job_signal, self.job_id)

    async def agent_step_output(self, message):
        session = self.sessions.get(message.get("session"))
        log.info("srun[%s]: %s", message.get("session"), message.get("line"))
        if session is not None and len(session.step_output) < 50:
            session.step_output.append(str(message.get("line")))

    async def agent_step_exit(self, message):
        session = self.sessions.get(message.get("session"))
        if session is None:
            return
        session.step_status = int(message.get("status", 1)) & 0xFF or (
            0 if session.all_exited() else 1)
        if message.get("error"):
            session.step_output.append(message["error"])
        self.loop.call_later(EXIT_REPORT_GRACE, self.exit_grace_over, session)
        self.session_progress(session)

    def exit_grace_over(self, session):
        session.exit_grace_over = True
        self.session_progress(session)

    async def agent_remote_done(self, message):
        self.remote.done(message)

    def launch(self, session, srun_args=(), node=None):
        args = ["--ntasks=%d" % session.ntasks] + list(srun_args)
        if node:
            args += ["--nodes=1", "--nodelist=%s" % node]
        self.agent.send({"t": "launch", "session": session.number, "srun_args": args,
                         "env": self.setup.job_output_env()})

    async def serve_task(self, sock, role):
        conn = await FramedConnection.open(sock)
        session = self.sessions.get(role.get("session"))
        task_id = role.get("task")
        if session is None or not isinstance(task_id, int) or task_id in session.tasks \
                or not 0 <= task_id < session.ntasks:
            log.warning("refused an unexpected task %r", role)
            conn.close()
            return
        link = TaskLink(task_id, conn, role)
        link.expected_streams = tuple(session.streams_for(task_id))
        session.add_task(link)
        conn.send(self.task_setup(session, task_id))
        while True:
            message = await conn.recv()
            if message is None:
                break
            kind = message.get("t")
            if kind == "prepared":
                link.said_prepared = True
                self.maybe_prepared(session)
            elif kind == "started":
                link.started = True
                link.container = message.get("container")
                if task_id == 0:
                    session.started_event.set()
            elif kind == "exit":
                link.status = int(message.get("status", 1))
                link.error = message.get("error")
                self.session_progress(session)
        conn.close()
        if link.status is None and not self.finishing:
            # The task vanished without a word: its node or srun is gone.
            log.warning("task %d of session %d lost", task_id, session.number)
            self.session_progress(session)
            self.loop.call_later(TASK_LOST_GRACE, self.task_lost, session, link)

    def task_lost(self, session, link):
        """A task's link dropped and neither its exit nor the step's end
        followed: part of the container is out of reach (a node cut off, a
        task killed). End the whole session, as srun ends a step that lost a
        node, rather than run on with output missing."""
        if self.finishing or session.ended.is_set() or link.status is not None \
                or session.step_status is not None:
            return  # ended, or srun's end is being handled
        link.status = 128 + signal.SIGKILL
        link.error = "lost contact with task %d%s of the container" % (
            link.id, " on " + link.node if link.node else "")
        session.send_all({"t": "signal", "signal": signal.SIGKILL})
        self.end_session_now(session)

    def task_setup(self, session, task_id):
        message = {"t": "setup", "mode": session.kind, "config": self.setup.compute_config(),
                   "streams": session.streams_for(task_id),
                   "env": self.setup.container_env(),
                   "settings": self.setup.settings}
        if session.window:
            message["rows"], message["cols"] = session.window
        if session.kind == "exec":
            message["process"] = session.process
            message["container"] = self.main_container_name()
        return message

    def main_container_name(self):
        task = self.main.tasks.get(0) if self.main else None
        return task.container if task else None

    def maybe_prepared(self, session):
        if not session.all_prepared() or session.prepared_event.is_set():
            return
        session.prepared_event.set()
        if session.number == 0:
            log.info("container prepared on %s", ",".join(
                sorted({t.node or "?" for t in session.tasks.values()})))
            self.set_status(spoolmod.CREATED)
            self.report_to_create("ok created")
            if self.start_requested:
                self.go(session)
        else:
            self.go(session)

    def go(self, session):
        if session.go_sent:
            return
        session.go_sent = True
        go = {"t": "go"}
        if session.terminal:
            session.start_terminal_input()
            # The caller sizes its terminal after create; runc reads the size
            # when it starts.
            size = self.setup.window_size() if session.number == 0 else session.window
            if size:
                go["rows"], go["cols"] = size
        else:
            session.start_input()
        session.send_all(go)

    def session_progress(self, session):
        """A task or the step ended: finish the session once all have."""
        session.check_drained()
        if session.all_exited():
            self.end_session_now(session)

    def end_session_now(self, session):
        if not session.ended.is_set():
            session.ended.set()
            self.loop.create_task(self.end_session(session))

    async def end_session(self, session):
        await session.wait_drained()
        code = session.exit_status()
        error, error_code = session.first_error()
        if error is None and code and not session.go_sent:
            error = "; ".join(session.step_output[-5:]) or "the container step failed"
        if session.number == 0:
            if error:
                self.finish(error_code or code or 1, error)
            else:
                await self.explain_job_signal(session)
                self.finish(code if code is not None else 1)
        else:
            if error:
                session.write_local_error(error)
            await session.flush_local()
            session.close_local()
            session.exit_future.set_result(code if code is not None else 1)
            self.sessions.pop(session.number, None)

    async def explain_job_signal(self, session):
        if self.job_signal is None:
            return
        if not self.stage_in_ran:  # stage_out would still need the agent
            # Slurm shows COMPLETING instead of why the job ends until its
            # batch script (our agent) is gone: let it go first.
            self.release_agent(session.exit_status() or 0)
        reason = await self.fate_in_words()
        session.write_local_error(reason)

    def release_agent(self, code):
        if self.agent is not None and not self.agent.closed:
            self.agent.send({"t": "shutdown", "code": code})
            self.agent.close()
            self.agent_released = True

    async def fate_in_words(self):
        """Ask Slurm what happened to the job, in words for the user."""
        return await job_fate.ask(lambda: self.blocking(self.rest_client().job, self.job_id),
                                  self.job_id, self.job_signal)

    async def agent_lost(self):
        main = self.main
        if main is not None and main.ended.is_set():
            return
        why = "the job's agent disconnected"
        if self.agent_silence:
            why = "no word from the job's agent for %.0f s" % self.agent_silence
        reason = await self.fate_in_words() if self.job_id else "the agent is gone"
        code = 128 + (self.job_signal or signal.SIGKILL)
        self.finish(code, "%s: %s" % (why, reason))

    # -- staging ---------------------------------------------------------------
    async def stage_in(self):
        try:
            await self.blocking(self.setup.staging.stage_in, self.job_id, self.job_env,
                                self.remote.run_blocking)
            self.stage_in_ran = True
        except UserError as exc:
            self.finish(1, str(exc))

    async def stage_out(self):
        if not self.stage_in_ran:
            return
        self.stage_in_ran = False
        try:
            await self.blocking(self.setup.staging.stage_out, self.job_id,
                                self.remote.run_blocking)
        except UserError as exc:
            log.error("stage_out failed: %s", exc)
            # The container's files may not be back: the user must know.
            if self.main is not None:
                self.main.write_local_error(str(exc))

    # -- ending ---------------------------------------------------------------
    def finish(self, code, error=None):
        if self.finishing:
            return
        self.finishing = True
        self.loop.create_task(self._finish(code, error))

    async def _finish(self, code, error):
        if error:
            log.error("%s", error)
        main = self.main
        if main is not None:
            main.close_local()
        await self.stage_out()
        cancelled = False
        if not self.create_reported and self.job_id is not None:
            # create fails: cancel the job as scrun does, so Slurm records
            # it as cancelled rather than failed.
            await self.cancel_job()
            cancelled = True
        if self.agent is not None and not self.agent.closed:
            self.agent.send({"t": "shutdown", "code": code})
            await asyncio.sleep(0)
            self.agent.close()
        elif self.job_id is not None and not cancelled and not self.agent_released:
            await self.cancel_job()
        for session in list(self.sessions.values()):
            if session.number and hasattr(session, "exit_future") and \
                    not session.exit_future.done():
                session.exit_future.set_result(255)
        self.exit_code = code
        if not self.create_reported:
            # create fails: leave nothing behind, as if it was never tried.
            self.report_to_create("error %d %s" % (code, error or "failed"))
            self._close_servers()
            try:
                self.spool.remove()
            except OSError:
                pass
            remove_quietly(self.setup.pid_file)
            self.done.set_result(code)
            return
        if main is not None:
            if error:
                main.write_local_error(error)
            await main.flush_local()
        self.status = spoolmod.STOPPED
        self.write_state()
        for waiter in self.stop_waiters:
            if not waiter.done():
                waiter.set_result(code)
        self.done.set_result(code)

    async def cancel_job(self):
        try:
            await self.blocking(self.rest_client().cancel, self.job_id)
            log.info("cancelled job %s", self.job_id)
        except UserError as exc:
            log.warning("could not cancel job %s: %s", self.job_id, exc)

    def interrupted(self, signum):
        """SIGINT/SIGTERM to the anchor: cancel the job and clean up."""
        log.info("anchor got signal %d", signum)
        main = self.main
        if main is not None and main.go_sent and main.tasks:
            main.send_all({"t": "signal", "signal": signum})
            self.loop.call_later(10, self.finish, 128 + signum, None)
        else:
            self.finish(128 + signum, None)

    # -- control socket --------------------------------------------------------
    async def serve_control(self):
        while True:
            try:
                client, _ = await self.loop.sock_accept(self.control_sock)
            except OSError:
                return
            if control.peer_uid(client) != os.getuid():
                log.error("refused a control connection from uid %d",
                          control.peer_uid(client))
                client.close()
                continue
            self.loop.create_task(self.serve_control_client(client))

    async def serve_control_client(self, client):
        from scrun_rest.anchor.control_server import handle_client
        await handle_client(self, client)

    def forward_window_size(self):
        main = self.main
        size = self.setup.window_size()
        if main is not None and size:
            main.window = size
            main.send_all({"t": "resize", "rows": size[0], "cols": size[1]})

    def kill(self, signum):
        """Deliver a signal to the container, however far along it is."""
        main = self.main
        if self.finishing:
            return
        if main is not None and main.go_sent and main.tasks:
            main.send_all({"t": "signal", "signal": signum})
        elif main is not None and main.prepared_event.is_set():
            if signum not in HARMLESS_SIGNALS:
                main.send_all({"t": "abort"})
                self.finish(128 + signum)
        elif self.agent is not None and not self.agent.closed and self.status != spoolmod.CREATING:
            if signum not in HARMLESS_SIGNALS:
                self.agent.send({"t": "signal_step", "session": 0, "signal": signum})
                self.finish(128 + signum)
        elif signum not in HARMLESS_SIGNALS:
            self.finish(128 + signum)

    def start(self):
        if self.status == spoolmod.STOPPED or self.finishing:
            raise UserError("container %s is stopped" % self.setup.container_id)
        self.start_requested = True
        self.set_status(spoolmod.RUNNING)
        main = self.main
        if main.prepared_event.is_set():
            self.go(main)

    async def wait_stopped(self):
        if self.done.done():
            return self.done.result()
        waiter = self.loop.create_future()
        self.stop_waiters.append(waiter)
        return await waiter

    async def new_exec_session(self, process, stdio, window):
        main = self.main
        if self.status != spoolmod.RUNNING or not main or self.finishing:
            raise UserError("container %s is not running" % self.setup.container_id)
        if not main.go_sent:
            raise UserError("container %s has not started yet: job %s is pending"
                            % (self.setup.container_id, self.job_id))
        # `podman run -d` returns once start sent go; an exec right after it
        # waits the moment until runc has the container (or it failed).
        waits = [asyncio.ensure_future(main.started_event.wait()),
                 asyncio.ensure_future(main.ended.wait())]
        _, unfinished = await asyncio.wait(waits, timeout=EXEC_WAITS_FOR_START,
                                           return_when=asyncio.FIRST_COMPLETED)
        for waiting in unfinished:
            waiting.cancel()
        if not self.main_container_name() or self.finishing:
            raise UserError("container %s has not started" % self.setup.container_id)
        number = self.next_session
        self.next_session += 1
        session = Session(self.loop, number, "exec", 1, stdio, process=process, window=window)
        session.exit_future = self.loop.create_future()
        self.sessions[number] = session
        self.launch(session, node=main.tasks[0].node)
        return session


def _poll_delays():
    for delay in PENDING_POLL_DELAYS:
        yield delay
    while True:
        yield PENDING_POLL_DELAYS[-1]

