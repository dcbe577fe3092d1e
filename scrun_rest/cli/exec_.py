"""`exec ID [ARGS...]`: another process in the running container.

Slurm's scrun cannot do this; we can, because the agent can start another
`srun --overlap` step that joins the container on its node. Our stdio goes
to the anchor over the control socket (SCM_RIGHTS) and the anchor relays it
like the container's own. What waits here (or in the --detach child whose
pid conmon watches) is a small front that forwards window sizes and
signals and exits with the process's status.
"""
import json
import os
import signal
import sys

from scrun_rest import terminal
from scrun_rest.anchor import control
from scrun_rest.anchor.spool import write_pid_file
from scrun_rest.cli import args
from scrun_rest.cli.common import load_container
from scrun_rest.detach import release_caller_stdio
from scrun_rest.errors import UserError
from scrun_rest.tunnel import messages, wire

SPEC = args.Spec(
    values=("--pid-file", "--process", "--console-socket", "--preserve-fds", "--cwd",
            "--user", "--process-label", "--apparmor", "--cgroup", "--additional-gids"),
    flags=("--detach", "--tty", "--no-new-privs", "--ignore-paused", "--no-subreaper"),
    repeat=("--env", "--cap"),
    aliases={"-p": "--process", "-d": "--detach", "-t": "--tty", "-e": "--env",
             "-u": "--user", "-g": "--additional-gids", "-c": "--cap"},
    positionals=(1, 1), stop_at_positional=True,
)
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(argv, globals_):
    parsed = args.parse(argv, SPEC, "exec")
    container = load_container(globals_, parsed.positionals[0])
    container.require_running()
    process = _process(parsed)
    with_terminal = bool(process.get("terminal") or parsed.get("--tty"))
    process["terminal"] = with_terminal
    slave = None
    if with_terminal:
        console_socket = parsed.get("--console-socket")
        if not console_socket:
            raise UserError("exec --tty needs --console-socket")
        slave = terminal.open_for(console_socket, terminal.console_size(process))
        fds, window = [slave], terminal.window_size(slave)
    else:
        fds, window = [0, 1, 2], None
    sock = container.open_exec(process, fds, with_terminal, window)
    if parsed.get("--detach"):
        pid = os.fork()
        if pid:
            sock.close()
            write_pid_file(parsed.get("--pid-file"), pid)
            return 0
        release_caller_stdio()
        os._exit(_front(sock, slave))
    write_pid_file(parsed.get("--pid-file"), os.getpid())
    return _front(sock, slave)


def _process(parsed):
    path = parsed.get("--process")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                process = json.load(handle)
        except (OSError, ValueError) as exc:
            raise UserError("cannot read --process %s: %s" % (path, exc))
        if not isinstance(process, dict) or not isinstance(process.get("args"), list) \
                or not process["args"]:
            raise UserError("--process %s has no args" % path)
        return process
    command = parsed.positionals[1:]
    if not command:
        raise UserError("exec: no command given")
    process = {"args": command, "cwd": parsed.get("--cwd") or "/",
               "env": [DEFAULT_PATH] + [e for e in parsed.get("--env", []) if e is not True]}
    user = parsed.get("--user")
    if user:
        uid, _, gid = user.partition(":")
        try:
            process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise UserError("exec: --user takes UID[:GID], got %s" % user[:40])
    return process


def _front(sock, slave):
    """Forward signals and window sizes; return the process's exit status."""
    def forward(signum, frame):
        try:
            control.send(sock, "signal", signal=signum)
        except OSError:
            pass

    for signum in FORWARDED:
        signal.signal(signum, forward)
    if slave is not None:
        def resize(signum, frame):
            window = terminal.window_size(slave)
            if window:
                try:
                    control.send(sock, "resize", rows=window[0], cols=window[1])
                except OSError:
                    pass

        signal.signal(signal.SIGWINCH, resize)
        try:
            os.setsid()
            terminal.make_controlling(slave)
        except OSError:
            pass
        # The caller sizes the terminal once it has our pid, which may be
        # before the terminal was ours to get SIGWINCH for.
        resize(None, None)
    while True:
        try:
            message = control.receive(sock)
        except InterruptedError:
            continue
        except (OSError, wire.TunnelError, messages.ProtocolError):
            message = None
        if message is None:
            sys.stderr.write("scrun-rest: lost the container's anchor\n")
            return 255
        if message["t"] == "exit":
            return message["status"] & 0xFF
