"""A tree described by content: what a node needs to rebuild it from files
it already holds (agent/node_cache.py).

A manifest is a list of entries [name, type, mode, size, mtime_ns, more]:
type "d" (directory), "f" (regular file; more: the sha256 of its content),
"l" (symlink; more: its target), "h" (hard link; more: the name of the
earlier "f" entry it links to), "p" (fifo). Parents come before their
children. Device nodes and sockets are left out: a rootless container
cannot have the first, and the second cannot be copied. The rebuilt tree
is made by the same unpacker as a plain copy (safe_extract), from the
manifest's entries and the held files, without a tar stream between.
Python 3.6+, stdlib only.
"""
import errno
import hashlib
import json
import operator
import os
import stat
import struct
import tarfile
import zlib

from scrun_rest.bundle import relpaths
from scrun_rest.bundle.errors import PackError, why

NAME, TYPE, MODE, SIZE, MTIME, MORE = range(6)
# A manifest of 200,000 entries is about 8 MB encoded, 30 MB as JSON.
MAX_ENCODED, MAX_TEXT = 64 << 20, 256 << 20
TYPES = ("d", "f", "l", "h", "p")
READ_SIZE = 1 << 20
_name = operator.attrgetter("name")


def file_digest(path):
    hashed = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(READ_SIZE), b""):
            hashed.update(chunk)
    return hashed.hexdigest()


def build(root, digest_of=None):
    """The manifest of the tree at root. digest_of(path, stat) gives a
    file's sha256 (a cache of them, say); by default it reads the file."""
    digest_of = digest_of or (lambda path, st: file_digest(path))
    entries = []
    first_names = {}
    pending = [(b"", relpaths.to_bytes(root))]
    while pending:
        prefix, path = pending.pop()
        try:
            with os.scandir(path) as listing:
                children = sorted(listing, key=_name)
        except OSError as err:
            raise PackError(relpaths.to_str(path), "cannot read the directory: " + why(err))
        below = []
        for entry in children:
            name = relpaths.to_str(prefix + entry.name)
            st = entry.stat(follow_symlinks=False)
            record = _record(name, entry.path, st, first_names, digest_of)
            if record is not None:
                entries.append(record)
            if stat.S_ISDIR(st.st_mode):
                below.append((prefix + entry.name + b"/", entry.path))
        pending.extend(reversed(below))
    return entries


def _record(name, path, st, first_names, digest_of):
    mode, base = st.st_mode, [name, None, stat.S_IMODE(st.st_mode), 0, st.st_mtime_ns, ""]
    if stat.S_ISDIR(mode):
        base[TYPE] = "d"
    elif stat.S_ISLNK(mode):
        base[TYPE], base[MORE] = "l", relpaths.to_str(os.readlink(path))
    elif stat.S_ISFIFO(mode):
        base[TYPE] = "p"
    elif stat.S_ISREG(mode):
        if st.st_nlink > 1 and (st.st_dev, st.st_ino) in first_names:
            base[TYPE], base[MORE] = "h", first_names[(st.st_dev, st.st_ino)]
            return base
        first_names[(st.st_dev, st.st_ino)] = name
        try:
            digest = digest_of(path, st)
        except OSError as err:
            raise PackError(relpaths.to_str(path), why(err))
        base[TYPE], base[SIZE], base[MORE] = "f", st.st_size, digest
    else:
        return None
    return base


def encode(entries):
    return zlib.compress(json.dumps(entries, separators=(",", ":")).encode("utf-8"), 6)


def decode(data, limit=MAX_TEXT):
    """The entries of an encoded manifest, checked: ValueError if not."""
    decompressor = zlib.decompressobj()
    text = decompressor.decompress(data, limit)
    if decompressor.unconsumed_tail:
        raise ValueError("the manifest is larger than %d bytes" % limit)
    entries = json.loads(text.decode("utf-8"))
    if not isinstance(entries, list):
        raise ValueError("the manifest is not a list")
    for entry in entries:
        _check(entry)
    return entries


def _check(entry):
    if not (isinstance(entry, list) and len(entry) == 6 and entry[TYPE] in TYPES
            and isinstance(entry[NAME], str) and isinstance(entry[MORE], str)
            and all(isinstance(entry[i], int) and not isinstance(entry[i], bool)
                    and entry[i] >= 0 for i in (MODE, SIZE, MTIME))):
        raise ValueError("a malformed manifest entry %r" % (str(entry)[:80],))
    relpaths.components(entry[NAME])  # no absolute name, no ".."
    if entry[TYPE] == "f" and not _is_digest(entry[MORE]):
        raise ValueError("%s: not a sha256 digest" % entry[NAME])


def _is_digest(text):
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def digests(entries):
    """{digest: the first name with that content} of the regular files."""
    found = {}
    for entry in entries:
        if entry[TYPE] == "f":
            found.setdefault(entry[MORE], entry[NAME])
    return found


def members(entries, content_path):
    """(tarfile.TarInfo, content) for each entry, as safe_extract's
    extract_members takes them; content_path(digest) is where a held file
    with that content is."""
    for entry in entries:
        info = tarfile.TarInfo(entry[NAME])
        info.mode = entry[MODE]
        info.mtime = entry[MTIME] // 10 ** 9
        if entry[MTIME] >= 0:
            info.pax_headers = {"mtime": "%d.%09d" % divmod(entry[MTIME], 10 ** 9)}
        kind = entry[TYPE]
        if kind == "f":
            info.size = entry[SIZE]
            yield info, HeldFile(content_path(entry[MORE]))
            continue
        info.type = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE,
                     "p": tarfile.FIFOTYPE}[kind]
        info.linkname = entry[MORE] if kind in ("l", "h") else ""
        yield info, None


class HeldFile:
    """A held file's content, copied by the kernel into the file made for it."""

    def __init__(self, path):
        self.path = path

    def copy_to(self, fd, size):
        try:
            source = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            raise OSError(err.errno, "cannot read the cache's %s: %s" % (self.path, why(err)))
        try:
            offset = 0
            while offset < size:
                sent = os.sendfile(fd, source, offset, size - offset)
                if not sent:
                    raise OSError(errno.EIO, "the held file %s is shorter than its "
                                  "manifest says" % self.path)
                offset += sent
        finally:
            os.close(source)


def send_blob(sock, data):
    """Length-prefixed bytes on a stream socket (the manifest, the wanted
    list: bundle_server.py and agent/bundle_fetch.py)."""
    sock.sendall(struct.pack(">Q", len(data)) + data)


def recv_blob(sock, limit=MAX_ENCODED):
    """ValueError for a blob over limit; EOFError for a stream that ends."""
    (size,) = struct.unpack(">Q", _recv_exactly(sock, 8))
    if size > limit:
        raise ValueError("a blob of %d bytes, over %d" % (size, limit))
    return _recv_exactly(sock, size)


def _recv_exactly(sock, size):
    parts = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the stream ended early")
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)
