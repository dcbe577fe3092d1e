"""Ending a container: what the anchor does once the lifecycle says stop.

In order: stop reading the caller's input, stage out, end the job (the
agent's shutdown, else a cancel through REST), release exec clients, then
either undo everything (create never returned: as if it was never tried)
or record the exit status as stopped for podman and docker to read.
"""
import asyncio
import logging

from scrun_rest.anchor import bundle_server
from scrun_rest.anchor.spool import remove_quietly
from scrun_rest.errors import UserError

log = logging.getLogger("scrun_rest.anchor")
EXEC_LOST = 255


async def tear_down(anchor, code, error):
    if error:
        log.error("%s", error)
    main = anchor.main
    if main is not None:
        main.close_local()
    await stage_out(anchor)
    job_id = anchor.life.job_id
    create_failed = not anchor.report.reported
    if create_failed and job_id is not None:
        # create fails: cancel the job as scrun does, so Slurm records it as
        # cancelled rather than failed.
        await cancel_job(anchor, job_id)
    if anchor.agent is not None and not anchor.agent.closed:
        anchor.agent.send("shutdown", code=code)
        await asyncio.sleep(0)
        anchor.agent.close()
    elif job_id is not None and not create_failed and not anchor.agent_released:
        await cancel_job(anchor, job_id)
    for session in list(anchor.sessions.values()):
        if session.exit_future is not None and not session.exit_future.done():
            session.exit_future.set_result(EXEC_LOST)
    anchor.exit_code = code
    if create_failed:
        anchor.report.failed(code, error or "failed")
        anchor.life.torn_down()
        remove_everything(anchor)
        return
    if main is not None:
        if error:
            main.write_local_error(error)
        if not main.ended.is_set():
            # Its end never came through end_session (and settle).
            for line in bundle_server.abandoned(main.tasks.values()):
                main.write_local_error(line)
        await main.flush_local()
    anchor.life.torn_down()
    anchor.write_state()


async def stage_out(anchor):
    """scrun.lua's stage_out, once, if its stage_in ran."""
    if not anchor.stage_in_ran:
        return
    anchor.stage_in_ran = False
    try:
        await anchor.blocking(anchor.setup.staging.stage_out, anchor.life.job_id,
                              anchor.remote.run_blocking, anchor.job_identity)
    except UserError as exc:
        log.error("stage_out failed: %s", exc)
        # The container's files may not be back: the user must know.
        if anchor.main is not None:
            anchor.main.write_local_error(str(exc))


def remove_everything(anchor):
    """Leave nothing behind, as if create had never been tried."""
    anchor.close_servers()
    try:
        anchor.spool.remove()
    except OSError:
        pass
    remove_quietly(anchor.setup.pid_file)


async def cancel_job(anchor, job_id):
    try:
        await anchor.blocking(anchor.rest_client().cancel, job_id)
        log.info("cancelled job %s", job_id)
    except UserError as exc:
        log.warning("could not cancel job %s: %s", job_id, exc)
