"""The anchor's end of each task's links: its control link and its streams.

Every task of a step dials in once for control (setup, go, signals one way;
prepared, started, exit the other) and once per stream. A task that
vanishes without saying how it ended counts as lost after a grace period.
"""
import logging
import signal

from scrun_rest.anchor import bundle_server
from scrun_rest.anchor.sessions import TASK_LOST_GRACE, TaskLink
from scrun_rest.tunnel import messages, wire
from scrun_rest.tunnel.framed_async import FramedConnection

log = logging.getLogger("scrun_rest.anchor")


class TaskLinks:
    def __init__(self, anchor):
        self.anchor = anchor

    def accept_stream(self, sock, role):
        """A task's authenticated stream socket: wire it to its session."""
        session = self.anchor.sessions.get(role["session"])
        task, stream = role["task"], role["stream"]
        if bundle_server.is_transfer_stream(stream):
            link = session.tasks.get(task) if session is not None else None
            if link is None or link.transfer is None or not link.transfer.accept(stream, sock):
                log.warning("refused an unexpected transfer stream %r", role)
                sock.close()
            return
        if session is None or task not in session.tasks or \
                stream not in session.streams_for(task) or \
                stream in session.tasks[task].streams:
            log.warning("refused an unexpected stream %r", role)
            sock.close()
            return
        session.attach_stream(task, stream, sock)
        self.anchor.maybe_prepared(session)

    async def serve(self, sock, role):
        conn = await FramedConnection.open(sock)
        session = self.anchor.sessions.get(role["session"])
        task_id = role["task"]
        if session is None or task_id in session.tasks or not 0 <= task_id < session.ntasks:
            log.warning("refused an unexpected task %r", role)
            conn.close()
            return
        link = TaskLink(task_id, conn, role)
        link.expected_streams = tuple(session.streams_for(task_id))
        session.add_task(link)
        setup = self.setup_message(session, task_id)
        if setup.get("bundle"):
            link.transfer = bundle_server.TaskTransfer(
                setup["bundle"], link.node,
                lambda message: self.anchor.loop.call_soon_threadsafe(conn.send, message),
                self.anchor.setup.root)
        conn.send(setup)
        dispatch = messages.Dispatcher(messages.TASK_TO_ANCHOR, {
            "fetch": lambda message: self._fetch(link, message),
            "changes": lambda message: self._changes(link, message),
            "prepared": lambda message: self._prepared(session, link),
            "started": lambda message: self._started(session, link, message),
            "exit": lambda message: self._exited(session, link, message),
        })
        while True:
            try:
                message = await conn.recv()
                if message is None:
                    break
                dispatch(message)
            except (wire.TunnelError, messages.ProtocolError, TransferRefused) as exc:
                log.error("task %d of session %d broke the protocol: %s",
                          task_id, session.number, exc)
                break
        conn.close()
        if link.transfer is not None:
            link.transfer.close_waiting()
        if link.status is None and not self.anchor.life.ending:
            # The task vanished without a word: its node or srun is gone.
            log.warning("task %d of session %d lost", task_id, session.number)
            self.anchor.session_progress(session)
            self.anchor.loop.call_later(TASK_LOST_GRACE, self.lost, session, link)

    def _fetch(self, link, message):
        refused = link.transfer.fetch(message["items"]) if link.transfer else "has no bundle"
        if refused:
            raise TransferRefused(refused)

    def _changes(self, link, message):
        refused = link.transfer.report_changes(
            message["item"], message["deleted"], message["changed"]) if link.transfer \
            else "has no bundle"
        if refused:
            raise TransferRefused(refused)

    def _prepared(self, session, link):
        link.said_prepared = True
        self.anchor.maybe_prepared(session)

    def _started(self, session, link, message):
        link.container = message.get("container")
        link.started = True
        link.runtime_root = message.get("root")
        link.rootfs_copy = message.get("rootfs")
        if link.id == 0:
            session.started_event.set()
        if session.number == 0 and session.all_started():
            self.anchor.apply(self.anchor.life.started())

    def _exited(self, session, link, message):
        link.status = message["status"]
        link.error = message.get("error")
        self.anchor.session_progress(session)

    def lost(self, session, link):
        """A task's link dropped and neither its exit nor the step's end
        followed: part of the container is out of reach (a node cut off, a
        task killed). End the whole session, as srun ends a step that lost a
        node, rather than run on with output missing."""
        if self.anchor.life.ending or session.ended.is_set() or link.status is not None \
                or session.step_status is not None:
            return  # ended, or srun's end is being handled
        link.status = 128 + signal.SIGKILL
        link.error = "lost contact with task %d%s of the container" % (
            link.id, " on " + link.node if link.node else "")
        session.send_all(task_message("signal", signal=signal.SIGKILL))
        self.anchor.end_session_now(session)

    def setup_message(self, session, task_id):
        setup = self.anchor.setup
        fields = {"mode": session.kind, "config": setup.compute_config(),
                  "key": self.anchor.task_key.hex(),
                  "streams": session.streams_for(task_id), "env": setup.container_env(),
                  "settings": setup.settings}
        if session.window:
            fields["rows"], fields["cols"] = session.window
        if session.kind == "run":
            fields["bundle"] = setup.bundle_offer() or None
        if session.kind == "exec":
            main = self.anchor.main_task()
            fields["process"] = session.process
            fields["container"] = main.container
            # runc finds the container only under the root it was made in.
            fields["root"] = main.runtime_root
            if main.rootfs_copy:
                # The exec's program is looked up where the container runs.
                config = fields["config"]
                fields["config"] = dict(config, root=dict(config.get("root") or {},
                                                          path=main.rootfs_copy))
        return task_message("setup", **fields)


class TransferRefused(Exception):
    """A task asked for a transfer its setup did not offer."""


def task_message(kind, **fields):
    return messages.make(messages.ANCHOR_TO_TASK, kind, **fields)
