"""What a container changed in a tree: a snapshot taken after unpacking,
compared with the tree when the container has ended, and the deletions
applied to the real directory on the other host.

A snapshot maps each relative path ("." for the root, then "a", "a/b")
to [type, mode, size, mtime_ns, ctime_ns, ino], in walk order (parents
first, names sorted). It is plain JSON, to be kept in a file between
unpack and write-back. ctime and ino catch what a container cannot hide:
a file rewritten to the same size with its mtime put back still gets a
new ctime, and a file replaced by another gets a new inode.
Python 3.6+, stdlib only.
"""
import operator
import os
import stat

from scrun_rest.bundle import relpaths
from scrun_rest.bundle.dirfd_walk import DirChain, NotADirectory, remove_entry
from scrun_rest.bundle.errors import ExtractError, PackError, why

_TYPE_OF = {stat.S_IFDIR: "d", stat.S_IFREG: "f", stat.S_IFLNK: "l", stat.S_IFIFO: "p",
            stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFSOCK: "s"}
TYPE, MODE, SIZE, MTIME, CTIME, INO = range(6)
_name = operator.attrgetter("name")


def snapshot(root):
    """{relative path: [type, mode, size, mtime_ns, ctime_ns, ino]} of every
    entry under root, root included, without following symlinks; a
    directory that cannot be listed is a PackError."""
    entries = {".": _record(os.lstat(root))}
    # Names as bytes, so that the locale loses none; keys as str (with
    # surrogates for undecodable bytes), for JSON.
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
            record = _record(entry.stat(follow_symlinks=False))
            entries[relpaths.to_str(prefix + entry.name)] = record
            if record[TYPE] == "d":
                below.append((prefix + entry.name + b"/", entry.path))
        pending.extend(reversed(below))
    return entries


def _record(st):
    mode = st.st_mode
    return [_TYPE_OF.get(stat.S_IFMT(mode), "?"), stat.S_IMODE(mode), st.st_size,
            st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def changes(root, before):
    """(changed or new paths, parents first; deleted paths, deepest first)
    of root since the snapshot `before`. An entry whose type changed is in
    both lists. A directory is listed when new or when its mode or mtime
    changed (which a change of its listing does)."""
    after = snapshot(root)
    changed = [name for name, record in after.items()
               if _changed(before.get(name), record)]
    deleted = [name for name, record in before.items()
               if name not in after or after[name][TYPE] != record[TYPE]]
    # Stable: at one depth the order stays the walk's.
    deleted.sort(key=lambda name: -name.count("/"))
    return changed, deleted


def _changed(old, new):
    if old is None or old[TYPE] != new[TYPE]:
        return True
    if new[TYPE] == "d":
        return old[MODE] != new[MODE] or old[MTIME] != new[MTIME]
    return list(old) != new


def apply_deletions(dest, names):
    """Remove each of `names` (relative) from dest, a directory with its
    tree, never following a symlink: an entry that is missing, or reached
    only through a symlink, is left alone. Returns how many were removed;
    ExtractError(path, why)."""
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    chain = DirChain(root_fd)
    removed = 0
    try:
        for name in names:
            try:
                parts = relpaths.components(name)
            except ValueError as err:
                raise ExtractError(name, "refused: %s in the list of deletions" % err)
            path = os.path.join(dest, relpaths.join(parts))
            if not parts:
                raise ExtractError(path, "refused: deleting the destination itself")
            try:
                parent = chain.open(parts[:-1])
            except (FileNotFoundError, NotADirectory):
                continue
            chain.forget(parts)
            try:
                removed += remove_entry(parent, parts[-1])
            except OSError as err:
                raise ExtractError(path, why(err))
    except OSError as err:
        raise ExtractError(dest, why(err))
    finally:
        chain.close()
        os.close(root_fd)
    return removed
