"""`delete [--force] ID`: remove a stopped container; --force stops it first.

Idempotent with --force (podman's cleanup may run it twice). When the
anchor died before the job ended, the job is cancelled here through REST.
"""
import time

from scrun_rest.anchor import control, spool as spoolmod
from scrun_rest.cli import args
from scrun_rest.cli.common import open_spool
from scrun_rest.errors import UserError

SPEC = args.Spec(flags=("--force",), aliases={"-f": "--force"})
ANCHOR_EXIT_WAIT = 10.0


def run(argv, globals_):
    parsed = args.parse(argv, SPEC, "delete")
    force = bool(parsed.get("--force"))
    spool = open_spool(globals_, parsed.positionals[0], must_exist=False)
    state = spool.read_state()
    if state is None:
        if force:
            return 0
        raise UserError("container %s does not exist" % spool.id)
    status = spoolmod.effective_status(state)
    if status != spoolmod.STOPPED:
        if not force:
            raise UserError("cannot delete container %s that is not stopped: %s"
                            % (spool.id, status))
        try:
            control.request(spool.socket_path, {"cmd": "delete"}, timeout=120)
        except (control.AnchorGone, OSError):
            pass
        _wait_for_exit(state.get("pid"))
        state = spool.read_state() or state
    if state.get("status") != spoolmod.STOPPED and state.get("job_id"):
        # The anchor died without ending the job: nobody else will.
        _cancel_job(state["job_id"])
    spool.remove()
    return 0


def _wait_for_exit(pid):
    deadline = time.monotonic() + ANCHOR_EXIT_WAIT
    while spoolmod.process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _cancel_job(job_id):
    from scrun_rest.session import rest_client_from_config
    try:
        rest_client_from_config().cancel(job_id)
    except UserError:
        pass
