"""A pipe's buffer widened to 1 MiB, the most an unprivileged process may
ask for: one read or write then moves a megabyte, not 64 KiB, and a pump
wakes a sixteenth as often. Shared by the anchor, the agent and the bundle
code. Python 3.6+, stdlib only.
"""
import os
import stat

SIZE = 1 << 20
# fcntl.F_SETPIPE_SZ exists only from Python 3.10.
F_SETPIPE_SZ = 1031


def widen(fd, size=SIZE):
    """Widen fd's buffer if fd is a pipe; leave anything else alone."""
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            import fcntl  # on use: the light commands never need it
            fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except OSError:
        pass  # a pipe-max-size below 1 MiB: the pipe keeps working as it is
