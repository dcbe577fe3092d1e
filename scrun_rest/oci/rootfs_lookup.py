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
