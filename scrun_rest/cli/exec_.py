"""`exec ID [ARGS...]`: another process in the running container.

Slurm's scrun cannot do this; we can, because the agent can start another
`srun --overlap` step that joins the container on its node. Our stdio goes
to the anchor over the control socket (SCM_RIGHTS) and the anchor relays it
like the container's own. What waits here (or in the --detach child whose
pid conmon watches) is a small front that forwards window sizes and
signals and exits with the process's status.
"""
import fcntl
import json
import os
import pty
import signal
import socket
import struct
import sys
import termios
import tty

from scrun_rest.anchor import control, spool as spoolmod
from scrun_rest.anchor.spool import write_pid_file
from scrun_rest.cli import args
from scrun_rest.cli.common import open_spool, release_caller_stdio
from scrun_rest.cli.create import _send_fd
from scrun_rest.errors import UserError
from scrun_rest.tunnel import wire

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
    spool = open_spool(globals_, parsed.positionals[0])
    if spoolmod.effective_status(spool.read_state()) != spoolmod.RUNNING:
        raise UserError("container %s is not running" % spool.id)
    process = _process(parsed)
    terminal = bool(process.get("terminal") or parsed.get("--tty"))
    process["terminal"] = terminal
    slave = None
    if terminal:
        slave = _terminal(parsed.get("--console-socket"))
        fds, window = [slave], _window(slave)
    else:
        fds, window = [0, 1, 2], None
    try:
        sock = control.connect(spool.socket_path)
        control.send_with_fds(sock, {"cmd": "exec", "process": process, "tty": terminal,
                                     "window": window}, fds)
        reply = wire.recv(sock)
    except (control.AnchorGone, ConnectionError) as exc:
        raise UserError("container %s is not running (%s)" % (spool.id, exc))
    if not reply or not reply.get("ok"):
        raise UserError((reply or {}).get("error") or "exec failed")
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


def _terminal(console_socket):
    master, slave = pty.openpty()
    tty.setraw(slave)
    if console_socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(console_socket)
            _send_fd(sock, master)
        except OSError as exc:
            raise UserError("cannot send the terminal to %s: %s" % (console_socket, exc.strerror))
        finally:
            sock.close()
            os.close(master)
        return slave
    # Attached without a console socket: bridge our own terminal.
    raise UserError("exec --tty needs --console-socket")


def _window(fd):
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return [rows, cols] if rows and cols else None


def _front(sock, slave):
    """Forward signals and window sizes; return the process's exit status."""
    def forward(signum, frame):
        try:
            wire.send(sock, {"t": "signal", "signal": signum})
        except OSError:
            pass

    for signum in FORWARDED:
        signal.signal(signum, forward)
    if slave is not None:
        def resize(signum, frame):
            window = _window(slave)
            if window:
                try:
                    wire.send(sock, {"t": "resize", "rows": window[0], "cols": window[1]})
                except OSError:
                    pass

        signal.signal(signal.SIGWINCH, resize)
        try:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        except OSError:
            pass
        # The caller sizes the terminal once it has our pid, which may be
        # before the terminal was ours to get SIGWINCH for.
        resize(None, None)
    while True:
        try:
            message = wire.recv(sock)
        except InterruptedError:
            continue
        except (OSError, wire.TunnelError):
            message = None
        if message is None:
            sys.stderr.write("scrun-rest: lost the container's anchor\n")
            return 255
        if "exit" in message:
            return int(message["exit"]) & 0xFF
