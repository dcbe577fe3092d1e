"""Whether two hosts see the same thing at a path, and how big a tree is,
both without reading it all.

digest(path) is compared between the submit host and a node: equal means
the node sees the same content (a shared filesystem), so the path can be
mounted instead of copied. A same-named directory with other content gives
another digest: its listing, sizes, mtimes or modes differ, and where a
careful copy kept all of those, the first 64 KiB of its smallest files
(configuration, markers, scripts: what copies differ in) still tell.
The path itself is followed, as a bind mount follows it; nothing below it.
Python 3.6+, stdlib only.
"""
import hashlib
import os
import stat

from scrun_rest.bundle import relpaths

SAMPLE = 64 << 10
SAMPLED_FILES = 16
DIGEST_CHARS = 32


def digest(path):
    """A short hex digest of what is at `path`; None when it is missing or
    cannot be read."""
    try:
        st = os.stat(path)
        hashed = hashlib.sha256(b"%s %o %d %d\n" % (_kind(st.st_mode), st.st_mode,
                                                     st.st_size, st.st_mtime_ns))
        if stat.S_ISDIR(st.st_mode):
            _hash_dir(hashed, relpaths.to_bytes(path))
        elif stat.S_ISREG(st.st_mode):
            _hash_file_ends(hashed, path, st.st_size)
    except OSError:
        return None
    return hashed.hexdigest()[:DIGEST_CHARS]


def _hash_dir(hashed, path):
    """The top two levels' listing, then the starts of its smallest files."""
    listed = []  # (relative name, lstat or None when unreadable, path)
    top = _listing(path)
    for name, entry in top:
        st = entry.stat(follow_symlinks=False)
        listed.append((name, st, entry.path))
        if stat.S_ISDIR(st.st_mode):
            try:
                below = _listing(entry.path)
            except OSError:
                listed.append((name + b"/", None, None))  # unreadable: said the same on both hosts
                continue
            for child, child_entry in below:
                listed.append((name + b"/" + child, child_entry.stat(follow_symlinks=False),
                               child_entry.path))
    listed.sort(key=lambda item: item[0])
    for name, st, _ in listed:
        if st is None:
            hashed.update(name + b"\0?\n")
        else:
            hashed.update(b"%s\0%s %d %d %o\n" % (name, _kind(st.st_mode), st.st_size,
                                                  st.st_mtime_ns, st.st_mode))
    files = sorted((st.st_size, name, fspath) for name, st, fspath in listed
                   if st is not None and stat.S_ISREG(st.st_mode))
    for _, name, fspath in files[:SAMPLED_FILES]:
        hashed.update(name + b"\0" + _sample(fspath, 0) + b"\n")


def _listing(path):
    with os.scandir(path) as entries:
        return [(entry.name, entry) for entry in entries]


def _hash_file_ends(hashed, path, size):
    hashed.update(_sample(path, 0))
    if size > SAMPLE:
        hashed.update(_sample(path, size - SAMPLE))


def _sample(path, offset):
    """sha256 of the 64 KiB at offset, as bytes; b"-" when unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return b"-"
    try:
        return hashlib.sha256(os.pread(fd, SAMPLE, offset)).digest()
    except OSError:
        return b"-"
    finally:
        os.close(fd)


def _kind(mode):
    return b"%o" % stat.S_IFMT(mode)


def size(path, limit):
    """The bytes of the regular files at or under `path` (each inode once,
    symlinks not followed); limit + 1 as soon as the sum passes `limit`.
    A directory that cannot be listed counts as empty; OSError for `path`."""
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        total = st.st_size if stat.S_ISREG(st.st_mode) else 0
        return total if total <= limit else limit + 1
    total = 0
    seen = set()  # inodes with several names
    pending = [relpaths.to_bytes(path)]
    while pending:
        try:
            entries = _listing(pending.pop())
        except OSError:
            continue
        for _, entry in entries:
            try:
                # The type from the listing costs no syscall; only files need stat.
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since the listing
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
            if total > limit:
                return limit + 1
    return total
