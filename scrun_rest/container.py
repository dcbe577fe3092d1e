"""A container as the CLI sees it: found by id, asked through its anchor.

runc's commands are thin over libcontainer; ours are thin over this. Each
failure is a typed UserError that the CLI prints as one line.
Stdlib only and cheap to import: `state` uses it, and the control socket's
modules are loaded only by the commands that talk to the anchor.
"""
import time

from scrun_rest.anchor import spool as spoolmod
from scrun_rest.anchor.spool import Spool
from scrun_rest.errors import UserError
from scrun_rest.oci.state_doc import check_container_id

# How long delete waits for a stopped anchor's process to go.
ANCHOR_EXIT_WAIT = 10.0
# delete --force of a running container waits this long for its end.
DELETE_TIMEOUT = 120


class NotExist(UserError):
    def __init__(self, container_id):
        super().__init__("container %s does not exist" % container_id)


class NotRunning(UserError):
    def __init__(self, container_id):
        super().__init__("container %s is not running" % container_id)


class AnchorGone(UserError):
    """The anchor stopped answering: the container has stopped."""

    def __init__(self, container_id):
        super().__init__("container %s is stopped" % container_id)


class CommandRefused(UserError):
    """The anchor said no (its lifecycle's words)."""


class Container:
    def __init__(self, spool, state):
        self.spool = spool
        self.state = state

    @classmethod
    def load(cls, root, container_id):
        """The container with this id, or NotExist."""
        found = cls.find(root, container_id)
        if found is None:
            raise NotExist(container_id)
        return found

    @classmethod
    def find(cls, root, container_id):
        """The container with this id, or None."""
        spool = Spool(root, check_container_id(container_id))
        state = spool.read_state()
        return None if state is None else cls(spool, state)

    @property
    def id(self):
        return self.spool.id

    @property
    def status(self):
        """The OCI status: a dead anchor means stopped."""
        return spoolmod.effective_status(self.state)

    def _ask(self, kind, gone, timeout=None, **fields):
        from scrun_rest.anchor import control  # sockets and json: not for `state`
        try:
            reply = control.request(self.spool.socket_path, kind, timeout=timeout, **fields)
        except control.AnchorGone:
            raise gone
        if reply["t"] != "reply" or not reply["ok"]:
            raise CommandRefused(reply.get("error") or "%s failed" % kind)
        return reply

    def start(self):
        if self.status == spoolmod.STOPPED:
            raise AnchorGone(self.id)
        self._ask("start", AnchorGone(self.id))

    def signal(self, signum):
        if self.status == spoolmod.STOPPED:
            raise NotRunning(self.id)
        self._ask("kill", NotRunning(self.id), signal=signum)

    def destroy(self, force=False):
        """Remove a stopped container; force stops a running one first."""
        status = self.status
        if status != spoolmod.STOPPED:
            if not force:
                raise UserError("cannot delete container %s that is not stopped: %s"
                                % (self.id, status))
            try:
                self._ask("delete", AnchorGone(self.id), timeout=DELETE_TIMEOUT)
            except (UserError, OSError):
                pass  # gone or going: what follows cleans up either way
            _wait_for_exit(self.state.get("pid"))
            self.state = self.spool.read_state() or self.state
        if self.state.get("status") != spoolmod.STOPPED and self.state.get("job_id"):
            # The anchor died without ending the job: nobody else will.
            _cancel_job(self.state["job_id"])
        self.spool.remove()

    def require_running(self):
        if self.status != spoolmod.RUNNING:
            raise NotRunning(self.id)

    def open_exec(self, process, fds, terminal, window):
        """Hand the anchor an exec's process and stdio; returns the socket
        the exit status will arrive on."""
        self.require_running()
        from scrun_rest.anchor import control
        try:
            sock = control.connect(self.spool.socket_path)
            control.send(sock, "exec", fds=fds, process=process, tty=terminal,
                         window=list(window) if window else None)
            reply = control.receive(sock)
        except (control.AnchorGone, ConnectionError) as exc:
            raise UserError("container %s is not running (%s)" % (self.id, exc))
        if not reply or reply["t"] != "reply" or not reply["ok"]:
            sock.close()
            raise CommandRefused((reply or {}).get("error") or "exec failed")
        return sock


def _wait_for_exit(pid):
    deadline = time.monotonic() + ANCHOR_EXIT_WAIT
    while spoolmod.process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _cancel_job(job_id):
    from scrun_rest.connection import rest_client_from_config
    try:
        rest_client_from_config().cancel(job_id)
    except UserError:
        pass
