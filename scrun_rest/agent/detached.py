"""A container started the create/start way (oci.conf RunTimeCreate, RunTimeStart).

`runc run` copies the container's stdio through pipes of its own, 32 KiB a
time: on a 1 GB stream that copy cost as much CPU as everything else between
the container and conmon together. After `runc create` the container holds
the fds we gave it and runc is gone. The task shim becomes a child
subreaper, so the container's process, orphaned when `runc create` exits,
is reparented to it and is waited for like a child. Python 3.6+, stdlib.
"""
import os
import signal
import subprocess

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    try:
        import ctypes
    except ImportError:  # a python3 built without it: say what to do
        raise OSError("this python3 has no ctypes to wait for a create/start "
                      "container; configure RunTimeRun alone in oci.conf")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, "prctl(PR_SET_CHILD_SUBREAPER): %s" % os.strerror(error))


class Container:
    """What task.py needs of a Popen, for a process that is not our child
    by birth. Only wait() reaps, so a poll() from another thread cannot
    steal the status."""

    def __init__(self, pid, returncode=None):
        self.pid = pid
        self.returncode = returncode

    def poll(self):
        return self.returncode

    def wait(self):
        while self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                # Someone else reaped it: the status is lost.
                self.returncode = 255
                break
            self.returncode = _returncode(status)
        return self.returncode

    def send_signal(self, signum):
        if self.returncode is None:
            os.kill(self.pid, signum)


def _returncode(status):
    """Like Popen.returncode: -N for death by signal N."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def create_and_start(create_argv, start_command, **popen_args):
    """Run the create command with popen_args (stdio, cwd, session), then
    start; a Container for the process, or one that already ended with the
    failing command's status."""
    become_subreaper()
    created = subprocess.Popen(create_argv, **popen_args)
    code = created.wait()
    if code != 0:
        return Container(created.pid, code)
    pid = _only_child()
    if pid is None:
        raise OSError("the runtime's create left no container process behind")
    started = subprocess.call(["/bin/sh", "-c", "exec " + start_command],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=popen_args.get("stderr"), cwd=popen_args.get("cwd"))
    if started != 0:
        container = Container(pid)
        container.send_signal(signal.SIGKILL)
        container.wait()
        return Container(pid, started)
    return Container(pid)


def _only_child():
    """The pid of our one child, the container's process after create."""
    children = set()
    try:
        for task in os.listdir("/proc/self/task"):
            with open("/proc/self/task/%s/children" % task) as handle:
                children.update(int(pid) for pid in handle.read().split())
    except OSError:
        children = _children_by_scan()
    return children.pop() if len(children) == 1 else None


def _children_by_scan():
    """Without /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN): read every ppid."""
    me, found = os.getpid(), set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            found.add(int(name))
    return found
