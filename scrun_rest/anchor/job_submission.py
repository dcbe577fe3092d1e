"""Submitting the container's job, and watching it while it pends.

The job script is the agent (job_script.py) with the tunnel's address and
the agent's one-use secret. While the job pends nothing reaches the anchor
through the tunnel; a slow poll notices a job that ended without ever
starting (cancelled, failed, or its agent could not dial back).
"""
import asyncio
import logging

from scrun_rest.anchor import job_fate, job_script
from scrun_rest.errors import UserError

log = logging.getLogger("scrun_rest.anchor")
PENDING_POLL_DELAYS = (3, 5, 10, 20, 30)


async def submit(anchor):
    """Submit the job; returns its id."""
    setup = anchor.setup
    script = job_script.build(
        setup.container_id, setup.tunnel_host, anchor.tunnel.port,
        anchor.job_secret.hex(), python=setup.agent_python,
        heartbeat=setup.heartbeat, tls_pin=anchor.tls_pin)
    request = dict(setup.job_request, script=script)
    # Output variables name this process, which did not exist when
    # create built the request.
    request["environment"] = dict(request["environment"], **setup.output_env())
    # The script holds the agent's secret: never logged.
    log.debug("job request: %s", sorted(
        (key, value) for key, value in request.items()
        if key not in ("script", "environment") and value is not None))
    job_id = await anchor.blocking(anchor.rest_client().submit, request)
    log.info("submitted job %s", job_id)
    return job_id


async def watch_pending(anchor):
    life = anchor.life
    for delay in _poll_delays():
        await asyncio.sleep(delay)
        if not life.awaiting_agent:
            return
        try:
            info = await anchor.blocking(anchor.rest_client().job, life.job_id)
        except UserError as exc:
            log.warning("cannot query job %s: %s", life.job_id, exc)
            continue
        if not life.awaiting_agent:
            return
        if info.state.is_terminal:
            anchor.finish(1, "job %s ended as %s%s without its agent reaching the "
                             "anchor at %s%s" % (life.job_id, info.state.name,
                                               job_fate.state_reason(info),
                                               anchor.tunnel.address,
                                               _loopback_hint(anchor.setup.tunnel_host)))
            return


def _loopback_hint(host):
    from scrun_rest.tunnel.loopback import is_loopback
    if not is_loopback(host):
        return ""
    return (" (a loopback address, which only a node that is this host may dial: "
            "set TunnelHost)")


def _poll_delays():
    for delay in PENDING_POLL_DELAYS:
        yield delay
    while True:
        yield PENDING_POLL_DELAYS[-1]
