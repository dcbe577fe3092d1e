"""Every message scrun-rest's processes exchange, defined once.

Python 3.6+, stdlib only: the agent and its tasks carry this module in the
job script, so the anchor and the node check the same table.

A message is a JSON object {"t": TYPE, FIELD: VALUE, ...}. Each link below
lists, per direction, the types its receiver accepts and their fields;
`check` refuses anything else (an unknown type, a missing or unknown field,
a value of the wrong type) with ProtocolError, which ends that link.
Frames are size-capped by tunnel/wire.py before they get here.

Links:
  agent link     the batch-job agent <-> the anchor (one per container)
  task link      one task of a step <-> the anchor (one per task)
  control        a CLI command (start, kill, delete, exec) <-> the anchor's
                 unix socket, one connection per command
  create report  the forked anchor -> the `create` waiting for it (a pipe)
The handshake's roles (what a tunnel connection is for) are here too.
"""

# Field kinds. A "?" suffix makes a field optional (absent or null).
INT, STR, BOOL, OBJECT = "int", "str", "bool", "object"
STR_LIST, STR_MAP, INT_PAIR = "str-list", "str-map", "int-pair"
INT_LIST, ITEM_LIST = "int-list", "item-list"

# One path of the container a node may need a copy of (bundle transfer):
# its rootfs ("rootfs") or a bind mount's source ("volume"). With a probe
# the node uses the path in place when it sees the same content there
# (bundle/tree_probe.py); without one it always asks for the copy.
# writeback: what the container changed there goes back afterwards.
# inline: a small item's tar archive (base64), which then needs no stream.
BUNDLE_ITEM = {"id": INT, "path": STR, "what": STR, "file": BOOL, "probe": STR + "?",
               "writeback": BOOL, "inline": STR + "?"}

AGENT_TO_ANCHOR = {
    # The batch script runs: who the job runs as, the job's SLURM_* variables.
    "started": {"nodelist": STR + "?", "python": STR, "env": STR_MAP,
                "identity": STR_MAP},
    "ping": {},
    "pong": {},
    # Slurm signalled the batch script (cancel, time limit, preemption).
    "job_signal": {"signal": INT},
    # srun's own output for a step (errors, mostly), one line each.
    "step_output": {"session": INT, "line": STR},
    "step_exit": {"session": INT, "status": INT, "error": STR + "?"},
    "remote_done": {"id": INT, "status": INT, "output": STR},
}

ANCHOR_TO_AGENT = {
    # oci.conf settings.
    "welcome": {"settings": STR_MAP},
    "ping": {},
    "pong": {},
    # Start a step: the container (session 0) or an exec. The ticket is the
    # key each task's first link proves it holds, once per task.
    "launch": {"session": INT, "srun_args": STR_LIST, "env": STR_MAP, "ticket": STR},
    # scrun.lua's remote_command: a script for every node of the job.
    "remote": {"id": INT, "script": STR, "env": STR_MAP},
    # Signal a step's srun (the container is not running yet).
    "signal_step": {"session": INT, "signal": INT},
    "shutdown": {"code": INT},
}

TASK_TO_ANCHOR = {
    # The bundle items this node lacks: one "bundle-ID" stream follows for
    # each not inline, carrying a tar archive of the item
    # (anchor/bundle_server.py).
    "fetch": {"items": INT_LIST},
    # After the container, for each writeback item fetched: the entries
    # (paths relative to the item) it deleted, and how many it created or
    # changed, which a "writeback-ID" stream then brings (none for 0).
    "changes": {"item": INT, "deleted": STR_LIST, "changed": INT},
    # Bundle ready, streams dialled: waiting for go.
    "prepared": {},
    # The runtime runs the container's process.
    # root: the container's runtime root (%R), for an exec that joins it;
    # rootfs: where its rootfs is on this node, when that is a copy.
    "started": {"pid": INT, "container": STR + "?", "root": STR + "?", "rootfs": STR + "?"},
    "exit": {"status": INT, "error": STR + "?"},
}

ANCHOR_TO_TASK = {
    # key: the task key its stream links prove they hold.
    "setup": {"mode": STR, "config": OBJECT, "key": STR, "streams": STR_LIST, "env": STR_MAP,
              "settings": STR_MAP, "rows": INT + "?", "cols": INT + "?",
              "process": OBJECT + "?", "container": STR + "?", "root": STR + "?",
              "bundle": ITEM_LIST + "?"},
    # A fetched item's archive is whole; with an error, throw it away (tar
    # ends an archive cleanly even after a file it could not read).
    "bundle_sent": {"item": INT, "error": STR + "?"},
    "go": {"rows": INT + "?", "cols": INT + "?"},
    # The container is stopped before it ran: end without starting it.
    "abort": {},
    "signal": {"signal": INT},
    "resize": {"rows": INT, "cols": INT},
}

CLIENT_TO_ANCHOR = {
    "start": {},
    "kill": {"signal": INT},
    "delete": {},
    # The client's stdio rides along as fds (SCM_RIGHTS); then resize and
    # signal messages follow on the same connection until the exit.
    "exec": {"process": OBJECT, "tty": BOOL, "window": INT_PAIR + "?"},
    "resize": {"rows": INT, "cols": INT},
    "signal": {"signal": INT},
}

ANCHOR_TO_CLIENT = {
    "reply": {"ok": BOOL, "error": STR + "?", "exit_code": INT + "?",
              "session": INT + "?"},
    # An exec's process ended.
    "exit": {"status": INT},
}

ANCHOR_TO_CREATE = {
    "created": {},
    # The job still pends after CreateTimeout: create returns, start waits.
    "pending": {},
    "failed": {"code": INT, "error": STR},
}

# Tunnel handshake roles, by kind; the role is inside the handshake's MAC.
_TASK_ROLE = {"session": INT, "task": INT, "node": STR, "step": STR, "job": STR}
ROLES = {
    "agent": {"job": STR, "host": STR},
    "task": _TASK_ROLE,
    # stream: stdin, stdout, stderr, tty; bundle-ID, writeback-ID.
    "data": dict(_TASK_ROLE, stream=STR),
}


class ProtocolError(Exception):
    """A message that is not in the table: the link that sent it ends."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


_KIND_CHECKS = {
    INT: _is_int,
    STR: lambda value: isinstance(value, str),
    BOOL: lambda value: isinstance(value, bool),
    OBJECT: lambda value: isinstance(value, dict),
    STR_LIST: lambda value: isinstance(value, list) and all(
        isinstance(item, str) for item in value),
    STR_MAP: lambda value: isinstance(value, dict) and all(
        isinstance(item, str) for item in value.values()),
    INT_PAIR: lambda value: isinstance(value, list) and len(value) == 2 and all(
        _is_int(item) for item in value),
    INT_LIST: lambda value: isinstance(value, list) and all(_is_int(item) for item in value),
    ITEM_LIST: lambda value: isinstance(value, list) and all(
        _is_bundle_item(item) for item in value),
}


def _is_bundle_item(item):
    if not isinstance(item, dict):
        return False
    try:
        _check_fields("bundle item", BUNDLE_ITEM, item, skip=())
    except ProtocolError:
        return False
    return True


def _check_fields(what, fields, message, skip=("t",)):
    for name, kind in fields.items():
        optional = kind.endswith("?")
        value = message.get(name)
        if value is None:
            if optional:
                continue
            raise ProtocolError("%s lacks %r" % (what, name))
        if not _KIND_CHECKS[kind.rstrip("?")](value):
            raise ProtocolError("%s: %r is not of type %s" % (what, name, kind.rstrip("?")))
    unknown = set(message) - set(fields) - set(skip)
    if unknown:
        raise ProtocolError("%s has unknown fields %s" % (what, ", ".join(
            sorted(repr(str(name)[:40]) for name in unknown))))


def check(link, message):
    """Return message if `link` (one of the tables above) accepts it."""
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    kind = message.get("t")
    if not isinstance(kind, str) or kind not in link:
        raise ProtocolError("unexpected message type %r" % (str(kind)[:40],))
    _check_fields("message %r" % kind, link[kind], message)
    return message


def make(link, kind, **fields):
    """A message of `kind` for `link`, checked as its receiver will."""
    message = dict(fields, t=kind)
    for name in [name for name, value in fields.items() if value is None]:
        del message[name]  # optional and absent: null would be the same
    return check(link, message)


def check_role(role):
    """A handshake role: returns its kind, or raises ProtocolError."""
    if not isinstance(role, dict) or role.get("kind") not in ROLES:
        raise ProtocolError("unknown connection role")
    _check_fields("role %r" % role["kind"], ROLES[role["kind"]], role, skip=("kind",))
    return role["kind"]


class Dispatcher:
    """Calls the handler for each message a link receives.

    The handlers must cover the link's table exactly, so that adding a
    message type without a receiver (or a stale handler) fails at once.
    """

    def __init__(self, link, handlers):
        missing = set(link) - set(handlers)
        stale = set(handlers) - set(link)
        if missing or stale:
            raise ValueError("handlers do not match the message table: missing %s, "
                             "unknown %s" % (sorted(missing), sorted(stale)))
        self.link = link
        self.handlers = dict(handlers)

    def __call__(self, message):
        check(self.link, message)
        return self.handlers[message["t"]](message)
