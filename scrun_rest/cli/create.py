"""`create`: check everything, fork the anchor, return once the job runs.

Everything that can be refused is refused here, before a job exists: the
id, the bundle, config.json, the settings, the token. Then the anchor is
forked; it submits the job and tells us over a pipe whether the container
is ready. A job that pends longer than CreateTimeout does not hold create
up (podman allows 240 s): create returns and `start` waits for the job.
"""
import os
import pty
import socket
import sys
import tty

from scrun_rest import job_options
from scrun_rest.anchor.setup import AnchorSetup
from scrun_rest.anchor.spool import Spool, ensure_private_dir
from scrun_rest.cli import args
from scrun_rest.errors import UserError
from scrun_rest.oci import validate
from scrun_rest.oci.state_doc import check_container_id

SPEC = args.Spec(
    values=("--bundle", "--console-socket", "--pid-file", "--preserve-fds"),
    flags=("--no-pivot", "--no-new-keyring"),
    aliases={"-b": "--bundle"},
)


class CreateFailed(UserError):
    def __init__(self, text, exit_code=1):
        super().__init__(text)
        self.exit_code = exit_code


def run(argv, globals_):
    parsed = args.parse(argv, SPEC, "create")
    container_id = check_container_id(parsed.positionals[0])
    bundle = os.path.abspath(parsed.get("--bundle") or os.getcwd())
    config_doc = validate.load_config(bundle)
    validate.validate_config(config_doc)
    setup = prepare(container_id, bundle, config_doc, parsed, globals_)
    return fork_anchor(setup, parsed.get("--console-socket"))


def prepare(container_id, bundle, config_doc, parsed, globals_):
    from scrun_rest.session import Session
    from scrun_rest.agent.rootfs_lookup import check_executable

    process = config_doc.get("process") or {}
    values = job_options.collect(os.environ, process.get("env"))
    options = job_options.parse(values)
    log_settings = globals_.log_settings(options.settings)
    log_settings.apply()  # Lua logs while loading; never onto conmon's stderr
    session = Session.load()
    setup = AnchorSetup(
        container_id=container_id, bundle=bundle, config_doc=config_doc,
        config_file=os.path.join(bundle, "config.json"),
        oci_version=str(config_doc.get("ociVersion") or "1.0.2"),
        annotations=config_doc.get("annotations") or {},
        root=globals_.resolved_root(), pid_file=_absolute(parsed.get("--pid-file")),
        terminal=bool(process.get("terminal")), step_args=options.step_args,
        ntasks=options.ntasks, labelio=options.labelio, log_settings=log_settings,
        settings=session.config.oci_settings(), tunnel_host=session.tunnel_host(),
        port_range=session.config.port_range(),
        tunnel_tls=session.config.get_bool("TunnelTls"),
        heartbeat=session.config.get_int("TunnelHeartbeat", minimum=1),
        create_timeout=session.config.get_int("CreateTimeout", minimum=0),
        agent_python=session.config.get("AgentPython"),
    )
    setup.submission_bundle = bundle
    setup.submission_config_file = setup.config_file
    setup.submission_rootfs = setup.rootfs
    problem = check_executable(setup.rootfs, process)
    if problem:
        raise CreateFailed(problem[1], problem[0])
    setup.user_name = session.user()
    setup.make_rest_client = session.rest_client
    setup.spool = Spool(setup.root, container_id)
    setup.staging = session.load_staging(setup)
    setup.job_request = session.job_request(options, setup)
    return setup


def _absolute(path):
    return os.path.abspath(path) if path else None


def fork_anchor(setup, console_socket):
    ensure_private_dir(setup.root)
    setup.spool.create()
    slave = None
    try:
        if setup.terminal:
            if not console_socket:
                raise UserError("config.json asks for a terminal but no --console-socket was given")
            slave = _open_terminal(console_socket)
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
    return _await_anchor(read_end, setup)


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


def _open_terminal(console_socket):
    """Send the pty master to the caller; the anchor keeps the slave."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(console_socket)
        socket.send_fds(sock, [b"pty-master"], [master]) if hasattr(socket, "send_fds") \
            else _send_fd(sock, master)
        sock.close()
    except OSError as exc:
        os.close(slave)
        raise UserError("cannot send the terminal to %s: %s" % (console_socket, exc.strerror))
    finally:
        os.close(master)
    return slave


def _send_fd(sock, fd):
    import array
    sock.sendmsg([b"pty-master"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    array.array("i", [fd]).tobytes())])


def _become_anchor(setup):
    """In the forked child: detach from the caller's session and run."""
    code = 1
    try:
        os.setsid()
        _name_process(b"scrun-anchor")
        if setup.terminal:
            import fcntl
            import termios
            fcntl.ioctl(setup.stdio["tty"], termios.TIOCSCTTY, 0)
            # The terminal is the container's stdio; docker's shim waits
            # for EOF on the pipes it gave create.
            from scrun_rest.cli.common import release_caller_stdio
            release_caller_stdio()
        from scrun_rest.anchor.daemon import run_anchor
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


def _await_anchor(read_end, setup):
    """Block until the anchor says created, pending, or why it failed."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    line = data.decode("utf-8", "replace").strip()
    if line.startswith("ok"):
        return 0
    if line.startswith("error "):
        _, code, text = (line.split(" ", 2) + ["", ""])[:3]
        raise CreateFailed(text or "create failed", _failure_code(code))
    # The anchor died without a word: say what its log says, leave nothing.
    last = _last_line(setup.log_settings.log_file or setup.spool.path("anchor.log"))
    try:
        setup.spool.remove()
    except OSError:
        pass
    raise CreateFailed("the anchor exited before the container was created: %s"
                       % (last or "no log"))


def _last_line(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines else None


def _failure_code(code):
    """Exit codes podman maps: 127 not found, 126 cannot execute, else 1."""
    try:
        value = int(code)
    except ValueError:
        return 1
    return value if value in (126, 127) else 1
