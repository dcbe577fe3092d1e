"""`kill [--all] ID [SIGNAL]`: signal the container's process (default TERM)."""
import signal

from scrun_rest.anchor import control, spool as spoolmod
from scrun_rest.cli import args
from scrun_rest.cli.common import open_spool, parse_signal
from scrun_rest.errors import UserError

SPEC = args.Spec(flags=("--all",), aliases={"-a": "--all"}, positionals=(1, 2))


def run(argv, globals_):
    parsed = args.parse(argv, SPEC, "kill")
    signum = parse_signal(parsed.positionals[1]) if len(parsed.positionals) > 1 \
        else int(signal.SIGTERM)
    spool = open_spool(globals_, parsed.positionals[0])
    if spoolmod.effective_status(spool.read_state()) == spoolmod.STOPPED:
        raise UserError("container %s is not running" % spool.id)
    try:
        reply = control.request(spool.socket_path, {
            "cmd": "kill", "signal": signum, "all": bool(parsed.get("--all"))})
    except control.AnchorGone:
        raise UserError("container %s is not running" % spool.id)
    if not reply.get("ok"):
        raise UserError(reply.get("error") or "kill failed")
    return 0
