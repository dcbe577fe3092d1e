"""The task key never sits in an environment: a step's environment carries a
ticket that opens each task's control link once, and the setup sent over
that link hands the task its key (anchor/sessions.py, docs/security.md)."""
import json
import os
import socket

import pytest

from scrun_rest.agent import job, task
from scrun_rest.anchor import core
from scrun_rest.anchor.anchor_setup import AnchorSetup
from scrun_rest.anchor.sessions import Session, TaskLink
from scrun_rest.tunnel import messages, wire

TICKET = "ab" * 32
ROLE = {"kind": "task", "session": 0, "task": 1, "node": "n1", "step": "0", "job": "5"}


@pytest.fixture
def anchor(tmp_path):
    setup = AnchorSetup(container_id="c1", bundle=str(tmp_path),
                        config_doc={"root": {"path": "/r"}}, status_fd=None, stdio={})
    anchor = core.Anchor(setup)
    anchor.sessions[0] = Session(None, 0, "run", 2, {})
    return anchor


def test_a_ticket_opens_each_tasks_control_link_once(anchor):
    session = anchor.sessions[0]
    assert anchor.key_for_role(ROLE) == session.ticket
    assert session.ticket != anchor.task_key
    session.add_task(TaskLink(1, None, ROLE))
    assert anchor.key_for_role(ROLE) is None          # used: worthless now
    assert anchor.key_for_role(dict(ROLE, task=0)) == session.ticket
    assert anchor.key_for_role(dict(ROLE, task=2)) is None  # the step has 2 tasks
    assert anchor.key_for_role(dict(ROLE, session=3)) is None
    session.ended.set()
    assert anchor.key_for_role(dict(ROLE, task=0)) is None


def test_streams_need_the_task_key_which_only_the_setup_carries(anchor):
    stream = dict(ROLE, kind="data", stream="stdout")
    assert anchor.key_for_role(stream) == anchor.task_key
    setup = anchor.task_links.setup_message(anchor.sessions[0], 1)
    assert bytes.fromhex(setup["key"]) == anchor.task_key


def test_the_agent_puts_only_the_ticket_in_the_steps_environment(monkeypatch):
    launched = {}

    class FakeSrun:
        stdout = ()

        def __init__(self, command, env, **options):
            launched.update(env)

        def wait(self):
            return 0

    monkeypatch.setattr(job.subprocess, "Popen", FakeSrun)
    agent = job.JobAgent({"host": "10.0.0.1", "port": 9, "secret": "00" * 32}, {})
    agent.dispatch({"t": "welcome", "settings": {}})
    agent.send = lambda kind, **fields: None
    agent._run_step({"t": "launch", "session": 4, "srun_args": [], "env": {},
                     "ticket": TICKET})
    spec = json.loads(launched["SCRUN_REST_TASK"])
    assert spec == {"host": "10.0.0.1", "port": 9, "ticket": TICKET, "session": 4,
                    "tls": None, "place": None}


def test_a_task_proves_the_ticket_then_uses_the_key_from_its_setup(monkeypatch, tmp_path):
    ours, theirs = socket.socketpair()
    key = "cd" * 32
    keys = []

    def dial(self, kind, **extra):
        keys.append(self.key.hex())
        return ours

    monkeypatch.setattr(task.Task, "dial", dial)
    monkeypatch.setattr(task.leftovers, "sweep", lambda delete, base=None: None)
    monkeypatch.setattr(task.leftovers, "claim",
                        lambda base=None: (str(tmp_path), os.open(str(tmp_path), os.O_RDONLY)))
    monkeypatch.setattr(task.Task, "_run", lambda self, setup: keys.append(self.key.hex()))
    wire.send(theirs, messages.make(messages.ANCHOR_TO_TASK, "setup", mode="run", config={},
                                    key=key, streams=[], env={}, settings={}))
    task.Task({"host": "127.0.0.1", "port": 9, "ticket": TICKET, "session": 0}).run()
    assert keys == [TICKET, key]
    ours.close()
    theirs.close()
