"""Walking and removing under a directory fd without ever following a
symlink, whatever the tree holds or another process swaps in.

Every step opens one component relative to the fd of its parent with
O_NOFOLLOW|O_DIRECTORY, so a symlink (or a file) where a directory is
expected stops the walk instead of leading elsewhere.
Python 3.6+, stdlib only.
"""
import errno
import os
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Open fds a DirChain keeps for reuse; deeper levels are opened for one
# call, so that a hostile "a/a/a/..." cannot use up the fd limit.
KEPT_LEVELS = 64


class NotADirectory(OSError):
    """A walk met a symlink or a non-directory: `at` is the list of
    components up to it, `is_link` tells which. An OSError (ENOTDIR), so
    that code that handles OSError handles it too."""

    def __init__(self, at, is_link):
        OSError.__init__(self, errno.ENOTDIR, "a symlink" if is_link else "not a directory")
        self.at = at
        self.is_link = is_link


def open_child_dir(parent_fd, name, create=False):
    """The fd of directory `name` in parent_fd, made (0777 less umask) when
    missing and `create`; NotADirectory([name], ...) for anything else there."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
    except NotADirectoryError:
        raise NotADirectory([name], is_symlink(parent_fd, name))
    try:
        os.mkdir(name, 0o777, dir_fd=parent_fd)
    except FileExistsError:
        pass  # made since we looked: what it is, the open below tells
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except NotADirectoryError:
        raise NotADirectory([name], is_symlink(parent_fd, name))


def is_symlink(parent_fd, name):
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=parent_fd).st_mode)
    except OSError:
        return False


class DirChain:
    """The open fds of one path's directories under a root fd, kept from
    call to call: archives and change lists come in walk order, so the next
    entry's parent is mostly this one or a near relative."""

    def __init__(self, root_fd, create=False):
        self.root_fd = root_fd
        self.create = create
        self._names = []
        self._fds = []
        self._transient = []

    def open(self, parts):
        """The fd of the directory at `parts` (a list of bytes components),
        valid until the next call; NotADirectory or FileNotFoundError."""
        self._close_transient()
        kept = 0
        limit = min(len(self._names), len(parts))
        while kept < limit and self._names[kept] == parts[kept]:
            kept += 1
        self._truncate(kept)
        fd = self._fds[-1] if self._fds else self.root_fd
        for depth in range(kept, len(parts)):
            try:
                fd = open_child_dir(fd, parts[depth], self.create)
            except NotADirectory as err:
                raise NotADirectory(list(parts[:depth + 1]), err.is_link)
            if depth < KEPT_LEVELS:
                self._names.append(parts[depth])
                self._fds.append(fd)
            else:
                self._close_transient()  # the level above: done with it
                self._transient.append(fd)
        return fd

    def forget(self, parts):
        """The entry at `parts` is being replaced: drop it (and what lies
        below it) from the chain."""
        depth = len(parts)
        if depth and self._names[:depth] == list(parts):
            self._close_transient()
            self._truncate(depth - 1)

    def close(self):
        self._close_transient()
        self._truncate(0)

    def _truncate(self, depth):
        while len(self._fds) > depth:
            os.close(self._fds.pop())
            self._names.pop()

    def _close_transient(self):
        while self._transient:
            os.close(self._transient.pop())


def remove_entry(parent_fd, name):
    """Remove `name` from parent_fd, a directory with all it holds; False
    when there was nothing there."""
    try:
        if _unlink_unless_dir(parent_fd, name):
            return True
    except FileNotFoundError:
        return False
    remove_tree(parent_fd, name)
    return True


def remove_tree(parent_fd, name):
    """Remove directory `name` of parent_fd and everything under it, going
    down by fds only: a symlink inside is removed, never followed."""
    # Frames of [dir fd, its name in the frame before, names left to
    # remove]: a loop, not recursion, so depth costs fds, not Python's stack.
    stack = [[_open_for_removal(parent_fd, name), name, None]]
    try:
        while stack:
            frame = stack[-1]
            if frame[2] is None:
                frame[2] = os.listdir(frame[0])
            if frame[2]:
                child = frame[2].pop()
                try:
                    if not _unlink_unless_dir(frame[0], child):
                        stack.append([_open_for_removal(frame[0], child), child, None])
                except FileNotFoundError:
                    pass
                continue
            stack.pop()
            os.close(frame[0])
            os.rmdir(frame[1], dir_fd=stack[-1][0] if stack else parent_fd)
    finally:
        for frame in stack:
            os.close(frame[0])


def _unlink_unless_dir(parent_fd, name):
    """Unlink a non-directory: True; False for a directory."""
    try:
        os.unlink(name, dir_fd=parent_fd)
        return True
    except OSError as err:
        # Linux says EISDIR; POSIX allows EPERM for a directory.
        if err.errno not in (errno.EISDIR, errno.EPERM):
            raise
        if err.errno == errno.EPERM and not stat.S_ISDIR(
                os.lstat(name, dir_fd=parent_fd).st_mode):
            raise
        return False


def _open_for_removal(parent_fd, name):
    fd = open_child_dir(parent_fd, name)
    try:
        # A directory the container made read-only (a Go module cache
        # does) cannot be emptied until its owner may write it again.
        mode = os.fstat(fd).st_mode
        if mode & 0o700 != 0o700:
            os.fchmod(fd, stat.S_IMODE(mode) | 0o700)
    except OSError:
        pass  # not ours: the unlinks in it will say so
    return fd
