"""Running the anchor in the process `create` forked."""
import asyncio
import logging
import os

from scrun_rest.anchor.core import Anchor

log = logging.getLogger("scrun_rest.anchor")


def run_anchor(setup):
    # Our logs never go to the container's stderr unless asked.
    logger = setup.log_settings.apply(default_file=setup.spool.path("anchor.log"))
    # Nothing may fall through to Python's last-resort handler: our stderr
    # is the container's stderr.
    logging.lastResort = None
    for name in ("asyncio", "concurrent"):
        other = logging.getLogger(name)
        other.propagate = False
        for handler in logger.handlers:
            other.addHandler(handler)
    log.info("anchor %d for container %s", os.getpid(), setup.container_id)
    anchor = Anchor(setup)
    try:
        code = asyncio.run(anchor.run())
    except Exception:
        log.exception("anchor crashed")
        anchor.report_to_create("error 1 the anchor crashed; see its log")
        code = 1
    # contrib/bench and tests/e2e/test_performance.py read this count.
    log.debug("REST requests: %d", anchor.rest.requests_made if anchor.rest else 0)
    log.info("anchor exits with %s", code)
    logging.shutdown()
    return code
