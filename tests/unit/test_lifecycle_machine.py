"""The container's lifecycle machine, driven through every state and event
without sockets or asyncio (as h11's test_state.py drives its machine)."""
import pytest

from scrun_rest.anchor import lifecycle as life
from scrun_rest.anchor.lifecycle import Lifecycle

SIGTERM, SIGKILL, SIGWINCH, SIGUSR1 = 15, 9, 28, 10
STATUS_ORDER = ("creating", "created", "running", "stopped")

# How each phase is reached from a fresh machine.
PATHS = {
    life.QUEUED: [],
    life.STAGING: ["agent_linked"],
    life.READY: ["agent_linked", "prepared"],
    life.WAITING: ["create_timed_out"],
    life.WAITING_STAGING: ["create_timed_out", "agent_linked"],
    life.START_QUEUED: ["create_timed_out", "start"],
    life.START_STAGING: ["create_timed_out", "start", "agent_linked"],
    life.GOING: ["agent_linked", "prepared", "start"],
    life.LAUNCHED: ["agent_linked", "prepared", "start", "started"],
    life.ENDING: ["finish"],
    life.STOPPED: ["finish", "torn_down"],
}


def machine_in(phase):
    machine = Lifecycle("c1")
    machine.job_id = 42
    for step in PATHS[phase]:
        getattr(machine, step)()
    assert machine.phase == phase
    return machine


# Every event as the anchor raises it, with the signal it carries.
EVENTS = {
    life.AGENT_LINKED: lambda m: m.agent_linked(),
    life.PREPARED: lambda m: m.prepared(),
    life.CREATE_TIMEOUT: lambda m: m.create_timed_out(),
    life.START: lambda m: m.start(),
    life.STARTED: lambda m: m.started(),
    life.FATAL_KILL: lambda m: m.kill(SIGTERM),
    life.HARMLESS_KILL: lambda m: m.kill(SIGWINCH),
    life.DELETE: lambda m: m.delete(),
    life.EXEC_REQUEST: lambda m: m.exec_request(),
    life.INTERRUPT: lambda m: m.handle(life.INTERRUPT, SIGTERM),
    life.FINISH: lambda m: m.handle(life.FINISH),
    life.TORN_DOWN: lambda m: m.handle(life.TORN_DOWN),
}

STOP_TERM = (life.STOP, 128 + SIGTERM)
STOP_KILL = (life.STOP, 128 + SIGKILL)
ILLEGAL = "illegal"

# The expected outcome of each (phase, event): (next phase, actions), a
# refusal's text, or ILLEGAL. Written out in full, apart from the table.
EXPECTED = {
    life.QUEUED: {
        life.AGENT_LINKED: (life.STAGING, []),
        life.PREPARED: ILLEGAL,
        life.CREATE_TIMEOUT: (life.WAITING, [(life.REPORT_PENDING, None)]),
        life.START: "container c1 is still being created",
        life.STARTED: ILLEGAL,
        life.FATAL_KILL: (life.ENDING, [STOP_TERM]),
        life.HARMLESS_KILL: (life.QUEUED, []),
        life.DELETE: (life.ENDING, [STOP_KILL]),
        life.EXEC_REQUEST: "container c1 is not running",
        life.INTERRUPT: (life.ENDING, [STOP_TERM]),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: ILLEGAL,
    },
    life.STAGING: {
        life.AGENT_LINKED: "a second agent for container c1",
        life.PREPARED: (life.READY, [(life.REPORT_CREATED, None)]),
        life.CREATE_TIMEOUT: (life.WAITING_STAGING, [(life.REPORT_PENDING, None)]),
        life.START: "container c1 is still being created",
        life.STARTED: ILLEGAL,
        life.FATAL_KILL: (life.ENDING, [STOP_TERM]),
        life.HARMLESS_KILL: (life.STAGING, []),
        life.DELETE: (life.ENDING, [STOP_KILL]),
        life.EXEC_REQUEST: "container c1 is not running",
        life.INTERRUPT: (life.ENDING, [STOP_TERM]),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: ILLEGAL,
    },
    life.READY: {
        life.AGENT_LINKED: "a second agent for container c1",
        life.PREPARED: ILLEGAL,
        life.CREATE_TIMEOUT: (life.READY, []),
        life.START: (life.GOING, [(life.GO, None)]),
        life.STARTED: ILLEGAL,
        life.FATAL_KILL: (life.ENDING, [(life.ABORT_TASKS, SIGTERM), STOP_TERM]),
        life.HARMLESS_KILL: (life.READY, []),
        life.DELETE: (life.ENDING, [(life.ABORT_TASKS, SIGKILL), STOP_KILL]),
        life.EXEC_REQUEST: "container c1 is not running",
        life.INTERRUPT: (life.ENDING, [STOP_TERM]),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: ILLEGAL,
    },
    life.WAITING: {
        life.AGENT_LINKED: (life.WAITING_STAGING, []),
        life.PREPARED: ILLEGAL,
        life.CREATE_TIMEOUT: (life.WAITING, []),
        life.START: (life.START_QUEUED, []),
        life.STARTED: ILLEGAL,
        life.FATAL_KILL: (life.ENDING, [STOP_TERM]),
        life.HARMLESS_KILL: (life.WAITING, []),
        life.DELETE: (life.ENDING, [STOP_KILL]),
        life.EXEC_REQUEST: "container c1 is not running",
        life.INTERRUPT: (life.ENDING, [STOP_TERM]),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: ILLEGAL,
    },
    life.WAITING_STAGING: {
        life.AGENT_LINKED: "a second agent for container c1",
        life.PREPARED: (life.READY, []),
        life.CREATE_TIMEOUT: (life.WAITING_STAGING, []),
        life.START: (life.START_STAGING, []),
        life.STARTED: ILLEGAL,
        life.FATAL_KILL: (life.ENDING, [(life.SIGNAL_STEP, SIGTERM), STOP_TERM]),
        life.HARMLESS_KILL: (life.WAITING_STAGING, []),
        life.DELETE: (life.ENDING, [(life.SIGNAL_STEP, SIGKILL), STOP_KILL]),
        life.EXEC_REQUEST: "container c1 is not running",
        life.INTERRUPT: (life.ENDING, [STOP_TERM]),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: ILLEGAL,
    },
    life.START_QUEUED: {
        life.AGENT_LINKED: (life.START_STAGING, []),
        life.PREPARED: ILLEGAL,
        life.CREATE_TIMEOUT: (life.START_QUEUED, []),
        life.START: (life.START_QUEUED, []),
        life.STARTED: ILLEGAL,
        life.FATAL_KILL: (life.ENDING, [STOP_TERM]),
        life.HARMLESS_KILL: (life.START_QUEUED, []),
        life.DELETE: (life.ENDING, [STOP_KILL]),
        life.EXEC_REQUEST: "container c1 has not started yet: job 42 is pending",
        life.INTERRUPT: (life.ENDING, [STOP_TERM]),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: ILLEGAL,
    },
    life.START_STAGING: {
        life.AGENT_LINKED: "a second agent for container c1",
        life.PREPARED: (life.GOING, [(life.GO, None)]),
        life.CREATE_TIMEOUT: (life.START_STAGING, []),
        life.START: (life.START_STAGING, []),
        life.STARTED: ILLEGAL,
        life.FATAL_KILL: (life.ENDING, [(life.SIGNAL_STEP, SIGTERM), STOP_TERM]),
        life.HARMLESS_KILL: (life.START_STAGING, []),
        life.DELETE: (life.ENDING, [(life.SIGNAL_STEP, SIGKILL), STOP_KILL]),
        life.EXEC_REQUEST: "container c1 has not started yet: job 42 is pending",
        life.INTERRUPT: (life.ENDING, [STOP_TERM]),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: ILLEGAL,
    },
    life.GOING: {
        life.AGENT_LINKED: "a second agent for container c1",
        life.PREPARED: ILLEGAL,
        life.CREATE_TIMEOUT: (life.GOING, []),
        life.START: (life.GOING, []),
        life.STARTED: (life.LAUNCHED, [(life.RELEASE_START, None)]),
        life.FATAL_KILL: (life.GOING, [(life.FORWARD, SIGTERM)]),
        life.HARMLESS_KILL: (life.GOING, [(life.FORWARD, SIGWINCH)]),
        life.DELETE: (life.GOING, [(life.FORWARD, SIGKILL)]),
        life.EXEC_REQUEST: (life.GOING, []),
        life.INTERRUPT: (life.GOING, [(life.FORWARD, SIGTERM),
                                      (life.STOP_LATER, 128 + SIGTERM)]),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: ILLEGAL,
    },
    life.LAUNCHED: {
        life.AGENT_LINKED: "a second agent for container c1",
        life.STARTED: ILLEGAL,
        life.PREPARED: ILLEGAL,
        life.CREATE_TIMEOUT: (life.LAUNCHED, []),
        life.START: (life.LAUNCHED, []),
        life.FATAL_KILL: (life.LAUNCHED, [(life.FORWARD, SIGTERM)]),
        life.HARMLESS_KILL: (life.LAUNCHED, [(life.FORWARD, SIGWINCH)]),
        life.DELETE: (life.LAUNCHED, [(life.FORWARD, SIGKILL)]),
        life.EXEC_REQUEST: (life.LAUNCHED, []),
        life.INTERRUPT: (life.LAUNCHED, [(life.FORWARD, SIGTERM),
                                         (life.STOP_LATER, 128 + SIGTERM)]),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: ILLEGAL,
    },
    life.ENDING: {
        life.AGENT_LINKED: "container c1 is ending",
        life.PREPARED: (life.ENDING, []),
        life.CREATE_TIMEOUT: (life.ENDING, []),
        life.START: "container c1 is stopped",
        life.STARTED: (life.ENDING, []),
        life.FATAL_KILL: (life.ENDING, []),
        life.HARMLESS_KILL: (life.ENDING, []),
        life.DELETE: (life.ENDING, []),
        life.EXEC_REQUEST: "container c1 is not running",
        life.INTERRUPT: (life.ENDING, []),
        life.FINISH: (life.ENDING, []),
        life.TORN_DOWN: (life.STOPPED, []),
    },
    life.STOPPED: {
        life.AGENT_LINKED: "container c1 is ending",
        life.PREPARED: (life.STOPPED, []),
        life.CREATE_TIMEOUT: (life.STOPPED, []),
        life.START: "container c1 is stopped",
        life.STARTED: (life.STOPPED, []),
        life.FATAL_KILL: "container c1 is not running",
        life.HARMLESS_KILL: "container c1 is not running",
        life.DELETE: (life.STOPPED, []),
        life.EXEC_REQUEST: "container c1 is not running",
        life.INTERRUPT: (life.STOPPED, []),
        life.FINISH: (life.STOPPED, []),
        life.TORN_DOWN: ILLEGAL,
    },
}


def test_the_expectations_cover_every_state_and_event():
    assert set(EXPECTED) == set(life.PHASES) == set(PATHS)
    for phase in life.PHASES:
        assert set(EXPECTED[phase]) == set(life.EVENTS), phase


@pytest.mark.parametrize("phase", life.PHASES)
@pytest.mark.parametrize("event", life.EVENTS)
def test_every_state_and_event(phase, event):
    machine = machine_in(phase)
    before = (machine.phase, machine.status, machine.create_returned)
    expected = EXPECTED[phase][event]
    if expected == ILLEGAL:
        with pytest.raises(life.IllegalEvent):
            EVENTS[event](machine)
        assert (machine.phase, machine.status, machine.create_returned) == before
    elif isinstance(expected, str):
        with pytest.raises(life.Refused) as refused:
            EVENTS[event](machine)
        assert str(refused.value) == expected
        assert (machine.phase, machine.status, machine.create_returned) == before
    else:
        actions = EVENTS[event](machine)
        next_phase, expected_actions = expected
        assert machine.phase == next_phase
        if event != life.FINISH:
            assert actions == expected_actions


@pytest.mark.parametrize("phase", life.PHASES)
def test_oci_status_of_each_phase(phase):
    machine = machine_in(phase)
    expected = {life.QUEUED: "creating", life.STAGING: "creating", life.READY: "created",
                life.WAITING: "created", life.WAITING_STAGING: "created",
                life.START_QUEUED: "running", life.START_STAGING: "running",
                life.GOING: "created",  # until the process runs
                life.LAUNCHED: "running", life.ENDING: "creating",  # kept from QUEUED
                life.STOPPED: "stopped"}[phase]
    assert machine.status == expected


def test_going_keeps_running_when_start_came_while_the_job_pended():
    machine = machine_in(life.START_STAGING)
    assert machine.prepared() == [(life.GO, None)]
    assert (machine.phase, machine.status) == (life.GOING, "running")
    assert machine.started() == [(life.RELEASE_START, None)]
    assert (machine.phase, machine.status) == (life.LAUNCHED, "running")


def test_start_waits_only_until_the_process_runs():
    assert [p for p in life.PHASES if machine_in(p).starting] == [life.READY, life.GOING]


def test_ending_keeps_the_status_it_came_from_until_stopped():
    machine = machine_in(life.LAUNCHED)
    assert machine.finish() is True
    assert machine.status == "running" and machine.ending
    assert machine.finish() is False             # the first reason wins
    machine.torn_down()
    assert machine.status == "stopped"


def test_status_never_moves_backwards_on_any_path():
    """Breadth-first over every reachable phase and every event."""
    seen = set()
    frontier = [[]]
    while frontier:
        path = frontier.pop(0)
        machine = Lifecycle("c1")
        statuses = [machine.status]
        returned = [machine.create_returned]
        for event in path:
            try:
                EVENTS[event](machine)
            except (life.Refused, life.IllegalEvent):
                pass
            statuses.append(machine.status)
            returned.append(machine.create_returned)
        ranks = [STATUS_ORDER.index(status) for status in statuses]
        assert ranks == sorted(ranks), path
        assert returned == sorted(returned), path   # create is told once
        key = (machine.phase, machine.status, machine.create_returned)
        if key in seen or len(path) >= 6:
            continue
        seen.add(key)
        frontier.extend(path + [event] for event in life.EVENTS)
    assert {phase for phase, _, _ in seen} == set(life.PHASES)


def test_create_is_told_once_whichever_way_it_returns():
    machine = machine_in(life.STAGING)
    assert machine.create_timed_out() == [(life.REPORT_PENDING, None)]
    assert machine.prepared() == []              # not a second report
    assert machine.create_returned


def test_signals_that_do_not_end_a_process_are_harmless():
    for signum in (17, 18, 23, 28):              # CHLD, CONT, URG, WINCH
        machine = machine_in(life.READY)
        assert machine.kill(signum) == [] and machine.phase == life.READY
    machine = machine_in(life.READY)
    assert machine.kill(SIGUSR1)[-1] == (life.STOP, 128 + SIGUSR1)


def test_the_agent_is_awaited_only_before_it_linked():
    awaiting = {phase for phase in life.PHASES if machine_in(phase).awaiting_agent}
    assert awaiting == {life.QUEUED, life.WAITING, life.START_QUEUED}
