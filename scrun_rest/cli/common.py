"""Glue the commands share: finding a container by id, signal names."""
from scrun_rest.anchor.spool import Spool
from scrun_rest.errors import UserError
from scrun_rest.oci.state_doc import check_container_id


def open_spool(globals_, container_id, must_exist=True):
    check_container_id(container_id)
    spool = Spool(globals_.resolved_root(), container_id)
    if must_exist and spool.read_state() is None:
        raise UserError("container %s does not exist" % container_id)
    return spool


def parse_signal(text):
    """SIGTERM, TERM, term or 15; anything else is an error."""
    import signal  # not at the top: it imports enum, and `state` needs neither
    value = str(text).strip()
    if value.isascii() and value.isdigit():  # "\u00b2".isdigit() too, but int() refuses it
        number = int(value)
        if not 1 <= number <= signal.SIGRTMAX:
            raise UserError("invalid signal %s" % value[:20])
        return number
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    number = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if number is None:
        raise UserError("invalid signal %s" % value[:20])
    return int(number)


def release_caller_stdio():
    """A process left behind (anchor, exec front) must not hold its caller's
    stdio: docker's shim reads the runtime's output until EOF."""
    import os
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
