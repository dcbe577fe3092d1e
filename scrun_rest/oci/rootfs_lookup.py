"""Find the container's program inside its rootfs before starting it.

runc reports a missing program as a generic failure; podman users expect
exit 127 (not found) or 126 (not executable) with runc's own wording, and
Slurm's scrun even resolves the program on the host. `create` checks on
the submit host, each task on its node (shipped to the agent: stdlib only,
Python 3.6+).
"""
import os
import posixpath
import stat

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_LINKS = 40


def _resolve(rootfs, path):
    """Follow symlinks of `path` as the container would see them."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = "/"
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = posixpath.dirname(current) or "/"
            continue
        candidate = posixpath.join(current, part)
        host = os.path.join(rootfs, candidate.lstrip("/"))
        try:
            info = os.lstat(host)
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode):
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(host)
            if target.startswith("/"):
                current = "/"
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        current = candidate
    return os.path.join(rootfs, current.lstrip("/"))


def _env_path(process):
    for entry in process.get("env") or []:
        if entry.startswith("PATH="):
            return entry[5:]
    return DEFAULT_PATH


def missing_rootfs(rootfs, where):
    """None when rootfs is a dir with something in it, else (126, why).

    A node that does not see the submit host's container storage at the same
    path finds no rootfs there, or an empty dir where podman mounted its
    overlay (that mount exists only in podman's own mount namespace); the
    program would then be "not found", which blames the wrong thing."""
    try:
        state = "is empty" if not os.listdir(rootfs) else None
    except (FileNotFoundError, NotADirectoryError):
        state = "does not exist"
    except OSError as exc:
        state = "cannot be read (%s)" % (exc.strerror or exc)
    if state is None:
        return None
    return 126, ("the container's root filesystem %s %s on %s: it does not see the "
                 "submit host's container storage at that path (podman's overlay "
                 "storage exists only inside podman's own mount namespace): keep images "
                 "where the nodes see them at the same path (vfs storage on a shared "
                 "filesystem), or stage the bundle with scrun.lua" % (rootfs, state, where))


def check_executable(rootfs, process):
    """None when the program exists, else (exit status, runc-style message)."""
    args = process.get("args") or []
    if not args or not rootfs or not os.path.isdir(rootfs):
        return None
    program = args[0]
    if "/" in program:
        candidates = [posixpath.join(process.get("cwd") or "/", program)]
    else:
        candidates = [posixpath.join(d or ".", program) for d in _env_path(process).split(":")]
    for candidate in candidates:
        host = _resolve(rootfs, candidate)
        if host is None:
            continue
        try:
            info = os.stat(host)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) or not info.st_mode & 0o111:
            if "/" in program:
                return 126, 'exec: "%s": permission denied' % program
            continue
        return None
    if "/" in program:
        return 127, 'exec: "%s": stat %s: no such file or directory' % (program, program)
    return 127, 'exec: "%s": executable file not found in $PATH' % program
