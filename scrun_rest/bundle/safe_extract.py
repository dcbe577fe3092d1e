"""Unpacking a tar stream into a directory such that nothing outside it is
ever created, changed or followed, whatever the archive says.

The rules, each against an attack or a surprise:
- A member name that is absolute or has a ".." component is refused.
- Every member's parent is reached component by component from a dir fd of
  `dest` with O_NOFOLLOW: a symlink on the way is an error, whether the
  archive made it or it was there before. A symlink where the archive puts
  a directory member is replaced by the directory.
- Symlinks are made as the archive gives them; we never follow one, so
  their targets need no check.
- Hard links go only to an entry already inside dest, found by the same
  walk, and never follow a symlink they point at.
- Content is only ever written into a new file (O_EXCL|O_NOFOLLOW) made
  after removing what was at that name, so nothing existing (a symlink, a
  hard link to a file elsewhere) is written through. Overwriting a real
  directory's files (write-back) therefore gives them new inodes.
- Ownership is never set: the extracting user owns everything. Device
  nodes are skipped and counted (a rootless node cannot make them, and the
  submit host must not get them). Only user.* xattrs are set (best effort):
  security.* and trusted.* mean nothing on the other host or need root.
- Setuid and setgid bits are kept on the node, where the scratch is the
  user's own (mode 0700) and a setuid file only ever runs as its owner, the
  user; with on_host=True they are stripped from files, as a container must
  not leave a setuid-to-the-user program in a directory others may reach.
- Directory modes and mtimes are set at the end, deepest first, so that a
  read-only directory still takes its members and their arrival does not
  change its mtime.

GNU tar is not used even where the node has it: it opens each member by
its whole relative name, which follows a symlink already in the destination
(a user's volume may hold one; verified with GNU tar 1.34), and its delayed
symlinks guard only links the same archive makes. This reader copies
content in 1 MiB writes, which is as fast as the disks it writes to.
Python 3.6+, stdlib only.
"""
import errno
import os
import stat
import tarfile

from scrun_rest.bundle import relpaths, tar_input
from scrun_rest.bundle.dirfd_walk import DirChain, NotADirectory, remove_entry
from scrun_rest.bundle.errors import ExtractError, why

FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
FIFO_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
XATTR_PREFIX = "SCHILY.xattr."
SETID = stat.S_ISUID | stat.S_ISGID


def extract(source, dest, on_host=False):
    """Unpack the tar stream `source` (an fd or a binary file object) into
    the existing directory `dest`. The stream is read in 1 MiB pieces to
    its end: the archive must be all it carries (past the end-of-archive
    marker, the writer's record padding is read and dropped, so that a tar
    writing into a pipe exits 0). Returns {"bytes": file content written,
    "entries": members unpacked, "devices": device members skipped}.
    ExtractError(path, why) for a refused member, a write that failed (why
    "no space left", "disk quota exceeded", ...) or a stream that ended
    inside the archive ("the archive ended early")."""
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        job = _Extraction(root_fd, dest, on_host)
        try:
            job.run(tar_input.StreamInput(source))
        finally:
            job.close()
        return job.stats
    finally:
        os.close(root_fd)


def extract_members(members, dest):
    """Create the entries `members` yields, (tarfile.TarInfo, content) with
    content.copy_to(fd, size) for a regular file, in the existing directory
    `dest`, by the same rules as extract: a tree built from parts held on
    this host (the node cache) without a tar stream in between. Returns
    extract's stats; ExtractError."""
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        job = _Extraction(root_fd, dest, False)
        try:
            for member, content in members:
                job._member(member, content)
            job._finish_dirs()
        finally:
            job.close()
        return job.stats
    finally:
        os.close(root_fd)


class _Extraction:
    def __init__(self, root_fd, dest, on_host):
        self.dest = dest
        self.mode_mask = 0o7777 & ~SETID if on_host else 0o7777
        self.parents = DirChain(root_fd, create=True)
        self.link_parents = DirChain(root_fd)  # a second chain: targets lie elsewhere
        self.dirs = []  # (parts, mode, mtime_ns), applied at the end
        self.stats = {"bytes": 0, "entries": 0, "devices": 0}

    def close(self):
        self.parents.close()
        self.link_parents.close()

    def run(self, stream):
        try:
            archive = tarfile.TarFile(fileobj=stream, mode="r", encoding="utf-8",
                                      errors="surrogateescape")
            while True:
                member = archive.next()
                if member is None:
                    break
                del archive.members[:]  # tarfile keeps every header otherwise
                self._member(member, stream)
            if not stream.last_block_was_zero:
                # tarfile takes a stream cut at a header, or a damaged
                # header, for the end: we do not.
                if stream.ended:
                    raise tar_input.EndedEarly()
                raise tar_input.Unusable("a damaged header at byte %d" % archive.offset)
            self._finish_dirs()
            stream.drain()
        except tar_input.EndedEarly:
            raise ExtractError(self.dest, "the archive ended early")
        except tar_input.Unusable as err:
            raise ExtractError(self.dest, "not a usable tar archive (%s)" % err)
        except tarfile.ReadError as err:
            if stream.ended:
                raise ExtractError(self.dest, "the archive ended early")
            raise ExtractError(self.dest, "not a usable tar archive (%s)" % err)

    def _member(self, member, stream):
        try:
            parts = relpaths.components(member.name)
        except ValueError as err:
            raise ExtractError(member.name, "refused: %s in the archive" % err)
        path = os.path.join(self.dest, relpaths.join(parts)) if parts else self.dest
        if member.ischr() or member.isblk():
            self.stats["devices"] += 1
            return
        if not parts and not member.isdir():
            raise ExtractError(path, "refused: a member that is not a directory "
                                     "names the destination")
        try:
            if member.isdir():
                self._directory(parts, member)
            elif member.issym():
                self._symlink(parts, member)
            elif member.islnk():
                self._hard_link(parts, member, path)
            elif member.isfifo():
                self._fifo(parts, member)
            elif member.isreg() and not member.issparse():
                self._file(parts, member, stream)
            else:
                raise ExtractError(path, "a member of a type we do not unpack (%r)" % member.type)
        except tar_input.EndedEarly:
            raise ExtractError(path, "the archive ended early")
        except NotADirectory as err:
            kind = "a symlink" if err.is_link else "a non-directory"
            raise ExtractError(path, "refused: %s is in the way at %s"
                               % (kind, relpaths.join(err.at)))
        except OSError as err:
            raise ExtractError(path, why(err))
        self.stats["entries"] += 1

    def _parent(self, parts):
        return self.parents.open(parts[:-1])

    def _create(self, parts, make):
        """make(parent_fd, name), once more after clearing the name if
        something is there."""
        parent = self._parent(parts)
        try:
            return make(parent, parts[-1])
        except FileExistsError:
            self._clear(parent, parts)
            return make(parent, parts[-1])

    def _clear(self, parent, parts):
        """Remove what is at `parts` (a directory with its tree)."""
        self.parents.forget(parts)
        self.link_parents.forget(parts)
        remove_entry(parent, parts[-1])

    def _file(self, parts, member, stream):
        fd = self._create(parts, _new_file)
        try:
            stream.copy_to(fd, member.size)
            self.stats["bytes"] += member.size
            self._finish_inode(fd, member)
        finally:
            os.close(fd)

    def _fifo(self, parts, member):
        def make(parent, name):
            os.mkfifo(name, 0o600, dir_fd=parent)
            # Opened (without blocking) to set its mode and times by fd:
            # by name they would follow a symlink swapped in meanwhile.
            return os.open(name, FIFO_FLAGS, dir_fd=parent)
        fd = self._create(parts, make)
        try:
            self._finish_inode(fd, member)
        finally:
            os.close(fd)

    def _finish_inode(self, fd, member):
        _set_xattrs(fd, member)
        os.fchmod(fd, member.mode & self.mode_mask)
        mtime = _mtime_ns(member)
        os.utime(fd, ns=(mtime, mtime))

    def _symlink(self, parts, member):
        target = relpaths.to_bytes(member.linkname)
        self._create(parts, lambda parent, name: os.symlink(target, name, dir_fd=parent))
        mtime = _mtime_ns(member)
        os.utime(parts[-1], ns=(mtime, mtime), dir_fd=self._parent(parts), follow_symlinks=False)

    def _hard_link(self, parts, member, path):
        try:
            target = relpaths.components(member.linkname)
        except ValueError as err:
            raise ExtractError(path, "refused: a hard link to %r: %s" % (member.linkname, err))
        if not target:
            raise ExtractError(path, "refused: a hard link to the destination itself")
        try:
            source_dir = self.link_parents.open(target[:-1])
        except (FileNotFoundError, NotADirectory):
            raise ExtractError(path, "a hard link to %s, which is not in the destination"
                               % relpaths.join(target))
        parent = self._parent(parts)

        def link():
            os.link(target[-1], parts[-1], src_dir_fd=source_dir, dst_dir_fd=parent,
                    follow_symlinks=False)
        try:
            link()
        except FileNotFoundError:
            raise ExtractError(path, "a hard link to %s, which is not in the destination"
                               % relpaths.join(target))
        except FileExistsError:
            there = os.lstat(parts[-1], dir_fd=parent)
            source = os.lstat(target[-1], dir_fd=source_dir)
            if (there.st_dev, there.st_ino) == (source.st_dev, source.st_ino):
                return  # already that file
            self._clear(parent, parts)
            link()

    def _directory(self, parts, member):
        if parts:
            self._create(parts, _make_or_reuse_dir)
        fd = self.parents.open(parts)
        mode = os.fstat(fd).st_mode
        if mode & 0o700 != 0o700:
            os.fchmod(fd, stat.S_IMODE(mode) | 0o700)
        _set_xattrs(fd, member)
        self.dirs.append((parts, member.mode & 0o7777, _mtime_ns(member)))

    def _finish_dirs(self):
        # Deepest first: setting a child's times or mode touches only the
        # child; a parent made read-only first would still allow it.
        chain = DirChain(self.parents.root_fd)
        try:
            for parts, mode, mtime in sorted(self.dirs, key=lambda d: -len(d[0])):
                path = os.path.join(self.dest, relpaths.join(parts))
                try:
                    fd = chain.open(parts)
                except (FileNotFoundError, NotADirectory):
                    continue  # replaced by a later member: it has its own metadata
                except OSError as err:
                    raise ExtractError(path, why(err))
                try:
                    if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
                        os.fchmod(fd, mode)
                    os.utime(fd, ns=(mtime, mtime))
                except PermissionError:
                    # Write-back through a shared directory someone else
                    # owns: its content arrived, its mode and times stay.
                    continue
                except OSError as err:
                    raise ExtractError(path, why(err))
        finally:
            chain.close()


def _new_file(parent, name):
    return os.open(name, FILE_FLAGS, 0o600, dir_fd=parent)


def _make_or_reuse_dir(parent, name):
    """mkdir, 0700 until the end so that our own members get in; a directory
    already there is reused, anything else is FileExistsError (replaced)."""
    try:
        os.mkdir(name, 0o700, dir_fd=parent)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(name, dir_fd=parent).st_mode):
            raise


def _mtime_ns(member):
    # pax keeps nanoseconds as text; tarfile's float would lose them.
    text = member.pax_headers.get("mtime")
    if text:
        try:
            seconds, _, fraction = text.partition(".")
            fraction = (fraction + "000000000")[:9]
            sign = -1 if seconds.startswith("-") else 1
            return int(seconds) * 10 ** 9 + sign * int(fraction)
        except ValueError:
            pass
    return int(member.mtime) * 10 ** 9


def _set_xattrs(fd, member):
    for key, value in member.pax_headers.items():
        if not key.startswith(XATTR_PREFIX + "user."):
            continue
        name = key[len(XATTR_PREFIX):]
        try:
            os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
        except OSError as err:
            # Best effort (a filesystem without user xattrs says ENOTSUP),
            # but a full disk is a full disk.
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
