"""A task's scratch dir, marked as its own, and the sweep of dirs whose task died.

Slurm SIGKILLs a step's tasks KillWait seconds after its SIGTERM, and a node
can lose a task in other ways. A task killed before its cleanup leaves its
runtime container and its scratch dir. Each task holds an flock on a file in
its dir for as long as it lives; the kernel drops the lock however the task
dies, so the next task of the same user on the node knows for certain which
dirs belong to nobody, and removes them with their containers.
Python 3.6+, stdlib only.
"""
import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
import time

PREFIX = "scrun-rest."
LOCK = "owner.lock"
CONTAINER = "container.json"
# A dir without a lock file is either mid-claim (microseconds) or left by a
# task killed in that window; only the latter gets this old.
UNCLAIMED_GRACE = 600


def claim(base=None):
    """A new private scratch dir and the open, locked file that marks it
    as ours: (path, fd). Keep the fd open for the task's whole life."""
    workdir = tempfile.mkdtemp(prefix=PREFIX, dir=base)
    # Locked before it has its final name, so that a sweeper never sees an
    # unlocked lock file of a live task.
    pending = os.path.join(workdir, LOCK + ".new")
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(pending, os.path.join(workdir, LOCK))
    return workdir, fd


def record_container(workdir, values):
    """Note the pattern values of the container this dir's task runs, so a
    sweep can remove the container with the node's RunTimeDelete."""
    path = os.path.join(workdir, CONTAINER)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)


def sweep(remove_container, base=None, now=None):
    """Remove the dirs of this user's dead tasks under `base` (the temp dir
    by default); remove_container(values) is called first for each that
    ran a container. Returns the paths removed."""
    base = base or tempfile.gettempdir()
    now = time.time() if now is None else now
    try:
        names = os.listdir(base)
    except OSError:
        return []
    removed = []
    for name in names:
        if name.startswith(PREFIX) and _sweep_one(os.path.join(base, name),
                                                  remove_container, now):
            removed.append(os.path.join(base, name))
    return removed


def _sweep_one(path, remove_container, now):
    try:
        info = os.lstat(path)
    except OSError:
        return False
    # Only our own real dirs: never another user's, never through a link.
    if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
        return False
    try:
        fd = os.open(os.path.join(path, LOCK), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT and now - info.st_mtime > UNCLAIMED_GRACE:
            remove_tree(path)
            return True
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its task is alive
        values = _read_container(path)
        if values is not None:
            remove_container(values)
        remove_tree(path)
        return True
    finally:
        os.close(fd)


def remove_tree(path):
    """Remove a scratch dir whole, also the read-only dirs an unpacked
    image brings (a dr-xr-xr-x /proc): their owner may open them up."""
    def open_up_and_retry(function, failed, exc_info):
        parent = os.path.dirname(failed)
        try:
            if not os.path.islink(parent):
                os.chmod(parent, stat.S_IRWXU)
            if function is not os.rmdir and os.path.isdir(failed) \
                    and not os.path.islink(failed):
                os.chmod(failed, stat.S_IRWXU)
                shutil.rmtree(failed, onerror=_ignore)
            else:
                function(failed)
        except OSError:
            pass
    shutil.rmtree(path, onerror=open_up_and_retry)


def _ignore(function, failed, exc_info):
    pass


def _read_container(path):
    try:
        fd = os.open(os.path.join(path, CONTAINER), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as handle:
            values = json.load(handle)
    except (OSError, ValueError):
        return None
    if isinstance(values, dict) and all(isinstance(v, str) for v in values.values()):
        return values
    return None
