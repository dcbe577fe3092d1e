"""`start ID`: let the created container's process run."""
from scrun_rest.anchor import control, spool as spoolmod
from scrun_rest.cli import args
from scrun_rest.cli.common import open_spool
from scrun_rest.errors import UserError


def run(argv, globals_):
    parsed = args.parse(argv, args.Spec(), "start")
    spool = open_spool(globals_, parsed.positionals[0])
    if spoolmod.effective_status(spool.read_state()) == spoolmod.STOPPED:
        raise UserError("container %s is stopped" % spool.id)
    try:
        reply = control.request(spool.socket_path, {"cmd": "start"})
    except control.AnchorGone:
        raise UserError("container %s is stopped" % spool.id)
    if not reply.get("ok"):
        raise UserError(reply.get("error") or "start failed")
    return 0
