"""The terminal a container's caller gets (scrun_rest/terminal.py)."""
import os
import socket
import tempfile

from scrun_rest import fd_passing, terminal


def console_socket(path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    return listener


def test_the_pty_starts_with_the_size_docker_asks_for():
    # docker puts its terminal's size in process.consoleSize and resizes the
    # pty only after start: the container's first `stty size` saw 0x0.
    size = terminal.console_size({"terminal": True, "consoleSize": {"height": 33, "width": 99}})
    assert size == (33, 99)
    with tempfile.TemporaryDirectory() as base:
        listener = console_socket(os.path.join(base, "console"))
        slave = terminal.open_for(os.path.join(base, "console"), size)
        conn, _ = listener.accept()
        _, fds = fd_passing.receive(conn, 64, 1)
        try:
            assert terminal.window_size(slave) == (33, 99)
            assert terminal.window_size(fds[0]) == (33, 99)
        finally:
            for fd in [slave] + list(fds):
                os.close(fd)
            conn.close()
            listener.close()


def test_no_or_a_bad_console_size_leaves_the_pty_as_it_is():
    for process in (None, {}, {"consoleSize": {"height": 0, "width": 80}},
                    {"consoleSize": {"height": "24", "width": 80}},
                    {"consoleSize": {"height": 70000, "width": 80}}):
        assert terminal.console_size(process) is None
