"""The anchor: one daemon per container, from job submission to exit status.

What the container may do next is decided by anchor/lifecycle.py; this
module carries its decisions out. The job's start and end are learned from
the tunnel (agent_link.py, task_links.py), not by polling REST; REST is
asked only to submit, to cancel, and to explain a fault.
"""
import asyncio
import logging
import os
import signal

from scrun_rest.anchor import (bundle_server, control, job_fate, job_submission,
                               lifecycle as life)
from scrun_rest.anchor.agent_link import AgentLink
from scrun_rest.anchor.control_server import ControlServer
from scrun_rest.anchor.create_report import CREATED, PENDING, Reporter
from scrun_rest.anchor.remote_calls import RemoteCalls
from scrun_rest.anchor.sessions import EXIT_REPORT_GRACE, Session
from scrun_rest.anchor.spool import remove_quietly, write_pid_file
from scrun_rest.anchor.supervisor import Supervisor
from scrun_rest.anchor.task_links import TaskLinks, task_message
from scrun_rest.anchor.teardown import tear_down
from scrun_rest.anchor.tunnel_server import TunnelServer
from scrun_rest.anchor.waiters import Moment
from scrun_rest.errors import UserError
from scrun_rest.tunnel import messages
from scrun_rest.tunnel.framed_async import FramedConnection

log = logging.getLogger("scrun_rest.anchor")

# SIGINT/SIGTERM to the anchor: how long the container has to end by itself.
INTERRUPT_GRACE = 10


class Anchor:
    def __init__(self, setup):
        self.setup = setup
        self.spool = setup.spool
        self.life = life.Lifecycle(setup.container_id)
        self.report = Reporter(setup.status_fd)
        setup.status_fd = None
        self.job_secret = os.urandom(32)
        self.task_key = os.urandom(32)
        self.sessions = {}
        self.next_session = 1
        self.task_links = TaskLinks(self)
        self.agent = None
        self.job_env = {}
        self.job_identity = {}
        self.job_signal = None
        self.stage_in_ran = False
        self.agent_released = False
        self.exit_code = None
        self.written_status = None
        self.process_runs = Moment()
        self.stopped = Moment()
        self.loop = None
        self.tasks = None
        self.done = None
        self.remote = None
        self.rest = None
        self.tunnel = None
        self.control_sock = None
        self.control_server = None
        self.tls_pin = None

    # -- helpers ------------------------------------------------------------
    async def blocking(self, function, *args):
        return await self.loop.run_in_executor(None, function, *args)

    def rest_client(self):
        if self.rest is None:
            self.rest = self.setup.make_rest_client()
        return self.rest

    def write_state(self):
        self.written_status = self.life.status
        self.spool.write_state({
            "ociVersion": self.setup.oci_version, "id": self.setup.container_id,
            "status": self.life.status, "pid": os.getpid(), "bundle": self.setup.bundle,
            "annotations": self.setup.annotations, "job_id": self.life.job_id,
            "exit_code": self.exit_code, "owner": os.getuid(),
            "created": self.setup.created,
        })

    def job_output_env(self):
        return self.setup.output_env(self.job_identity)

    @property
    def main(self):
        return self.sessions.get(0)

    # -- the life of the container -------------------------------------------
    async def run(self):
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self.tasks = Supervisor(self.loop, self.finish)
        self.remote = RemoteCalls(self.loop, lambda: self.agent, self.job_output_env)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(signum, self.interrupted, signum)
        self.loop.add_signal_handler(signal.SIGHUP, lambda: None)
        self.tasks.start(self._begin(), "submission")
        code = await self.done
        await self.tasks.cancel_all()
        self.close_servers()
        return code

    async def _begin(self):
        self._open_servers()
        self.sessions[0] = Session(self.loop, 0, "run", self.setup.ntasks, self.setup.stdio,
                                   labelio=self.setup.labelio, window=self.setup.window_size())
        if self.setup.terminal:
            self.loop.add_signal_handler(signal.SIGWINCH, self.forward_window_size)
        self.write_state()
        write_pid_file(self.setup.pid_file, os.getpid())
        self.life.job_id = await job_submission.submit(self)
        self.write_state()
        self.loop.call_later(self.setup.create_timeout, self.create_timed_out)
        self.tasks.start(job_submission.watch_pending(self), "pending-job watch")

    def _open_servers(self):
        tls_context = None
        if self.setup.tunnel_tls:
            from scrun_rest.anchor.tunnel_cert import make_server_context
            tls_context, self.tls_pin = make_server_context(self.spool.dir)
        self.tunnel = TunnelServer(self.loop, self.setup.tunnel_host, self.setup.port_range,
                                   self.key_for_role, self.on_tunnel_connection,
                                   tls_context=tls_context,
                                   # A task's control link stays quiet for
                                   # long; its node may be cut off unseen.
                                   keepalive_kinds=("task",))
        self.tunnel.start()
        self.control_sock = control.bind(self.spool.socket_path)
        self.control_sock.setblocking(False)
        self.control_server = ControlServer(self)
        self.tasks.start(self.control_server.serve(self.control_sock), "control socket")
        log.info("tunnel listening on %s%s", self.tunnel.address,
                 " (TLS)" if tls_context is not None else "")

    def close_servers(self):
        if self.tunnel is not None:
            self.tunnel.close()
        if self.control_server is not None:
            self.control_server.stop()
        if self.control_sock is not None:
            self.control_sock.close()
            self.control_sock = None
            remove_quietly(self.spool.socket_path)

    def create_timed_out(self):
        actions = self.life.create_timed_out()
        if actions:
            log.info("job %s still pending after %d s; create returns", self.life.job_id,
                     self.setup.create_timeout)
        self.apply(actions)

    def apply(self, actions):
        """Carry out what the lifecycle decided."""
        main = self.main
        for action, value in actions:
            if action == life.REPORT_CREATED:
                self.report.send(CREATED)
            elif action == life.REPORT_PENDING:
                self.report.send(PENDING)
            elif action == life.GO:
                self.go(main)
            elif action == life.RELEASE_START:
                self.process_runs.arrived()
            elif action == life.FORWARD:
                main.send_all(task_message("signal", signal=value))
            elif action == life.ABORT_TASKS:
                main.send_all(task_message("abort"))
            elif action == life.SIGNAL_STEP and self.agent is not None:
                self.agent.send("signal_step", session=0, signal=value)
            elif action == life.STOP:
                self.end(value)
            elif action == life.STOP_LATER:
                self.loop.call_later(INTERRUPT_GRACE, self.finish, value)
        if self.life.status != self.written_status and not self.life.ending:
            self.write_state()

    # -- tunnel connections ----------------------------------------------------
    def key_for_role(self, role):
        """The key a connection of this role must prove it holds, or None."""
        kind = messages.check_role(role)
        if kind == "agent":
            return self.job_secret if self.life.awaiting_agent else None
        if kind == "task":
            session = self.sessions.get(role["session"])
            return session.ticket_for(role["task"]) if session is not None else None
        return self.task_key

    def on_tunnel_connection(self, sock, role, peer):
        kind = role["kind"]
        if kind == "agent":
            try:
                actions = self.life.agent_linked()
            except life.Refused:
                log.error("refused a second agent connection from %s", peer[0])
                sock.close()
                return
            self.apply(actions)
            self.tasks.start(self.serve_agent(sock), "agent link")
        elif kind == "task":
            self.tasks.start(self.task_links.serve(sock, role), "task link")
        else:
            self.task_links.accept_stream(sock, role)

    async def serve_agent(self, sock):
        self.agent = AgentLink(await FramedConnection.open(sock), self.setup.heartbeat, {
            "started": self.agent_started, "job_signal": self.agent_job_signal,
            "step_output": self.agent_step_output, "step_exit": self.agent_step_exit,
            "remote_done": self.remote.done})
        self.tasks.start(self.agent.keep_alive(), "agent heartbeat")
        why = await self.agent.serve()
        self.remote.fail_all("the job's agent disconnected")
        if not self.life.ending:
            await self.agent_lost(why)

    def agent_started(self, message):
        self.job_env = message["env"]
        self.job_identity = message["identity"]
        log.info("job %s started on %s (python %s)", self.life.job_id,
                 message.get("nodelist"), message["python"])
        self.agent.send("welcome", settings=self.setup.settings)
        # Not awaited: stage_in may run remote commands, whose answers arrive
        # on this very connection.
        self.tasks.start(self.stage_and_launch(), "staging and launch")

    async def stage_and_launch(self):
        if self.setup.staging is not None:
            await self.blocking(self.setup.staging.stage_in, self.life.job_id, self.job_env,
                                self.remote.run_blocking, self.job_identity)
            self.stage_in_ran = True
            if self.life.ending:
                return
        self.launch(self.main, srun_args=self.setup.step_args)

    def agent_job_signal(self, message):
        self.job_signal = message["signal"]
        log.info("Slurm sent signal %d to job %s", self.job_signal, self.life.job_id)

    def agent_step_output(self, message):
        session = self.sessions.get(message["session"])
        log.info("srun[%s]: %s", message["session"], message["line"])
        if session is not None and len(session.step_output) < 50:
            session.step_output.append(message["line"])

    def agent_step_exit(self, message):
        session = self.sessions.get(message["session"])
        if session is None:
            return
        session.step_status = message["status"] & 0xFF or (0 if session.all_exited() else 1)
        if message.get("error"):
            session.step_output.append(message["error"])
        self.loop.call_later(EXIT_REPORT_GRACE, self.exit_grace_over, session)
        self.session_progress(session)

    def exit_grace_over(self, session):
        session.exit_grace_over = True
        self.session_progress(session)

    def launch(self, session, srun_args=(), node=None):
        args = ["--ntasks=%d" % session.ntasks] + list(srun_args)
        if node:
            args += ["--nodes=1", "--nodelist=%s" % node]
        self.agent.send("launch", session=session.number, srun_args=args,
                        env=self.job_output_env(), ticket=session.ticket.hex())

    def main_task(self):
        """The link of the container's task 0, once it has one."""
        return self.main.tasks.get(0) if self.main else None

    def main_container_name(self):
        task = self.main_task()
        return task.container if task else None

    # -- sessions ----------------------------------------------------------------
    def maybe_prepared(self, session):
        if not session.all_prepared() or session.prepared_event.is_set():
            return
        session.prepared_event.set()
        if session.number:
            self.go(session)
            return
        log.info("container prepared on %s", ",".join(
            sorted({t.node or "?" for t in session.tasks.values()})))
        self.apply(self.life.prepared())

    def go(self, session):
        if session.go_sent:
            return
        session.go_sent = True
        fields = {}
        if session.terminal:
            session.start_terminal_input()
            # The caller sizes its terminal after create; runc reads the size
            # when it starts.
            size = self.setup.window_size() if session.number == 0 else session.window
            if size:
                fields["rows"], fields["cols"] = size
        else:
            session.start_input()
        session.send_all(task_message("go", **fields))

    def session_progress(self, session):
        """A task or the step ended: finish the session once all have."""
        session.check_drained()
        if session.all_exited():
            self.end_session_now(session)

    def end_session_now(self, session):
        if not session.ended.is_set():
            session.ended.set()
            self.tasks.start(self.end_session(session), "end of session %d" % session.number)

    async def end_session(self, session):
        await session.wait_drained()
        for line in await self.blocking(bundle_server.settle, session.tasks.values()):
            session.write_local_error(line)
        code = session.exit_status()
        error, error_code = session.first_error()
        if error is None and code and not session.go_sent:
            # Slurm ended the job before the container ran (scancel while
            # its files were copied, a time limit): say that, not srun's words.
            error = (await self.why_slurm_ended_it(code) if self.job_signal is not None else
                     "; ".join(session.step_output[-5:]) or "the container step failed")
        if session.number == 0:
            if error:
                self.finish(error_code or code or 1, error)
            else:
                await self.explain_job_signal(session)
                self.finish(code if code is not None else 1)
            return
        if error:
            session.write_local_error(error)
        await session.flush_local()
        session.close_local()
        session.exit_future.set_result(code if code is not None else 1)
        self.sessions.pop(session.number, None)

    async def explain_job_signal(self, session):
        if self.job_signal is None:
            return
        session.write_local_error(await self.why_slurm_ended_it(session.exit_status() or 0))

    async def why_slurm_ended_it(self, code):
        if not self.stage_in_ran:  # stage_out would still need the agent
            # Slurm shows COMPLETING instead of why the job ends until its
            # batch script (our agent) is gone: let it go first.
            self.release_agent(code)
        return await self.fate_in_words()

    def release_agent(self, code):
        if self.agent is not None and not self.agent.closed:
            self.agent.send("shutdown", code=code)
            self.agent.close()
            self.agent_released = True

    async def fate_in_words(self):
        """Ask Slurm what happened to the job, in words for the user."""
        return await job_fate.ask(
            lambda: self.blocking(self.rest_client().job, self.life.job_id),
            self.life.job_id, self.job_signal)

    async def agent_lost(self, why):
        main = self.main
        if main is not None and main.ended.is_set():
            return
        reason = await self.fate_in_words() if self.life.job_id else "the agent is gone"
        self.finish(128 + (self.job_signal or signal.SIGKILL), "%s: %s" % (why, reason))

    # -- ending ---------------------------------------------------------------
    def finish(self, code, error=None):
        """End the container with `code`: the first reason wins."""
        if self.life.finish():
            self.end(code, error)

    def end(self, code, error=None):
        self.process_runs.failed(UserError(error or "container %s stopped before its "
                                           "process ran" % self.setup.container_id))
        self.tasks.start(self._teardown(code, error), "teardown")

    async def _teardown(self, code, error):
        try:
            await tear_down(self, code, error)
        finally:
            # Those waiting for the stop (delete) hear of it before run()
            # returns and the loop ends.
            self.stopped.arrived(code)
            if not self.done.done():
                self.done.set_result(code)

    def interrupted(self, signum):
        """SIGINT/SIGTERM to the anchor: cancel the job and clean up."""
        log.info("anchor got signal %d", signum)
        self.apply(self.life.interrupt(signum))

    def forward_window_size(self):
        main = self.main
        size = self.setup.window_size()
        if main is not None and size:
            main.window = size
            main.send_all(task_message("resize", rows=size[0], cols=size[1]))

    # -- what the control socket asks -----------------------------------------
    async def start(self):
        """Let the process run; returns once it runs (runtime.md), or raises
        UserError with the reason it never did."""
        self.apply(self.life.start())
        if self.life.starting:
            await self.process_runs.wait()

    def kill(self, signum):
        """Deliver a signal to the container, however far along it is."""
        self.apply(self.life.kill(signum))

    async def delete(self):
        self.apply(self.life.delete())
        return await self.stopped.wait()
