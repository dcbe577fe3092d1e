"""The archive writer for hosts without GNU tar: headers from tarfile (pax
format), file content by sendfile(2), so bytes still do not pass through
Python on their way to the socket.

It writes what GNU tar writes for the same tree: "." rooted names, links
as links, hard links as links to the first name seen, fifos and device
nodes as headers, sockets left out, user.* xattrs as SCHILY.xattr records,
mtimes to the nanosecond.
Python 3.6+, stdlib only.
"""
import errno
import os
import stat
import tarfile

from scrun_rest.bundle import relpaths
from scrun_rest.bundle.errors import PackError, why

BLOCK = 512
CHUNK = 1 << 20
# Files this small are read into the output buffer with their header: one
# write for many small files instead of three syscalls each.
SMALL = 64 << 10
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
_READER_GONE = (errno.EPIPE, errno.ECONNRESET)


def write(base, names, recursive, out_fd):
    """Archive each of `names` (bytes, relative to `base`), with all below
    it when `recursive`, to out_fd; PackError on the first entry that cannot
    be read, or when out_fd takes no more."""
    out = _Output(out_fd)
    first_names = {}  # (st_dev, st_ino) -> archive name, for hard links
    for name in names:
        for arcname, fspath, st in _walk(base, name, recursive):
            try:
                _entry(out, arcname, fspath, st, first_names)
            except OSError as err:
                if err.errno in _READER_GONE:
                    raise PackError(base, "writing the archive: " + why(err))
                raise PackError(_shown(fspath), why(err))
    try:
        out.write(bytes(2 * BLOCK))
        out.flush()
    except OSError as err:
        raise PackError(base, "writing the archive: " + why(err))


def _walk(base, name, recursive):
    """(archive name, filesystem path, lstat) of each entry, parents first,
    names sorted."""
    pending = [(name, os.path.join(relpaths.to_bytes(base), name))]
    while pending:
        arcname, fspath = pending.pop()
        try:
            st = os.lstat(fspath)
        except OSError as err:
            raise PackError(_shown(fspath), why(err))
        yield arcname, fspath, st
        if recursive and stat.S_ISDIR(st.st_mode):
            try:
                children = sorted(os.listdir(fspath), reverse=True)
            except OSError as err:
                raise PackError(_shown(fspath), "cannot read the directory: " + why(err))
            prefix = b"./" if arcname == b"." else arcname + b"/"
            pending.extend((prefix + child, os.path.join(fspath, child)) for child in children)


def _entry(out, arcname, fspath, st, first_names):
    if stat.S_ISSOCK(st.st_mode):
        return  # a socket cannot travel; GNU tar leaves them out too
    info = _header(arcname, fspath, st)
    if not stat.S_ISREG(st.st_mode):
        out.write(_encode(info))
        return
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in first_names:
        info.type = tarfile.LNKTYPE
        info.linkname = first_names[key]
        out.write(_encode(info))
        return
    try:
        fd = os.open(fspath, OPEN_FLAGS)
    except OSError as err:
        raise PackError(_shown(fspath), "cannot open: " + why(err))
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != key:
            raise PackError(_shown(fspath), "it was replaced while being packed")
        if st.st_nlink > 1:
            first_names[key] = info.name
        info.size = st.st_size
        out.write(_encode(info))
        if not out.send_file(fd, st.st_size):
            raise PackError(_shown(fspath), "it shrank while being read")
        out.write(bytes(-st.st_size % BLOCK))
    finally:
        os.close(fd)


def _header(arcname, fspath, st):
    info = tarfile.TarInfo(relpaths.to_str(arcname))
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.mtime = st.st_mtime_ns // 10 ** 9
    info.pax_headers = {"mtime": _pax_time(st.st_mtime_ns)}
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = relpaths.to_str(os.readlink(fspath))
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor = os.major(st.st_rdev)
        info.devminor = os.minor(st.st_rdev)
    else:
        info.type = tarfile.REGTYPE
    info.pax_headers.update(_user_xattrs(fspath))
    return info


def _user_xattrs(fspath):
    try:
        names = os.listxattr(fspath, follow_symlinks=False)
    except OSError:
        return {}  # a filesystem without xattrs, or none we may read
    records = {}
    for name in names:
        if not name.startswith("user."):
            continue
        try:
            value = os.getxattr(fspath, name, follow_symlinks=False)
        except OSError:
            continue  # removed meanwhile
        records["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return records


def _pax_time(ns):
    sign = "-" if ns < 0 else ""
    return "%s%d.%09d" % ((sign,) + divmod(abs(ns), 10 ** 9))


def _encode(info):
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _shown(fspath):
    return os.path.normpath(relpaths.to_str(fspath))


class _Output:
    """Buffered writes to out_fd; file content by sendfile."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = bytearray()

    def write(self, data):
        self.buffer += data
        if len(self.buffer) >= CHUNK:
            self.flush()

    def flush(self):
        done = 0
        with memoryview(self.buffer) as whole:
            while done < len(whole):
                done += os.write(self.fd, whole[done:])
        del self.buffer[:]

    def send_file(self, fd, size):
        """Copy `size` bytes of fd; False if it has fewer."""
        if size <= SMALL:
            data = _read_exactly(fd, size)
            self.write(data)
            return len(data) == size
        self.flush()
        offset = 0
        while offset < size:
            try:
                sent = os.sendfile(self.fd, fd, offset, min(size - offset, 8 * CHUNK))
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.ENOSYS) or offset:
                    raise
                return self._copy(fd, size)
            if not sent:
                return False
            offset += sent
        return True

    def _copy(self, fd, size):
        while size:
            data = _read_exactly(fd, min(size, CHUNK))
            if not data:
                return False
            self.write(data)
            size -= len(data)
        return True


def _read_exactly(fd, size):
    pieces = []
    while size:
        data = os.read(fd, size)
        if not data:
            break
        pieces.append(data)
        size -= len(data)
    return b"".join(pieces)
