"""The runtime root (%R): where rootless runc keeps a container's state on the node.

/run/user/UID is that dir where the user has a login session, but slurmd
does not make it: on a node without one, runc's mkdir there fails with
"permission denied". The task then gives its container a private dir
inside its own scratch dir (leftovers.claim: 0700, a random name), which
goes when that dir goes, at the task's end or in the sweep after a killed
task. No dir is shared between tasks, so none needs a lock, and no name
in /tmp can be taken first by another user. An exec joins a container
under the root the container's task chose; the anchor passes it on.
Python 3.6+, stdlib only.
"""
import os
import stat

USER_RUN = "/run/user/%d"
PRIVATE = "runtime-root"


def choose(workdir, uid=None):
    """The runtime root for a new container of the task that owns workdir."""
    uid = os.getuid() if uid is None else uid
    user_run = USER_RUN % uid
    if usable(user_run, uid):
        return user_run
    private = os.path.join(workdir, PRIVATE)
    try:
        os.mkdir(private, 0o700)
    except FileExistsError:
        # A second plan of the same task: the dir it made before.
        if not usable(private, uid):
            raise
    return private


def usable(path, uid):
    """A real dir (a link is not followed) of uid's own, that uid can
    write and nobody else can: runc trusts the state it finds there."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == uid
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            and os.access(path, os.W_OK | os.X_OK))
