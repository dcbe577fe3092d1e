"""Starting the anchor: the fork from `create`, and the daemon's run.

create (the parent) opens the container's stdio (conmon's pipes, or a pty
whose master goes to the console socket), forks, and waits for the
anchor's report (create_report.py). The child detaches into its own
session, keeps that stdio, and runs the anchor until the container ends.
"""
import asyncio
import logging
import os
import sys

from scrun_rest import terminal
from scrun_rest.anchor import create_report
from scrun_rest.detach import release_caller_stdio
from scrun_rest.errors import UserError

log = logging.getLogger("scrun_rest.anchor")
ANCHOR_NAME = b"scrun-anchor"


class CreateFailed(UserError):
    def __init__(self, text, exit_code=1):
        super().__init__(text)
        self.exit_code = exit_code


def fork_anchor(setup, console_socket):
    """Fork the anchor; return once it says the container is created."""
    setup.spool.create()
    slave = None
    try:
        if setup.terminal:
            if not console_socket:
                raise UserError("config.json asks for a terminal but no --console-socket was given")
            slave = terminal.open_for(console_socket, terminal.console_size(
                (setup.config_doc or {}).get("process")))
            setup.stdio = {"tty": slave}
        else:
            setup.stdio = {"stdin": _readable_stdin(), "stdout": 1, "stderr": 2}
        read_end, write_end = os.pipe()
    except BaseException:
        setup.spool.remove()
        raise
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        setup.status_fd = write_end
        _become_anchor(setup)
    os.close(write_end)
    if slave is not None:
        os.close(slave)
    return _await_report(read_end, setup)


def _readable_stdin():
    """None when there is no stdin to forward (conmon gives /dev/null)."""
    try:
        info = os.fstat(0)
    except OSError:
        return None
    null = os.stat(os.devnull)
    if (info.st_dev, info.st_ino) == (null.st_dev, null.st_ino):
        return None
    return 0


def _await_report(read_end, setup):
    report = create_report.receive(read_end)
    if report is None:
        # The anchor died without a word: say what its log says, leave nothing.
        last = _last_line(setup.log_settings.log_file or setup.spool.path("anchor.log"))
        try:
            setup.spool.remove()
        except OSError:
            pass
        raise CreateFailed("the anchor exited before the container was created: %s"
                           % (last or "no log"))
    if report["t"] == create_report.FAILED:
        raise CreateFailed(report["error"], _failure_code(report["code"]))
    return 0


def _last_line(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines else None


def _failure_code(code):
    """Exit codes podman maps: 127 not found, 126 cannot execute, else 1."""
    return code if code in (126, 127) else 1


def _become_anchor(setup):
    """In the forked child: detach from the caller's session and run."""
    code = 1
    try:
        os.setsid()
        _name_process(ANCHOR_NAME)
        if setup.terminal:
            terminal.make_controlling(setup.stdio["tty"])
            # The terminal is the container's stdio; docker's shim waits
            # for EOF on the pipes it gave create.
            release_caller_stdio()
        code = run_anchor(setup)
    except BaseException:
        _record_crash(setup)
        code = 1
    finally:
        os._exit(code)


def _name_process(name):
    """A name ps and pgrep show, so an anchor is easy to find. Writing comm is
    prctl(PR_SET_NAME) without loading ctypes (~3 ms)."""
    try:
        with open("/proc/self/comm", "wb") as handle:
            handle.write(name)
    except OSError:
        pass


def _record_crash(setup):
    """The anchor died before its logging was up: keep the traceback."""
    import traceback
    try:
        path = setup.spool.path("anchor.log")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            traceback.print_exc(file=handle)
    except OSError:
        pass


def warn_about_ignored(variables):
    """One line per SCRUN_* that config.json (the image, `podman run -e`) set
    but may not: the user learns where to set it instead."""
    for name in variables:
        log.warning("ignored %s from config.json's process.env: it acts outside the "
                    "container, so only create's environment or scrun-rest.conf may set it",
                    name)


def run_anchor(setup):
    from scrun_rest.anchor.core import Anchor
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
    warn_about_ignored(setup.ignored_variables)
    anchor = Anchor(setup)
    try:
        code = asyncio.run(anchor.run())
    except Exception:
        log.exception("anchor crashed")
        anchor.report.failed(1, "the anchor crashed; see its log")
        code = 1
    # contrib/bench and tests/e2e/test_performance.py read this count.
    log.debug("REST requests: %d", anchor.rest.requests_made if anchor.rest else 0)
    log.info("anchor exits with %s", code)
    logging.shutdown()
    return code
