"""Writing a file or directory as a tar stream (POSIX pax format) to an fd,
a socket or a pipe, by GNU tar where the host has it and by the stdlib
writer (python_tar) where not.

Names in the archive: a directory's members are "." and "./NAME..." (what
`tar -C DIR .` writes), so unpacking puts its content straight into the
destination; a single file (or symlink, or fifo) is one member,
"./BASENAME". Symlinks are archived as links, never followed, the top one
included: resolve `path` first to pack what it points at.

GNU tar writes straight into out_fd as its stdout, so the bytes never pass
through Python. Only user.* xattrs are sent (security.* labels and
capabilities mean nothing on the other host). Device nodes travel as
headers (no data); safe_extract skips and counts them on the side that
would have to create them. Sockets are left out.

A file that cannot be read makes pack raise PackError(path, why) naming
it. GNU tar goes on past such a file and still ends the archive properly,
so after a PackError the bytes already written must be discarded by the
receiver: tell it by other means than the stream.
Python 3.6+, stdlib only.
"""
import os
import shutil
import stat
import subprocess
import tempfile

from scrun_rest.bundle import python_tar, relpaths, tree_probe
from scrun_rest.bundle.errors import PackError, why

# GNU tar's record: 256 KiB writes (64 KiB ones halve the rate through a
# pipe); the last record is padded with zeros to this size.
BLOCKING_FACTOR = 512
# An archive of less than this goes in 10 KiB records: 256 KiB of padding
# after a 200-byte /etc/hosts would cross the tunnel for nothing.
BIG_ARCHIVE = 4 << 20
SMALL_BLOCKING_FACTOR = 20
_TAR = []  # [GnuTar or None] once looked up


class GnuTar:
    """The host's GNU tar and the options it takes."""

    def __init__(self, path, xattr_options):
        self.path = path
        self.xattr_options = xattr_options


def tar_program():
    """The host's GNU tar, or None (no tar, or another tar whose options and
    error messages we do not know): looked up once per process."""
    if not _TAR:
        _TAR.append(_find_gnu_tar())
    return _TAR[0]


def _find_gnu_tar():
    path = shutil.which("tar")
    if not path:
        return None
    try:
        version = _output([path, "--version"])
        if "GNU tar" not in version.splitlines()[0]:
            return None
        help_text = _output([path, "--help"])
    except (OSError, IndexError, subprocess.CalledProcessError):
        return None
    if "--xattrs-include" in help_text:
        return GnuTar(path, ["--xattrs", "--xattrs-include=user.*"])
    if "--xattrs" in help_text:
        return GnuTar(path, ["--xattrs"])  # extract keeps only user.*
    return GnuTar(path, [])


def _output(argv):
    return subprocess.check_output(argv, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=_c_locale(), universal_newlines=True)


def pack(path, out_fd):
    """Archive the file or directory at `path` to out_fd. Returns "tar" or
    "python", the writer that did it; PackError(path, why)."""
    try:
        st = os.lstat(path)
    except OSError as err:
        raise PackError(path, why(err))
    base, names, recursive = _members_of(path, st)
    size = tree_probe.size(path, BIG_ARCHIVE) if recursive else st.st_size
    return _write(base, names, recursive, out_fd, size)


def in_memory(path, limit):
    """The archive of the file or directory at `path` as bytes, written
    here by the stdlib writer (no tar to start), if it is at most `limit`
    bytes long; else, or if it cannot be read, None (its stream will say
    why)."""
    try:
        st = os.lstat(path)
        if tree_probe.size(path, limit) > limit:
            return None
        with tempfile.TemporaryFile() as out:
            python_tar.write(*_members_of(path, st), out.fileno())
            if out.tell() > limit:  # headers: many small entries
                return None
            out.seek(0)
            return out.read()
    except (OSError, PackError):
        return None


def _members_of(path, st):
    """(base, names, recursive) for pack's archive of `path`."""
    if stat.S_ISDIR(st.st_mode):
        return path, [b"."], True
    base, name = os.path.split(os.path.abspath(path))
    return base, [b"./" + relpaths.to_bytes(name)], False


def pack_paths(base, names, out_fd):
    """Archive the entries `names` (relative to `base`, as tree_changes
    gives them) to out_fd, each alone: a directory among them is archived
    without what it holds. Returns "tar" or "python"; PackError."""
    members = []
    for name in names:
        try:
            parts = relpaths.components(name)
        except ValueError as err:
            raise PackError(os.path.join(base, relpaths.to_str(relpaths.to_bytes(name))),
                            "refused: %s" % err)
        members.append(b"./" + b"/".join(parts) if parts else b".")
    return _write(base, members, False, out_fd, _listed_size(base, members))


def _listed_size(base, members):
    """The bytes of the listed regular files, counted up to BIG_ARCHIVE."""
    total = 0
    for member in members:
        try:
            st = os.lstat(os.path.join(relpaths.to_bytes(base), member))
        except OSError:
            continue  # tar names it
        total += st.st_size if stat.S_ISREG(st.st_mode) else 0
        if total >= BIG_ARCHIVE:
            break
    return total


def _write(base, names, recursive, out_fd, size):
    # Each name starts with "./" (or is "."): one beginning with "-" would
    # be an option to an old GNU tar reading --files-from.
    tar = tar_program()
    if tar is None:
        python_tar.write(base, names, recursive, out_fd)
        return "python"
    blocking = BLOCKING_FACTOR if size >= BIG_ARCHIVE else SMALL_BLOCKING_FACTOR
    _run_tar(tar, base, names, recursive, out_fd, blocking)
    return "tar"


def _run_tar(tar, base, names, recursive, out_fd, blocking):
    # argv[0] "tar": GNU tar starts its messages with it.
    argv = ["tar", "--create", "--file=-", "--directory=" + base, "--format=posix",
            "--numeric-owner", "--blocking-factor=%d" % blocking,
            # atime changes as tar reads; ctime cannot be set: both only
            # lengthen every header.
            "--pax-option=delete=atime,delete=ctime"] + tar.xattr_options
    if not recursive:
        argv.append("--no-recursion")
    argv += ["--null", "--no-unquote", "--files-from=-"]
    try:
        proc = subprocess.Popen(argv, executable=tar.path, stdin=subprocess.PIPE, stdout=out_fd,
                                stderr=subprocess.PIPE, env=_c_locale())
    except OSError as err:
        raise PackError(base, "cannot run %s: %s" % (tar.path, why(err)))
    _, errors = proc.communicate(b"\0".join(names) + b"\0")
    if proc.returncode != 0:
        raise _tar_error(base, proc.returncode, errors.decode("utf-8", "replace"))


def _tar_error(base, returncode, errors):
    """The PackError for what GNU tar printed: its first real complaint,
    "tar: ./NAME: Cannot open: Permission denied", with NAME made a path."""
    for line in errors.splitlines():
        if not line.startswith("tar: ") or line.startswith("tar: Exiting with failure"):
            continue
        text = line[len("tar: "):]
        head, _, reason = text.rpartition(": ")
        name, _, action = head.rpartition(": ")
        if not (action.startswith("Cannot ") or action.startswith("Read error")):
            name, _, reason = text.partition(": ")
            action = ""
        if not reason:
            return PackError(base, text)
        shown = reason[:1].lower() + reason[1:]
        if action:
            shown = action[:1].lower() + action[1:] + ": " + shown
        if name == "-":  # the archive itself: its reader went away
            return PackError(base, "writing the archive: " + shown)
        return PackError(os.path.normpath(os.path.join(base, name)), shown)
    if returncode < 0:
        return PackError(base, "tar was killed by signal %d (the reader went away?)" % -returncode)
    return PackError(base, "tar failed with exit status %d" % returncode)


def _c_locale():
    env = dict(os.environ)
    env["LC_ALL"] = "C"  # messages we can parse, names as raw bytes
    return env
