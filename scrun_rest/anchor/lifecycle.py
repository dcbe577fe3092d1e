"""The container's lifecycle, as a state machine without I/O.

Everything that decides what a container may do next lives here; the
anchor feeds events in and carries out the actions that come back.

The rules:
- OCI status only moves forward: creating -> created -> running -> stopped.
- `create` returns (the container is "created") once every task is
  prepared on its node, or once CreateTimeout passes while the job pends.
- `start` from created lets the process run: at once if the tasks are
  prepared, else as soon as they are. The container is "running" once every
  task says its runtime has started the user's program (runtime.md), and
  `start` returns then; signals sent meanwhile wait in the task's link and
  reach the process as soon as it runs. A second start is harmless; start
  while still creating, or once stopped, is refused.
- `kill` of a running container passes the signal to its process. Before
  that, a signal whose default action would end a process stops the
  container with 128+N, as if it had died of it; any other is ignored.
- `delete` is kill with SIGKILL, then waiting for stopped.
- exec needs a running container whose process has been let go.
- The first reason to end the container wins; later ones change nothing.
"""
from scrun_rest.anchor.spool import CREATED, CREATING, RUNNING, STOPPED as OCI_STOPPED
from scrun_rest.errors import UserError

# Phases. Each has one OCI status, but for GOING and ENDING, which keep the
# one they came from (created after start, running when started while the
# job pended) until the process runs or the container is stopped.
QUEUED = "queued"                  # job submitted, its agent not dialled in yet
STAGING = "staging"                # agent linked, tasks preparing the container
READY = "ready"                    # every task prepared, waiting for start
WAITING = "waiting"                # create gave up waiting; the job still pends
WAITING_STAGING = "waiting-staging"  # create gave up; tasks preparing now
START_QUEUED = "start-queued"      # started while the job pends
START_STAGING = "start-staging"    # started while the tasks prepare
GOING = "going"                    # go sent: the runtime starts the process
LAUNCHED = "launched"              # the container's process runs
ENDING = "ending"                  # ending: no new work is taken
STOPPED = "stopped"
PHASES = (QUEUED, STAGING, READY, WAITING, WAITING_STAGING, START_QUEUED,
          START_STAGING, GOING, LAUNCHED, ENDING, STOPPED)

OCI_STATUS = {
    QUEUED: CREATING, STAGING: CREATING,
    READY: CREATED, WAITING: CREATED, WAITING_STAGING: CREATED,
    START_QUEUED: RUNNING, START_STAGING: RUNNING, LAUNCHED: RUNNING,
    STOPPED: OCI_STOPPED,
}

# Actions for the anchor to carry out, in order.
REPORT_CREATED = "report-created"  # tell create: the container is ready
REPORT_PENDING = "report-pending"  # tell create: return, the job pends
GO = "go"                          # let the main session's process run
RELEASE_START = "release-start"    # the process runs: `start` may return
FORWARD = "forward"                # pass the signal to the process
ABORT_TASKS = "abort-tasks"        # tasks prepared: end them unstarted
SIGNAL_STEP = "signal-step"        # stop the step srun is launching
STOP = "stop"                      # end the container with 128+signal
STOP_LATER = "stop-later"          # ... unless it ends by itself first

# Events.
AGENT_LINKED = "agent-linked"
PREPARED = "prepared"
CREATE_TIMEOUT = "create-timeout"
START = "start"
STARTED = "started"                # every task's runtime started the process
FATAL_KILL = "fatal-kill"          # a signal that ends a process by default
HARMLESS_KILL = "harmless-kill"    # SIGCHLD, SIGCONT, SIGURG, SIGWINCH
DELETE = "delete"
EXEC_REQUEST = "exec"
INTERRUPT = "interrupt"            # SIGINT/SIGTERM to the anchor itself
FINISH = "finish"
TORN_DOWN = "torn-down"
EVENTS = (AGENT_LINKED, PREPARED, CREATE_TIMEOUT, START, STARTED, FATAL_KILL, HARMLESS_KILL,
          DELETE, EXEC_REQUEST, INTERRUPT, FINISH, TORN_DOWN)

HARMLESS_SIGNALS = frozenset((17, 18, 23, 28))  # CHLD, CONT, URG, WINCH

# Refusals, worded for the user ({id}: the container, {job}: its job).
NOT_CREATED = "container {id} is still being created"
IS_STOPPED = "container {id} is stopped"
NOT_RUNNING = "container {id} is not running"
NOT_STARTED = "container {id} has not started yet: job {job} is pending"
SECOND_AGENT = "a second agent for container {id}"
TOO_LATE = "container {id} is ending"

_STOP_STEP = (ENDING, [SIGNAL_STEP, STOP])
_ANY_END = {FINISH: (ENDING, []), INTERRUPT: (ENDING, [STOP]),
            HARMLESS_KILL: (None, []), CREATE_TIMEOUT: (None, [])}

# state -> event -> (next phase or None to stay, actions) or a refusal.
# An event missing from a state's row cannot happen there: a bug.
TABLE = {
    QUEUED: dict(_ANY_END, **{
        AGENT_LINKED: (STAGING, []),
        CREATE_TIMEOUT: (WAITING, [REPORT_PENDING]),
        START: NOT_CREATED,
        FATAL_KILL: (ENDING, [STOP]), DELETE: (ENDING, [STOP]),
        EXEC_REQUEST: NOT_RUNNING,
    }),
    STAGING: dict(_ANY_END, **{
        AGENT_LINKED: SECOND_AGENT,
        PREPARED: (READY, [REPORT_CREATED]),
        CREATE_TIMEOUT: (WAITING_STAGING, [REPORT_PENDING]),
        START: NOT_CREATED,
        FATAL_KILL: (ENDING, [STOP]), DELETE: (ENDING, [STOP]),
        EXEC_REQUEST: NOT_RUNNING,
    }),
    READY: dict(_ANY_END, **{
        AGENT_LINKED: SECOND_AGENT,
        START: (GOING, [GO]),
        FATAL_KILL: (ENDING, [ABORT_TASKS, STOP]),
        DELETE: (ENDING, [ABORT_TASKS, STOP]),
        EXEC_REQUEST: NOT_RUNNING,
    }),
    WAITING: dict(_ANY_END, **{
        AGENT_LINKED: (WAITING_STAGING, []),
        START: (START_QUEUED, []),
        FATAL_KILL: (ENDING, [STOP]), DELETE: (ENDING, [STOP]),
        EXEC_REQUEST: NOT_RUNNING,
    }),
    WAITING_STAGING: dict(_ANY_END, **{
        AGENT_LINKED: SECOND_AGENT,
        PREPARED: (READY, []),
        START: (START_STAGING, []),
        FATAL_KILL: _STOP_STEP, DELETE: (ENDING, [SIGNAL_STEP, STOP]),
        EXEC_REQUEST: NOT_RUNNING,
    }),
    START_QUEUED: dict(_ANY_END, **{
        AGENT_LINKED: (START_STAGING, []),
        START: (None, []),
        FATAL_KILL: (ENDING, [STOP]), DELETE: (ENDING, [STOP]),
        EXEC_REQUEST: NOT_STARTED,
    }),
    START_STAGING: dict(_ANY_END, **{
        AGENT_LINKED: SECOND_AGENT,
        PREPARED: (GOING, [GO]),
        START: (None, []),
        FATAL_KILL: _STOP_STEP, DELETE: (ENDING, [SIGNAL_STEP, STOP]),
        EXEC_REQUEST: NOT_STARTED,
    }),
    GOING: dict(_ANY_END, **{
        AGENT_LINKED: SECOND_AGENT,
        START: (None, []),
        STARTED: (LAUNCHED, [RELEASE_START]),
        # The tasks read signals only once their process runs: none is lost.
        FATAL_KILL: (None, [FORWARD]), HARMLESS_KILL: (None, [FORWARD]),
        DELETE: (None, [FORWARD]),
        EXEC_REQUEST: (None, []),
        INTERRUPT: (None, [FORWARD, STOP_LATER]),
    }),
    LAUNCHED: dict(_ANY_END, **{
        AGENT_LINKED: SECOND_AGENT,
        START: (None, []),
        FATAL_KILL: (None, [FORWARD]), HARMLESS_KILL: (None, [FORWARD]),
        DELETE: (None, [FORWARD]),
        EXEC_REQUEST: (None, []),
        INTERRUPT: (None, [FORWARD, STOP_LATER]),
    }),
    ENDING: {
        AGENT_LINKED: TOO_LATE, PREPARED: (None, []), CREATE_TIMEOUT: (None, []),
        STARTED: (None, []),
        START: IS_STOPPED, FATAL_KILL: (None, []), HARMLESS_KILL: (None, []),
        DELETE: (None, []), EXEC_REQUEST: NOT_RUNNING,
        INTERRUPT: (None, []), FINISH: (None, []), TORN_DOWN: (STOPPED, []),
    },
    STOPPED: {
        AGENT_LINKED: TOO_LATE, PREPARED: (None, []), CREATE_TIMEOUT: (None, []),
        STARTED: (None, []),
        START: IS_STOPPED, FATAL_KILL: NOT_RUNNING, HARMLESS_KILL: NOT_RUNNING,
        DELETE: (None, []), EXEC_REQUEST: NOT_RUNNING,
        INTERRUPT: (None, []), FINISH: (None, []),
    },
}


class Refused(UserError):
    """The request makes no sense in this state; the user is told why."""


class IllegalEvent(Exception):
    """An event that cannot happen in this state: a bug in the anchor."""


class Lifecycle:
    def __init__(self, container_id):
        self.container_id = container_id
        self.job_id = None
        self.phase = QUEUED
        self.status = CREATING
        # Whether `create` has been told how it went (it returned).
        self.create_returned = False

    @property
    def ending(self):
        return self.phase in (ENDING, STOPPED)

    @property
    def awaiting_agent(self):
        """Whether the job's agent may still dial in (it has not yet)."""
        return not isinstance(TABLE[self.phase][AGENT_LINKED], str)

    def handle(self, event, signum=None):
        """Move on by `event`; returns the actions as (action, value) pairs.
        A refusal raises Refused; an event without a row, IllegalEvent."""
        outcome = TABLE[self.phase].get(event)
        if outcome is None:
            raise IllegalEvent("%s cannot happen while %s" % (event, self.phase))
        if isinstance(outcome, str):
            raise Refused(outcome.format(id=self.container_id, job=self.job_id))
        phase, actions = outcome
        if phase is not None:
            self.phase = phase
            self.status = OCI_STATUS.get(phase, self.status)
        if REPORT_CREATED in actions or REPORT_PENDING in actions:
            self.create_returned = True
        code = 128 + signum if signum else None
        return [(action, code if action in (STOP, STOP_LATER) else signum)
                for action in actions]

    # The events the anchor meets, by name.
    def agent_linked(self):
        return self.handle(AGENT_LINKED)

    def prepared(self):
        return self.handle(PREPARED)

    def create_timed_out(self):
        return self.handle(CREATE_TIMEOUT)

    def start(self):
        return self.handle(START)

    def started(self):
        return self.handle(STARTED)

    @property
    def starting(self):
        """Whether `start` must still wait for the process to run."""
        return self.phase in (READY, GOING)

    def kill(self, signum):
        event = HARMLESS_KILL if signum in HARMLESS_SIGNALS else FATAL_KILL
        return self.handle(event, signum)

    def delete(self):
        return self.handle(DELETE, 9)

    def exec_request(self):
        return self.handle(EXEC_REQUEST)

    def interrupt(self, signum):
        return self.handle(INTERRUPT, signum)

    def finish(self):
        """True for the first reason to end the container, False after."""
        first = not self.ending
        self.handle(FINISH)
        return first

    def torn_down(self):
        self.handle(TORN_DOWN)
