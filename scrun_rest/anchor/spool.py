"""Where a container's files live, and its state file.

Used by the light commands (state, kill, delete), so: stdlib only and cheap.
"""
import errno
import os
import stat

from scrun_rest import lean_json, owners
from scrun_rest.errors import UserError

STATE_FILE = "state.json"
SOCKET_FILE = "ctl.sock"
LOG_FILE = "anchor.log"

# The OCI state is derived from these; the anchor never moves backwards.
CREATING, CREATED, RUNNING, STOPPED = "creating", "created", "running", "stopped"
ORDER = (CREATING, CREATED, RUNNING, STOPPED)


def default_root():
    from scrun_rest.config import real_uid
    uid = real_uid()
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isdir(runtime_dir):
        return os.path.join(runtime_dir, "scrun-rest")
    user_run = "/run/user/%d" % uid
    if os.path.isdir(user_run) and os.access(user_run, os.W_OK):
        return os.path.join(user_run, "scrun-rest")
    import tempfile  # only here: `state` must stay light
    return os.path.join(tempfile.gettempdir(), "scrun-rest-%d" % uid)


def ensure_private_dir(path):
    """Create path as 0700, or take an existing dir of ours that only we can write.

    An existing dir is the caller's (docker's --root is root's 0700 or 0711
    dir, a user may pick one): it is never chmod'ed. Others' write access
    would let them plant or swap container dirs, so that is refused; read
    access shows them container ids only, as each container dir is 0700.
    """
    try:
        os.makedirs(path, mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UserError("cannot create %s: %s" % (path, exc.strerror))
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UserError("%s is not a directory" % path)
    if info.st_uid != os.getuid():
        raise UserError("%s belongs to %s, not to you; choose a --root of your own"
                        % (path, owners.describe(info.st_uid)))
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UserError("%s is writable by others (mode %03o); run: chmod 700 %s"
                        % (path, stat.S_IMODE(info.st_mode), path))


class Spool:
    """The spool directory of one container: ROOT/ID."""

    def __init__(self, root, container_id):
        self.root = root
        self.id = container_id
        self.dir = os.path.join(root, container_id)

    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def socket_path(self):
        return self.path(SOCKET_FILE)

    def exists(self):
        return os.path.isdir(self.dir)

    def create(self):
        ensure_private_dir(self.root)
        try:
            os.mkdir(self.dir, 0o700)
        except FileExistsError:
            raise UserError("container %s already exists" % self.id)
        except OSError as exc:
            raise UserError("cannot create %s: %s" % (self.dir, exc.strerror))

    def read_state(self):
        try:
            with open(self.path(STATE_FILE), encoding="utf-8") as handle:
                return lean_json.load(handle)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except PermissionError:
            # Another user's root: refuse, never guess a state.
            raise UserError("container %s: permission denied (it is not yours)" % self.id)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                return None  # no container can have such a name
            return {"id": self.id, "status": STOPPED, "pid": 0}
        except ValueError:
            # A state file cut short by a crash still means the container exists.
            return {"id": self.id, "status": STOPPED, "pid": 0}

    def write_state(self, state):
        write_private_file(self.path(STATE_FILE), lean_json.dumps(state))

    def remove(self):
        """Remove the container's dir and all in it, never following a link.

        ROOT/ID may itself be a link (or a file): only that entry goes,
        never what it points to.
        """
        try:
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            remove_tree_at(root_fd, self.id)
        finally:
            os.close(root_fd)


def remove_tree_at(parent_fd, name):
    """Remove name in the dir parent_fd; links inside are removed, not followed."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        _unlink_at(parent_fd, name)  # a file, socket or link: the entry itself
        return
    try:
        for entry in os.listdir(fd):
            remove_tree_at(fd, entry)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass


def _unlink_at(parent_fd, name):
    try:
        os.unlink(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass


def write_private_file(path, text, mode=0o600):
    """Write atomically so readers never see half a file."""
    import tempfile
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise


def process_alive(pid):
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid):
    """A killed anchor whose parent has not reaped it yet is dead all the same."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def effective_status(state):
    """The status to report: a dead anchor means the container stopped."""
    status = state.get("status", STOPPED)
    if status != STOPPED and not process_alive(state.get("pid")):
        return STOPPED
    return status


def write_pid_file(path, pid):
    """Atomically, with no trailing newline: docker's parser wants that."""
    if not path:
        return
    try:
        write_private_file(os.path.abspath(path), str(pid), mode=0o644)
    except OSError as exc:
        raise UserError("cannot write pid file %s: %s" % (path, exc.strerror))


def remove_quietly(path):
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass
